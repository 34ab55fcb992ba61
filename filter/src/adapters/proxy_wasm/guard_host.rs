//! Feeds the guards ([`crate::domain::guard`]) of one VM: counts the
//! responses of guarded destinations, flushes them into shared data, learns
//! ejections, and re-picks requests a decision sent to an ejected
//! destination. Built only for rule sets with a guard; without one, the
//! request and response paths test one `Option` and nothing else.

use alloc::{boxed::Box, format, string::String, vec, vec::Vec};

use core::cell::Cell;

use crate::domain::guard::{self, Flushed, Judge, Shape, Spec, Tally, Tripped};
use crate::domain::judge::{Side, Verdict};
use crate::domain::rules::{Outcome, RequestView, RuleSet};

use filter_runtime::proxy_wasm::hostcalls::{self, MetricKind};

use super::metrics::{define, record};
use super::shared_data::SharedData;

const NONE: u32 = u32::MAX;

/// One destination of a rule that its guards count: a guarded one, or
/// the baseline another is compared with.
struct Slot {
    stat_index: u32,
    /// The destination's label (subset or cluster), and `service S, rule R,
    /// destination D` for the log.
    label: Box<str>,
    name: Box<str>,
    pending: Cell<Tally>,
    /// A baseline only (no guard of its own): one answer in `every` is
    /// counted, `every` the baseline's weight over its canaries' (at least
    /// 1), so that both sides reach `minRequests` together and the baseline's
    /// many answers cost no host call each. `left` counts down to the next.
    every: Cell<u32>,
    left: Cell<u32>,
    ejected_gauge: Option<u32>,
    requests: Option<u32>,
    errors: Option<u32>,
    /// The window's figures, for `canaryctl watch`.
    window: [Option<u32>; 3],
}

/// A rule with at least one guarded destination.
struct Rule {
    key: String,
    specs: Vec<Spec>,
    shape: Shape,
    slots: Vec<Slot>,
    /// Its responses' times are counted (a guard judges latency).
    timed: bool,
    /// The rule's service and index, and the slot of its ramp's canary:
    /// ejecting that one stops the ramp.
    ramp: Option<(u32, u32, u32)>,
    /// The rule's service and index in the rule set.
    at: (u32, u32),
}

/// The guards of one VM's rule set.
pub struct Guards {
    rules: Vec<Rule>,
    /// By `stat_index`: (guarded rule, slot), or `NONE`.
    of_stat: Vec<(u32, u32)>,
    /// By `stat_index`: ejected, as this VM knows.
    ejected: Vec<Cell<bool>>,
    /// How often ticks should flush.
    pub tick_ms: u32,
}

