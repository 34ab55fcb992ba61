//! What the requests of one root context route with: the rules in force,
//! their stats and guards. Immutable once built (but for the ramps' phases,
//! which ticks move); a reload builds a new one, which new streams take
//! while streams under way keep theirs.

use alloc::boxed::Box;
use alloc::vec::Vec;

use alloc::rc::{Rc, Weak};
use core::cell::Cell;

use crate::domain::plugin::{Rules, Settings};
use filter_runtime::proxy_wasm::hostcalls;
use filter_runtime::Single;

use super::guard_host::Guards;
use super::metrics::{record, Global, RuleSetStats};

/// The rule set last built in this VM, by root id (its FNV-1a hash): the
/// next one of the same root id sets its gauges to 0 before it shows its
/// own. That next one may come to the same root context (a new
/// configuration, rules from the rule source) or to a new root context of
/// the same plugin, which is what a listener or ECDS update makes while
/// the old context drains; gauge ids are the VM's, the same for a name in
/// both.
static SHOWN: Single<Cell<Vec<Shown>>> = Single(Cell::new(Vec::new()));

/// One root id's entry in [`SHOWN`].
struct Shown {
    key: u32,
    active: Weak<Active>,
}

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
    /// What `rules` need. The gauges of the rule set it replaces go to 0
    /// first, so that a rule or destination no longer there shows no
    /// weight, ramp, ejection or window ([`SHOWN`]).
    #[inline(never)]
    pub fn new(
        settings: Rc<Settings>,
        rules: Option<Rules>,
        global: Rc<Global>,
        root_id: &str,
    ) -> Rc<Self> {
        let key = root_id.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let mut shown = SHOWN.0.take();
        if let Some(p) = shown
            .iter()
            .find(|s| s.key == key)
            .and_then(|s| s.active.upgrade())
        {
            p.stats.zero();
            if let Some(g) = &p.guard {
                g.zero();
            }
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
        let active = Rc::new(active);
        let weak = Rc::downgrade(&active);
        match shown.iter_mut().find(|s| s.key == key) {
            Some(s) => s.active = weak,
            None => shown.push(Shown { key, active: weak }),
        }
        SHOWN.0.set(shown);
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
