//! The guarded rules of a rule set as every adapter of the guards counts
//! them (the wasm filter's guards of one VM, the dynamic module's guards
//! of the whole process): which destinations a rule's guards count (its
//! *slots*: the guarded ones and the baselines they are compared with),
//! how often a baseline's answers are sampled, and the lines an ejection
//! logs (as values the adapters write with their own loggers).

use alloc::vec::Vec;

use crate::domain::guard::{Judge, Shape, Spec, Tripped};
use crate::domain::judge::{Side, Verdict};
use crate::domain::rules::{Dest, Route, Rule, RuleSet, Service};

/// One rule with at least one guarded destination, as [`for_each`] finds it.
pub struct Guarded<S> {
    /// The rule's service and index in the rule set.
    pub at: (u32, u32),
    /// What the adapter made of each counted destination (the guarded
    /// ones and their baselines), in route order: the rule's slots.
    pub slots: Vec<S>,
    /// Each slot's guard; a baseline only ([`Judge::Count`]) is counted
    /// over its canary's window. A [`Judge::Baseline`]'s `slot` is a slot.
    pub specs: Vec<Spec>,
    /// What ejecting may leave of the rule.
    pub shape: Shape,
    /// Its answers' times are counted (a guard judges latency).
    pub timed: bool,
    /// The slot of its ramp's canary, if the rule has a ramp and the canary
    /// is counted: ejecting that one stops the ramp.
    pub ramp_canary: Option<u32>,
}

/// Finds the guarded rules of `set`, in rule order: `slot` makes an
/// adapter's slot of each counted destination (with the rule's ordinal
/// among the guarded ones and the slot's index), `rule` takes each rule.
#[inline]
pub fn for_each<'a, S>(
    set: &'a RuleSet,
    mut slot: impl FnMut(u32, u32, &'a Service, &'a Rule, Dest<'a>) -> S,
    mut rule: impl FnMut(Guarded<S>),
) {
    let mut ordinal = 0;
    for (si, s) in set.services().iter().enumerate() {
        for (ri, r) in s.rules.iter().enumerate() {
            let ds = &r.route.destinations;
            // Counted: the guarded destinations and their baselines (a mask by index).
            let mut counted = 0u64;
            for (di, d) in ds.iter().enumerate() {
                if let Some(spec) = d.guard.as_deref() {
                    counted |= 1 << (di % 64);
                    if let Judge::Baseline { slot, .. } = spec.judge {
                        counted |= 1 << (slot % 64);
                    }
                }
            }
            if counted == 0 {
                continue;
            }
            // A destination's slot: the counted ones before it.
            let slot_of = |i: usize| (counted & ((1u64 << (i % 64)) - 1)).count_ones();
            let ramp = r.route.ramp();
            let (mut specs, mut slots, mut live) = (Vec::new(), Vec::new(), Vec::new());
            let mut unguarded_live = false;
            for (di, d) in ds.iter().enumerate() {
                if counted & (1 << (di % 64)) == 0 {
                    unguarded_live |= d.weight > 0;
                    continue;
                }
                let spec = match d.guard.as_deref().copied() {
                    Some(mut spec) => {
                        if let Judge::Baseline { slot, .. } = &mut spec.judge {
                            *slot = slot_of(*slot as usize);
                        }
                        spec
                    }
                    // A baseline only: counted over its canary's window
                    // (compilation made sure it has one).
                    None => match ds.iter().filter_map(|g| g.guard.as_deref().copied()).find(
                        |g| matches!(g.judge, Judge::Baseline { slot, .. } if slot as usize == di),
                    ) {
                        Some(g) => Spec {
                            judge: Judge::Count,
                            ..g
                        },
                        None => continue,
                    },
                };
                let Some(dest) = set.dest(d) else { continue };
                specs.push(spec);
                // A ramp's canary: weight 0 before its start, more later.
                live.push(d.weight > 0 || ramp.is_some_and(|p| p.schedule.canary == di));
                slots.push(slot(ordinal, slots.len() as u32, s, r, dest));
            }
            let timed = Spec::timed(&specs);
            let ramp_canary = ramp
                .map(|p| p.schedule.canary)
                .filter(|c| counted & (1 << (c % 64)) != 0)
                .map(slot_of);
            rule(Guarded {
                at: (si as u32, ri as u32),
                slots,
                specs,
                shape: Shape {
                    live: live.into(),
                    unguarded_live,
                },
                timed,
                ramp_canary,
            });
            ordinal += 1;
        }
    }
}

