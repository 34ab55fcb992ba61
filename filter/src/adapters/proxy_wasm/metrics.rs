//! The filter's stats. Envoy shows them under `wasmcustom.` in `/stats`, and
//! without that prefix in `/stats/prometheus`. Per-destination counters carry
//! their service, rule and destination as `.name=value;` segments that the
//! `stats_tags` of the examples turn into Prometheus labels.

use alloc::vec::Vec;

use crate::RuleSet;

use filter_runtime::proxy_wasm::hostcalls::{self, MetricKind};
use filter_runtime::proxy_wasm::logger;

/// Counters and gauges that do not depend on the rules.
pub struct Global {
    pub passthrough: Option<u32>,
    pub spoofed_header_removed: Option<u32>,
    pub host_call_errors: Option<u32>,
    pub config_rejected: Option<u32>,
    pub reload_success: Option<u32>,
    pub reload_failure: Option<u32>,
    pub fetch_not_modified: Option<u32>,
    pub rules_version: Option<u32>,
    pub secure_cookie_over_http: Option<u32>,
    pub config_revision: Option<u32>,
}

/// Defines a metric; `None` (logged) if the host refuses.
pub fn define(kind: MetricKind, name: &str) -> Option<u32> {
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(s) => {
            logger::warn!("cannot define metric {name}: {s}");
            None
        }
    }
}

impl Global {
    pub fn define() -> Self {
        let c = |n: &str| define(MetricKind::Counter, n);
        Global {
            passthrough: c("canary_router.passthrough"),
            spoofed_header_removed: c("canary_router.spoofed_header_removed"),
            host_call_errors: c("canary_router.host_call_errors"),
            config_rejected: c("canary_router.config_rejected"),
            reload_success: c("canary_router.rules.reload_success"),
            reload_failure: c("canary_router.rules.reload_failure"),
            fetch_not_modified: c("canary_router.rules.fetch_not_modified"),
            rules_version: define(MetricKind::Gauge, "canary_router.rules_version"),
            secure_cookie_over_http: c("canary_router.secure_cookie_over_http"),
            config_revision: define(MetricKind::Gauge, "canary_router.config_revision"),
        }
    }
}

/// Adds one to a counter; a failed host call is not worth more than that.
#[inline]
pub fn bump(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// Adds `n` to a counter.
pub fn add(id: Option<u32>, n: u32) {
    if let (Some(id), 1..) = (id, n) {
        let _ = hostcalls::increment_metric(id, i64::from(n));
    }
}

/// Sets a gauge.
pub fn record(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// The stats of one rule set: per destination (by `stat_index`) its
/// request counter and its weight gauge, and per rule with a ramp (in rule
/// order) its step, aborted and next-step gauges.
#[derive(Default)]
pub struct RuleSetStats {
    pub counters: Vec<Option<u32>>,
    pub weights: Vec<Option<u32>>,
    pub ramps: Vec<[Option<u32>; 3]>,
}

impl RuleSetStats {
    /// Defines the stats of `rules`.
    #[inline(never)]
    pub fn define(rules: &RuleSet) -> Self {
        let mut out = RuleSetStats::default();
        for s in rules.services() {
            for r in &s.rules {
                let tagged = |kind, d| crate::domain::stats::tagged(kind, &s.name, &r.name, d);
                for d in rules.dests(&r.route) {
                    let label = Some(d.label);
                    out.counters
                        .push(define(MetricKind::Counter, &tagged("requests", label)));
                    out.weights
                        .push(define(MetricKind::Gauge, &tagged("weight", label)));
                }
                if r.route.ramp().is_some() {
                    let mut ids = [None; 3];
                    for (id, kind) in
                        ids.iter_mut()
                            .zip(["ramp_step", "ramp_aborted", "ramp_next_step_ms"])
                    {
                        *id = define(MetricKind::Gauge, &tagged(kind, None));
                    }
                    out.ramps.push(ids);
                }
            }
        }
        out
    }

    /// Sets every gauge to 0 (the rule set is being replaced).
    pub fn zero(&self) {
        for id in &self.weights {
            record(*id, 0);
        }
        for ids in &self.ramps {
            for id in ids {
                record(*id, 0);
            }
        }
    }
}
