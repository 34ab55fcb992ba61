//! What the requests of one root context route with: the rules in force,
//! their stats and guards. Immutable once built; a reload builds a new one,
//! which new streams take while streams under way keep theirs.

use alloc::{boxed::Box, format};

use alloc::rc::Rc;
use core::cell::Cell;

use crate::domain::plugin::{Rules, Settings};

use super::guard_host::Guards;
use super::metrics::{self, record, Global};

/// Everything a request needs, immutable once built; a reload builds a new one.
pub struct Active {
    pub settings: Rc<Settings>,
    pub rules: Option<Rules>,
    /// Counter per destination, by `stat_index`.
    pub dest_metrics: Box<[Option<u32>]>,
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
    pub fn new(
        settings: Rc<Settings>,
        rules: Option<Rules>,
        global: Rc<Global>,
        root_id: &str,
    ) -> Self {
        let (dest_metrics, debug_values) = match &rules {
            Some(r) => (
                metrics::define_destinations(&r.set),
                r.set
                    .all_destinations()
                    .map(|(s, r, d)| format!("{}/{}/{}", s.name, r.name, d.label).into())
                    .collect(),
            ),
            None => (Box::default(), Box::default()),
        };
        if let Some(r) = &rules {
            record(global.rules_version, r.version);
        }
        let guard = rules
            .as_ref()
            .and_then(|r| Guards::new(&r.set, r.digest, root_id));
        Active {
            settings,
            rules,
            dest_metrics,
            debug_values,
            global,
            guard,
            warned_secure_over_http: Cell::new(false),
        }
    }
}