impl Guards {
    /// The guards of `set`, or `None` when it has none. Starts the rule
    /// set's shared records (clears them unless another VM of this Envoy
    /// already runs the same rules) and learns what is already ejected.
    #[inline(never)]
    pub fn new(set: &RuleSet, digest: u64, root_id: &str) -> Option<Guards> {
        if !set.all_destinations().any(|(_, _, d)| d.guard.is_some()) {
            return None;
        }
        let prefix = format!("canary-router/guard/{root_id}");
        let digest = format!("{digest:016x}");
        let n = set.destination_count() as usize;
        let mut of_stat = vec![(NONE, NONE); n];
        let mut rules = Vec::new();
        // Each rule's shared key, slot count and times, for `guard::install`.
        let mut keys: Vec<(String, usize, bool)> = Vec::new();
        for (si, s) in set.services().iter().enumerate() {
            for (ri, r) in s.rules.iter().enumerate() {
                let ds = &r.route.destinations;
                // Counted: the guarded destinations and their baselines (a mask by index).
                let mut counted = 0u64;
                for (di, d) in ds.iter().enumerate() {
                    if let Some(spec) = d.guard.as_deref().copied() {
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
                let ordinal = rules.len() as u32;
                let mut specs = Vec::new();
                let mut slots = Vec::new();
                let mut live = Vec::new();
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
                        // A baseline only: counted over its canary's window.
                        None => ds
                            .iter()
                            .filter_map(|g| g.guard.as_deref().copied())
                            .find(|g| matches!(g.judge, Judge::Baseline { slot, .. } if slot as usize == di))
                            .map(|g| Spec { judge: Judge::Count, ..g })?,
                    };
                    if let Some(e) = of_stat.get_mut(d.stat_index as usize) {
                        *e = (ordinal, slots.len() as u32);
                    }
                    let tags =
                        |kind| crate::domain::stats::guard_metric(kind, &s.name, &r.name, &d.label);
                    let gauge = |kind| define(MetricKind::Gauge, &tags(kind));
                    specs.push(spec);
                    live.push(
                        d.weight > 0 || r.route.ramp().is_some_and(|p| p.schedule.canary == di),
                    );
                    slots.push(Slot {
                        stat_index: d.stat_index,
                        label: d.label.clone(),
                        name: format!(
                            "service {}, rule {}, destination {}",
                            s.name, r.name, d.label
                        )
                        .into(),
                        pending: Cell::new(Tally::default()),
                        every: Cell::new(1),
                        left: Cell::new(0),
                        ejected_gauge: gauge("ejected"),
                        requests: define(MetricKind::Counter, &tags("requests")),
                        errors: define(MetricKind::Counter, &tags("errors")),
                        window: [
                            gauge("window_requests"),
                            gauge("window_errors"),
                            gauge("window_p90_ms"),
                        ],
                    });
                }
                let key = format!("{prefix}/{digest}/{ordinal}");
                let timed = Spec::timed(&specs);
                keys.push((key.clone(), slots.len(), timed));
                let ramp = r.route.ramp().and_then(|p| {
                    let c = p.schedule.canary;
                    (counted & (1 << (c % 64)) != 0).then(|| (si as u32, ri as u32, slot_of(c)))
                });
                rules.push(Rule {
                    key,
                    specs,
                    shape: Shape {
                        live: live.into(),
                        unguarded_live,
                    },
                    slots,
                    timed,
                    ramp,
                    at: (si as u32, ri as u32),
                });
            }
        }
        guard::install(&mut SharedData, &prefix, &digest, &keys);
        let bucket = rules
            .iter()
            .flat_map(|r| r.specs.iter())
            .map(Spec::bucket_ms)
            .min()
            .unwrap_or(1000);
        let guards = Guards {
            rules,
            of_stat,
            ejected: (0..n).map(|_| Cell::new(false)).collect(),
            tick_ms: bucket.clamp(100, 1000) as u32,
        };
        for rule in guards.rules.iter() {
            for slot in rule.slots.iter() {
                record(slot.ejected_gauge, 0);
            }
        }
        guards.tick(set);
        Some(guards)
    }

    /// Whether destination `stat_index` is ejected, as this VM knows.
    #[inline]
    pub fn is_ejected(&self, stat_index: u32) -> bool {
        self.ejected.get(stat_index as usize).is_some_and(Cell::get)
    }

