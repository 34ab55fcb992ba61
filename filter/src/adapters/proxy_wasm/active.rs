//! What the requests of one root context route with: the rules in force,
//! their stats and guards. Immutable once built (but for the ramps' phases,
//! which ticks move); a reload builds a new one, which new streams take
//! while streams under way keep theirs.

use alloc::{boxed::Box, format};

use alloc::rc::Rc;
use core::cell::Cell;

use crate::domain::plugin::{Rules, Settings};
use filter_runtime::proxy_wasm::hostcalls;

use super::guard_host::Guards;
use super::metrics::{record, Global, RuleSetStats};

/// Everything a request needs, immutable once built (but for the ramps'
/// phases, which ticks move); a reload builds a new one.
pub struct Active {
    pub settings: Rc<Settings>,
    pub rules: Option<Rules>,
    /// The rule set's counters and gauges.
    pub stats: RuleSetStats,
    /// `service/rule/destination` per destination, for the debug header.
    pub debug_values: Box<[Box<str>]>,
    pub global: Rc<Global>,
    /// The guards, if a destination has one.
    pub guard: Option<Guards>,
    /// A `Secure` cookie was issued to an `http` request (warned once
    /// per configuration).
    pub warned_secure_over_http: Cell<bool>,
}

impl Active {
    /// What `rules` need; `previous`'s gauges of the rule set it replaces
    /// go to 0 first (a rule or destination no longer there shows no weight).
    pub fn new(
        settings: Rc<Settings>,
        rules: Option<Rules>,
        global: Rc<Global>,
        root_id: &str,
        previous: Option<&Active>,
    ) -> Self {
        if let Some(p) = previous {
            p.stats.zero();
        }
        let (stats, debug_values) = match &rules {
            Some(r) => (
                RuleSetStats::define(&r.set),
                r.set
                    .all_destinations()
                    .map(|(s, r, d)| format!("{}/{}/{}", s.name, r.name, d.label).into())
                    .collect(),
            ),
            None => Default::default(),
        };
        if let Some(r) = &rules {
            record(global.rules_version, r.version);
            record(global.config_revision, r.revision);
            r.set.advance(hostcalls::now_ms().unwrap_or(0));
        }
        let guard = rules
            .as_ref()
            .and_then(|r| Guards::new(&r.set, r.digest, root_id));
        let active = Active {
            settings,
            rules,
            stats,
            debug_values,
            global,
            guard,
            warned_secure_over_http: Cell::new(false),
        };
        active.show_weights();
        active
    }

    /// Sets the weight gauges (basis points, ejected destinations at 0)
    /// and the ramps' gauges to what requests are routed with now.
    #[inline(never)]
    pub fn show_weights(&self) {
        let Some(rules) = &self.rules else { return };
        if let Some(g) = &self.guard {
            g.resample(&rules.set);
        }
        let ejected = |stat: u32| self.guard.as_ref().is_some_and(|g| g.is_ejected(stat));
        let mut ramp_gauges = self.stats.ramps.iter();
        for r in rules.set.services().iter().flat_map(|s| &s.rules) {
            let (ds, w) = (&r.route.destinations, r.route.weights());
            let kept = || {
                ds.iter()
                    .zip(w.each())
                    .map(|(d, w)| if ejected(d.stat_index) { 0 } else { w })
            };
            let total = kept().sum();
            for (d, w) in ds.iter().zip(kept()) {
                let gauge = self
                    .stats
                    .weights
                    .get(d.stat_index as usize)
                    .copied()
                    .flatten();
                record(gauge, crate::domain::ramp::share_bp(w, total));
            }
            let Some(ramp) = r.route.ramp() else { continue };
            let Some([step, aborted, next_ms]) = ramp_gauges.next() else {
                continue;
            };
            let phase = ramp.phase();
            let stopped = ramp.is_aborted();
            let steps = ramp.schedule.phases.get(phase).map_or(0, |p| p.steps_done);
            record(*step, u64::from(steps));
            record(*aborted, u64::from(stopped));
            let next = ramp.schedule.next_at(phase).filter(|_| !stopped);
            record(*next_ms, next.unwrap_or(0));
        }
    }
}
