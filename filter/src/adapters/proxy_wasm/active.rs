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

/// The rule sets built in this VM and still in use, oldest first, each
/// with its root id's FNV-1a hash. Gauge ids are the VM's, one per name,
/// so only the newest rule set of a root id shows its gauges: a new one
/// sets its predecessor's to 0 and mutes it, whether it comes to the same
/// root context (a new configuration, rules from the rule source) or to a
/// new root context of the same plugin (a listener or ECDS update, while
/// the old context drains; or another listener of the same plugin). When
/// the shown one goes and an older one is still in use, that one shows
/// again; when none is, its gauges go to 0.
static SHOWN: Single<Cell<Vec<Shown>>> = Single(Cell::new(Vec::new()));

/// One entry of [`SHOWN`].
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
    /// The root id's hash, its key in [`SHOWN`].
    key: u32,
    /// A newer rule set of the root id shows its gauges: this one's ticks
    /// and ejections move its routing but write no gauge.
    muted: Cell<bool>,
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
        shown.retain(|s| s.active.strong_count() > 0);
        if let Some(p) = newest(&shown, key) {
            p.mute();
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
        let active = Rc::new(Active {
            settings,
            rules,
            stats,
            debug_values,
            global,
            guard,
            warned_secure_over_http: Cell::new(false),
            key,
            muted: Cell::new(false),
        });
        active.show_weights();
        shown.push(Shown {
            key,
            active: Rc::downgrade(&active),
        });
        SHOWN.0.set(shown);
        active
    }

    /// Sets this rule set's gauges to 0 and writes none until [`unmute`].
    ///
    /// [`unmute`]: Active::unmute
    #[inline(never)]
    fn mute(&self) {
        self.muted.set(true);
        self.stats.zero();
        if let Some(g) = &self.guard {
            g.muted.set(true);
            g.zero();
        }
    }

    /// Shows this rule set's gauges again (the newer one went): its
    /// weights now, its guards' ejections and windows on their next tick.
    fn unmute(&self) {
        self.muted.set(false);
        if let Some(g) = &self.guard {
            g.muted.set(false);
        }
        self.show_weights();
    }

    /// Sets the weight gauges (basis points, ejected destinations at 0)
    /// and the ramps' gauges to what requests are routed with now.
    #[inline(never)]
    pub fn show_weights(&self) {
        let Some(rules) = &self.rules else { return };
        if let Some(g) = &self.guard {
            g.resample(&rules.set);
        }
        if self.muted.get() {
            return;
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

/// The newest rule set of `key` still in use.
fn newest(shown: &[Shown], key: u32) -> Option<Rc<Active>> {
    for s in shown.iter().rev() {
        if s.key == key {
            if let Some(a) = s.active.upgrade() {
                return Some(a);
            }
        }
    }
    None
}

impl Drop for Active {
    /// The shown rule set is no longer used by any stream or root context:
    /// its gauges go to 0, and the newest older one of its root id still
    /// in use, if any, shows its own again.
    fn drop(&mut self) {
        if self.muted.get() {
            return;
        }
        self.mute();
        let shown = SHOWN.0.take();
        let older = newest(&shown, self.key);
        SHOWN.0.set(shown);
        if let Some(a) = older {
            a.unmute();
        }
    }
}