    /// The decision with ejected destinations taken out ([`guard::adjust`]).
    #[inline]
    pub fn adjust<'a, R: RequestView>(
        &self,
        set: &'a RuleSet,
        outcome: Outcome<'a>,
        req: &R,
        random: impl FnOnce() -> u64,
    ) -> Outcome<'a> {
        guard::adjust(set, outcome, req, random, |i| self.is_ejected(i))
    }

    /// Takes a request to destination `stat_index` into the guards' sample:
    /// whether its answer is counted (its destination is guarded, or a
    /// baseline and this answer is one of its sample) and whether its time
    /// is. Moves a baseline's countdown, so call it once per request.
    #[inline]
    pub fn sample(&self, stat_index: u32) -> Option<bool> {
        let &(r, si) = self.of_stat.get(stat_index as usize)?;
        let rule = self.rules.get(r as usize)?;
        let slot = rule.slots.get(si as usize)?;
        match slot.left.get() {
            0 => slot.left.set(slot.every.get() - 1),
            n => {
                slot.left.set(n - 1);
                return None;
            }
        }
        Some(rule.timed)
    }

    /// Sets how often each baseline-only destination's answers are counted,
    /// from the weights requests are picked with now (a ramp's step moves
    /// them): the baseline's weight over the largest of its canaries',
    /// rounded down, 1 to 64.
    #[inline(never)]
    pub fn resample(&self, set: &RuleSet) {
        for rule in &self.rules {
            let (si, ri) = rule.at;
            let Some(r) = set
                .services()
                .get(si as usize)
                .and_then(|s| s.rules.get(ri as usize))
            else {
                continue;
            };
            let weight = |stat: u32| {
                r.route
                    .destinations
                    .iter()
                    .zip(r.route.weights().each())
                    .find(|(d, _)| d.stat_index == stat)
                    .map_or(0, |(_, w)| w)
            };
            for (si, slot) in rule.slots.iter().enumerate() {
                if rule.specs.get(si).map(|s| s.judge) != Some(Judge::Count) {
                    continue;
                }
                let canary = rule
                    .specs
                    .iter()
                    .zip(&rule.slots)
                    .filter(|(s, _)| matches!(s.judge, Judge::Baseline { slot, .. } if slot as usize == si))
                    .map(|(_, c)| weight(c.stat_index))
                    .max()
                    .unwrap_or(0);
                let every = match canary {
                    0 => 1,
                    c => (weight(slot.stat_index) / c).clamp(1, 64) as u32,
                };
                slot.every.set(every);
                slot.left.set(slot.left.get().min(every - 1));
            }
        }
    }

    /// Counts a response of destination `stat_index`: its status (`None`
    /// when the stream ended without one) and its time in milliseconds, if
    /// known. Whether this VM learned of an ejection.
    pub fn on_response(
        &self,
        set: &RuleSet,
        stat_index: u32,
        status: Option<u32>,
        ms: Option<u64>,
    ) -> bool {
        let Some(&(ri, si)) = self.of_stat.get(stat_index as usize) else {
            return false;
        };
        let Some(slot) = self
            .rules
            .get(ri as usize)
            .and_then(|r| r.slots.get(si as usize))
        else {
            return false;
        };
        let error = status.is_none_or(|s| s >= 500);
        let mut t = slot.pending.replace(Tally::default());
        t.count(error, ms);
        if error || t.requests >= guard::FLUSH_SUCCESSES {
            self.flush(set, ri as usize, si as usize, &t)
        } else {
            slot.pending.set(t);
            false
        }
    }

    /// Flushes every pending tally, learns what other VMs ejected, and
    /// shows each window's figures. Whether this VM learned of an ejection.
    #[inline(never)]
    pub fn tick(&self, set: &RuleSet) -> bool {
        let now = hostcalls::now_ms().unwrap_or(0);
        let mut learned = false;
        for (ri, rule) in self.rules.iter().enumerate() {
            for (si, slot) in rule.slots.iter().enumerate() {
                let t = slot.pending.replace(Tally::default());
                if !t.is_empty() {
                    learned |= self.flush(set, ri, si, &t);
                }
            }
            let Some((rec, _)) = guard::read(&mut SharedData, &rule.key, &rule.specs) else {
                continue;
            };
            learned |= self.learn(set, rule, rec.ejected_mask(), None);
            for (i, (slot, spec)) in rule.slots.iter().zip(rule.specs.iter()).enumerate() {
                let side = rec.side(i, spec, now);
                let [requests, errors, p90] = slot.window;
                record(requests, side.requests);
                record(errors, side.errors);
                record(p90, side.p90_ms as u64);
            }
        }
        learned
    }

    /// Applies the ejections of a rule's record (a mask by slot); whether
    /// one was new to this VM. Ejecting a ramp's canary stops the ramp.
    /// `tripped`: the slot this VM's own flush just ejected, if any.
    fn learn(&self, set: &RuleSet, rule: &Rule, ejected: u64, tripped: Option<usize>) -> bool {
        let mut learned = false;
        for (i, slot) in rule.slots.iter().enumerate() {
            if ejected & (1u64 << (i % 64)) == 0 || self.is_ejected(slot.stat_index) {
                continue;
            }
            if let Some(c) = self.ejected.get(slot.stat_index as usize) {
                c.set(true);
            }
            record(slot.ejected_gauge, 1);
            learned = true;
            let Some((s, r, _)) = rule.ramp.filter(|(_, _, canary)| *canary as usize == i) else {
                continue;
            };
            let ramp = set
                .services()
                .get(s as usize)
                .and_then(|s| s.rules.get(r as usize))
                .and_then(|r| r.route.ramp());
            // Every VM stops its own copy; the one that ejected says so
            // (after its `guard ejected` line), the others at debug level.
            if let Some(ramp) = ramp.filter(|p| p.abort()) {
                let level = if tripped == Some(i) {
                    log::Level::Warn
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "ramp of {} stopped at step {} of {}: the canary was ejected; its weight is 0 until the rule set changes",
                    slot.name,
                    ramp.schedule.phases.get(ramp.phase()).map_or(0, |p| p.steps_done),
                    ramp.schedule.steps
                );
            }
        }
        learned
    }

    /// Adds `t` to slot `si` of rule `ri` in shared data, then applies
    /// what the record says is ejected; whether that was news.
    #[inline(never)]
    fn flush(&self, set: &RuleSet, ri: usize, si: usize, t: &Tally) -> bool {
        let Some(rule) = self.rules.get(ri) else {
            return false;
        };
        // A canary is judged with its baseline's responses of this worker
        // too: they go first.
        let mut learned = false;
        if let Some(Judge::Baseline { slot, .. }) = rule.specs.get(si).map(|s| s.judge) {
            if let Some(b) = rule.slots.get(slot as usize) {
                let pending = b.pending.replace(Tally::default());
                if !pending.is_empty() {
                    learned = self.flush(set, ri, slot as usize, &pending);
                }
            }
        }
        let now = hostcalls::now_ms().unwrap_or(0);
        let result = guard::flush(
            &mut SharedData,
            &rule.key,
            &rule.shape,
            &rule.specs,
            si,
            t,
            now,
        );
        let Flushed::Done { ejected, tripped } = result else {
            // Keep the tally for the next flush.
            if let Some(slot) = rule.slots.get(si) {
                let mut p = slot.pending.get();
                p.merge(t);
                slot.pending.set(p);
            }
            return learned;
        };
        if let Some(slot) = rule.slots.get(si) {
            super::metrics::add(slot.requests, t.requests);
            super::metrics::add(slot.errors, t.errors);
        }
        if let (Some(m), Some(slot), Some(spec)) = (tripped, rule.slots.get(si), rule.specs.get(si))
        {
            log_ejection(rule, slot, spec, &m);
        }
        self.learn(set, rule, ejected, tripped.map(|_| si)) || learned
    }
}

