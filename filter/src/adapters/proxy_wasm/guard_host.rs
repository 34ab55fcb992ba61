//! Feeds the guards ([`crate::domain::guard`]) of one VM: counts the
//! responses of guarded destinations, flushes them into shared data, learns
//! ejections, and re-picks requests a decision sent to an ejected
//! destination. Built only for rule sets with a guard; without one, the
//! request and response paths test one `Option` and nothing else.

use alloc::{boxed::Box, format, string::String, vec, vec::Vec};

use core::cell::Cell;

use crate::domain::guard::{self, Flushed, Shape, Spec, Tally};
use crate::domain::rules::{Outcome, RequestView, RuleSet};

use filter_runtime::proxy_wasm::hostcalls::{self, MetricKind};

use super::metrics::{define, record};
use super::shared_data::SharedData;

const NONE: u32 = u32::MAX;

/// One guarded destination of a rule.
struct Slot {
    stat_index: u32,
    /// `service S, rule R, destination D`, for the log.
    name: Box<str>,
    pending: Cell<Tally>,
    ejected_gauge: Option<u32>,
    requests: Option<u32>,
    errors: Option<u32>,
}

/// A rule with at least one guarded destination.
struct Rule {
    key: String,
    specs: Vec<Spec>,
    shape: Shape,
    slots: Vec<Slot>,
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
        // Each rule's shared key and slot count, for `guard::install`.
        let mut keys: Vec<(String, usize)> = Vec::new();
        for s in set.services() {
            for r in &s.rules {
                let ds = &r.route.destinations;
                if !ds.iter().any(|d| d.guard.is_some()) {
                    continue;
                }
                let ordinal = rules.len() as u32;
                let mut specs = Vec::new();
                let mut slots = Vec::new();
                let mut live = Vec::new();
                let mut unguarded_live = false;
                for d in ds {
                    let Some(spec) = d.guard else {
                        unguarded_live |= d.weight > 0;
                        continue;
                    };
                    if let Some(e) = of_stat.get_mut(d.stat_index as usize) {
                        *e = (ordinal, slots.len() as u32);
                    }
                    let tags =
                        |kind| crate::domain::stats::guard_metric(kind, &s.name, &r.name, &d.label);
                    specs.push(spec);
                    live.push(d.weight > 0);
                    slots.push(Slot {
                        stat_index: d.stat_index,
                        name: format!(
                            "service {}, rule {}, destination {}",
                            s.name, r.name, d.label
                        )
                        .into(),
                        pending: Cell::new(Tally::default()),
                        ejected_gauge: define(MetricKind::Gauge, &tags("ejected")),
                        requests: define(MetricKind::Counter, &tags("requests")),
                        errors: define(MetricKind::Counter, &tags("errors")),
                    });
                }
                let key = format!("{prefix}/{digest}/{ordinal}");
                keys.push((key.clone(), slots.len()));
                rules.push(Rule {
                    key,
                    specs,
                    shape: Shape {
                        live: live.into(),
                        unguarded_live,
                    },
                    slots,
                });
            }
        }
        let fresh = guard::install(&mut SharedData, &prefix, &digest, &keys);
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
        for (ri, rule) in guards.rules.iter().enumerate() {
            for slot in rule.slots.iter() {
                record(slot.ejected_gauge, 0);
            }
            if !fresh {
                guards.flush(ri, 0, Tally::default());
            }
        }
        Some(guards)
    }

    /// Whether destination `stat_index` is ejected, as this VM knows.
    #[inline]
    fn is_ejected(&self, stat_index: u32) -> bool {
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

    /// Whether destination `stat_index` has a guard (its responses are counted).
    #[inline]
    pub fn guards(&self, stat_index: u32) -> bool {
        self.of_stat
            .get(stat_index as usize)
            .is_some_and(|(r, _)| *r != NONE)
    }

    /// Counts a response of destination `stat_index`: its status, or `None`
    /// when the stream ended without one.
    pub fn on_response(&self, stat_index: u32, status: Option<u32>) {
        let Some(&(ri, si)) = self.of_stat.get(stat_index as usize) else {
            return;
        };
        let Some(slot) = self
            .rules
            .get(ri as usize)
            .and_then(|r| r.slots.get(si as usize))
        else {
            return;
        };
        let error = status.is_none_or(|s| s >= 500);
        let mut t = slot.pending.get();
        t.requests += 1;
        t.errors += u32::from(error);
        slot.pending.set(Tally::default());
        if error || t.requests >= guard::FLUSH_SUCCESSES {
            self.flush(ri as usize, si as usize, t);
        } else {
            slot.pending.set(t);
        }
    }

    /// Flushes every pending tally, and learns what other VMs ejected.
    #[inline(never)]
    pub fn tick(&self) {
        for (ri, rule) in self.rules.iter().enumerate() {
            let mut flushed = false;
            for (si, slot) in rule.slots.iter().enumerate() {
                let t = slot.pending.replace(Tally::default());
                if !t.is_empty() {
                    self.flush(ri, si, t);
                    flushed = true;
                }
            }
            let all_known = rule.slots.iter().all(|s| self.is_ejected(s.stat_index));
            if !flushed && !all_known {
                self.flush(ri, 0, Tally::default());
            }
        }
    }

    /// Adds `t` to slot `si` of rule `ri` in shared data (an empty tally
    /// only reads), then applies what the record says is ejected.
    #[inline(never)]
    fn flush(&self, ri: usize, si: usize, t: Tally) {
        let Some(rule) = self.rules.get(ri) else {
            return;
        };
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
                p.requests += t.requests;
                p.errors += t.errors;
                slot.pending.set(p);
            }
            return;
        };
        if let Some(slot) = rule.slots.get(si) {
            super::metrics::add(slot.requests, t.requests);
            super::metrics::add(slot.errors, t.errors);
        }
        for (i, slot) in rule.slots.iter().enumerate() {
            if ejected & (1u64 << (i % 64)) != 0 && !self.is_ejected(slot.stat_index) {
                if let Some(c) = self.ejected.get(slot.stat_index as usize) {
                    c.set(true);
                }
                record(slot.ejected_gauge, 1);
            }
        }
        if let (Some(m), Some(slot), Some(spec)) = (tripped, rule.slots.get(si), rule.specs.get(si))
        {
            let pm = m.per_mille();
            log::warn!(
                "guard ejected {}: {} of {} responses failed ({}.{}%) in the last {}ms, at or over maxErrorRate; \
                 its requests go to the rule's other destinations until the rule set changes",
                slot.name,
                m.errors,
                m.requests,
                pm / 10,
                pm % 10,
                spec.interval_ms
            );
        }
    }
}