/// How often the answers of `slot` are counted while `route` picks with
/// the weights it has now (a ramp's step moves them): `None` for a
/// guarded destination (every answer); for a baseline only, one in its
/// weight over the largest of its canaries' (rounded down, 1 to 64), so
/// that both sides reach `minRequests` together and a baseline's many
/// answers cost no count each. `stat` is each slot's `stat_index`.
#[inline]
pub fn sample_every(
    route: &Route,
    specs: &[Spec],
    stat: impl Fn(usize) -> u32,
    slot: usize,
) -> Option<u32> {
    if specs.get(slot).map(|s| s.judge) != Some(Judge::Count) {
        return None;
    }
    let weight = |stat: u32| {
        route
            .destinations
            .iter()
            .position(|d| d.stat_index == stat)
            .map_or(0, |i| route.weights().weight(i))
    };
    let canary = specs
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.judge, Judge::Baseline { slot: b, .. } if b as usize == slot))
        .map(|(i, _)| weight(stat(i)))
        .max()
        .unwrap_or(0);
    Some(match canary {
        0 => 1,
        c => (weight(stat(slot)) / c).clamp(1, 64) as u32,
    })
}

/// The line an ejection logs (at warn, once, by the flush that made it):
/// why, with the figures judged. The adapters log it with their own
/// logger.
pub struct Ejection<'a> {
    /// `service S, rule R, destination D`.
    pub name: &'a str,
    /// The guard that ejected it.
    pub spec: &'a Spec,
    /// What it judged.
    pub tripped: &'a Tripped,
    /// The label of the destination the guard compares with.
    pub baseline: Option<&'a str>,
}

impl<'a> Ejection<'a> {
    /// The line for destination `name`, ejected by `spec` after judging
    /// `tripped`; `label` gives a slot's label, for the baseline of a guard
    /// that judges against one.
    pub fn new(
        name: &'a str,
        spec: &'a Spec,
        tripped: &'a Tripped,
        label: impl FnOnce(usize) -> Option<&'a str>,
    ) -> Self {
        let baseline = match spec.judge {
            Judge::Baseline { slot, .. } => label(slot as usize),
            _ => None,
        };
        Ejection {
            name,
            spec,
            tripped,
            baseline,
        }
    }
}

impl core::fmt::Display for Ejection<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Ejection {
            name,
            spec,
            tripped: m,
            baseline,
        } = *self;
        let (c, b) = (&m.canary, &m.baseline);
        let (why, baseline) = match (m.verdict, spec.judge) {
            (Some(v), Judge::Baseline { .. }) => (
                if v == Verdict::Errors {
                    "errors significantly over the baseline's by maxErrorRate"
                } else {
                    "p90 over maxLatencyRatio times the baseline's"
                },
                baseline.unwrap_or(""),
            ),
            _ => ("errors at or over maxErrorRate", "none"),
        };
        write!(
        f,
        "guard ejected {name} ({why}) in the last {}ms: {} of {} responses failed ({}), p90 {} ms; baseline {baseline}: {} of {} failed ({}), p90 {} ms. Its requests go to the rule's other destinations until the rule set changes",
        spec.interval_ms,
        c.errors,
        c.requests,
        Permille(c),
        c.p90_ms as u64,
        b.errors,
        b.requests,
        Permille(b),
        b.p90_ms as u64
    )
    }
}

/// Stops the ramp of the rule at `at` (service and rule index) in `set`,
/// because its canary (`name`, as `service S, rule R, destination D`) was
/// ejected; the line to log (at warn where the ejection was made, at debug
/// where it was learned), unless it was stopped already.
#[inline]
pub fn stop_ramp<'a>(set: &RuleSet, at: (u32, u32), name: &'a str) -> Option<RampStopped<'a>> {
    ramp_line(set, at, name, true)
}

/// The line of the ramp of the rule at `at`, stopped already (where
/// threads share one rule set, another may have learned the ejection and
/// stopped the ramp before the flush that made it says so); none unless
/// it is stopped.
#[inline]
pub fn stopped_ramp<'a>(set: &RuleSet, at: (u32, u32), name: &'a str) -> Option<RampStopped<'a>> {
    ramp_line(set, at, name, false)
}

#[inline]
fn ramp_line<'a>(
    set: &RuleSet,
    at: (u32, u32),
    name: &'a str,
    stop: bool,
) -> Option<RampStopped<'a>> {
    let ramp = set
        .services()
        .get(at.0 as usize)
        .and_then(|s| s.rules.get(at.1 as usize))
        .and_then(|r| r.route.ramp())
        .filter(|p| if stop { p.abort() } else { p.is_aborted() })?;
    Some(RampStopped {
        name,
        step: ramp
            .schedule
            .phases
            .get(ramp.phase())
            .map_or(0, |p| p.steps_done),
        steps: ramp.schedule.steps,
    })
}

/// The line of a ramp [`stop_ramp`] stopped.
pub struct RampStopped<'a> {
    name: &'a str,
    step: u32,
    steps: u32,
}

impl core::fmt::Display for RampStopped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ramp of {} stopped at step {} of {}: the canary was ejected; its weight is 0 until the rule set changes",
            self.name, self.step, self.steps
        )
    }
}

/// An error share as `12.5%` (tenths of a percent, no float formatting).
struct Permille<'a>(&'a Side);

impl core::fmt::Display for Permille<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let pm = self.0.errors.saturating_mul(1000) / self.0.requests.max(1);
        write!(f, "{}.{}%", pm / 10, pm % 10)
    }
}