/// The one line an ejection logs: why, with the figures judged.
#[inline(never)]
fn log_ejection(rule: &Rule, slot: &Slot, spec: &Spec, m: &Tripped) {
    let (c, b) = (&m.canary, &m.baseline);
    let (why, baseline) = match (m.verdict, spec.judge) {
        (Some(v), Judge::Baseline { slot, .. }) => (
            if v == Verdict::Errors {
                "errors significantly over the baseline's by maxErrorRate"
            } else {
                "p90 over maxLatencyRatio times the baseline's"
            },
            rule.slots.get(slot as usize).map_or("", |s| &*s.label),
        ),
        _ => ("errors at or over maxErrorRate", "none"),
    };
    log::warn!(
        "guard ejected {} ({why}) in the last {}ms: {} of {} responses failed ({}), p90 {} ms; baseline {baseline}: {} of {} failed ({}), p90 {} ms. Its requests go to the rule's other destinations until the rule set changes",
        slot.name,
        spec.interval_ms,
        c.errors,
        c.requests,
        Permille(c),
        c.p90_ms as u64,
        b.errors,
        b.requests,
        Permille(b),
        b.p90_ms as u64
    );
}

/// An error share as `12.5%` (tenths of a percent, no float formatting).
struct Permille<'a>(&'a Side);

impl core::fmt::Display for Permille<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let pm = self.0.errors.saturating_mul(1000) / self.0.requests.max(1);
        write!(f, "{}.{}%", pm / 10, pm % 10)
    }
}
