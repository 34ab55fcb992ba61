//! What the requests of one root context route with: the rules in force,
//! their stats and guards. Immutable once built (but for the ramps' phases,
//! which ticks move); a reload builds a new one, which new streams take
//! while streams under way keep theirs.

use alloc::boxed::Box;

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
    /// `service/rule/destination` per destination, for the debug header
    /// (empty without one).
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
            Some(r) => (RuleSetStats::define(&r.set), settings.debug_values(&r.set)),
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
        crate::domain::stats::show_weights(
            &rules.set,
            ejected,
            |stat, bp| record(self.stats.weights.get(stat as usize).copied().flatten(), bp),
            |i, values| {
                if let Some(ids) = self.stats.ramps.get(i) {
                    for (id, v) in ids.iter().zip(values) {
                        record(*id, v);
                    }
                }
            },
        );
    }
}
