//! Feeds the guards ([`crate::domain::guard`]) of one VM: counts the
//! responses of guarded destinations, flushes them into shared data, learns
//! ejections, and re-picks requests a decision sent to an ejected
//! destination. Built only for rule sets with a guard; without one, the
//! request and response paths test one `Option` and nothing else.

use alloc::{boxed::Box, format, string::String, vec, vec::Vec};

use core::cell::Cell;

use crate::domain::guard::{self, Flushed, Judge, Shape, Spec, Tally, Tripped};
use crate::domain::guarded;
use crate::domain::rules::{Outcome, RequestView, RuleSet};

use filter_runtime::proxy_wasm::hostcalls::{self, MetricKind};
use filter_runtime::proxy_wasm::logger;

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
    /// The slot of its ramp's canary: ejecting that one stops the ramp.
    ramp: Option<u32>,
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
    /// A newer rule set's gauges are shown: ticks and ejections move this
    /// one's routing but write no gauge ([`super::active`]).
    pub muted: Cell<bool>,
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
        guarded::for_each(
            set,
            |ordinal, slot, s, r, d| {
                if let Some(e) = of_stat.get_mut(d.stat_index as usize) {
                    *e = (ordinal, slot);
                }
                let tags =
                    |kind| crate::domain::stats::guard_metric(kind, &s.name, &r.name, d.label);
                let gauge = |kind| define(MetricKind::Gauge, &tags(kind));
                Slot {
                    stat_index: d.stat_index,
                    label: d.label.into(),
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
                }
            },
            |g| {
                let key = format!("{prefix}/{digest}/{}", rules.len());
                keys.push((key.clone(), g.slots.len(), g.timed));
                rules.push(Rule {
                    key,
                    specs: g.specs,
                    shape: g.shape,
                    slots: g.slots,
                    timed: g.timed,
                    ramp: g.ramp_canary,
                    at: g.at,
                });
            },
        );
        guard::install(&mut SharedData, &prefix, &digest, &keys);
        let mut bucket = None;
        for spec in rules.iter().flat_map(|r| r.specs.iter()) {
            let ms = spec.bucket_ms();
            bucket = Some(bucket.map_or(ms, |b: u64| b.min(ms)));
        }
        let bucket = bucket.unwrap_or(1000);
        let guards = Guards {
            rules,
            of_stat,
            ejected: {
                let mut ejected = Vec::with_capacity(n);
                ejected.resize_with(n, || Cell::new(false));
                ejected
            },
            tick_ms: bucket.clamp(100, 1000) as u32,
            muted: Cell::new(false),
        };
        guards.zero();
        guards.tick(set);
        Some(guards)
    }

    /// Sets every guard gauge to 0 (the rule set is being replaced).
    pub fn zero(&self) {
        for rule in &self.rules {
            for slot in &rule.slots {
                record(slot.ejected_gauge, 0);
                for id in slot.window {
                    record(id, 0);
                }
            }
        }
    }

    /// Writes a gauge unless [`Guards::muted`].
    fn show(&self, id: Option<u32>, value: u64) {
        if !self.muted.get() {
            record(id, value);
        }
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
            let stat = |i: usize| rule.slots.get(i).map_or(NONE, |s| s.stat_index);
            for (i, slot) in rule.slots.iter().enumerate() {
                let Some(every) = guarded::sample_every(&r.route, &rule.specs, stat, i) else {
                    continue;
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
                let ejected = self.is_ejected(slot.stat_index);
                self.show(slot.ejected_gauge, u64::from(ejected));
                self.show(requests, side.requests);
                self.show(errors, side.errors);
                self.show(p90, side.p90_ms as u64);
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
            self.show(slot.ejected_gauge, 1);
            learned = true;
            if rule.ramp == Some(i as u32) {
                // Every VM stops its own copy; the one that ejected says so
                // (after its `guard ejected` line), the others at debug level.
                let level = if tripped == Some(i) {
                    logger::WARN
                } else {
                    logger::DEBUG
                };
                if let Some(line) = guarded::stop_ramp(set, rule.at, &slot.name) {
                    logger::log!(level, "{line}");
                }
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
fn log_ejection(rule: &Rule, slot: &Slot, spec: &Spec, m: &Tripped) {
    let label = |i: usize| rule.slots.get(i).map(|s| &*s.label);
    logger::warn!("{}", guarded::Ejection::new(&slot.name, spec, m, label));
}
