//! The module's stats: the wasm filter's names, defined on Envoy's
//! configuration object.
//!
//! Envoy lets a configuration define stats only while it is being created
//! (`on_http_filter_config_new`); after that it refuses (`Frozen`). Rules
//! known then (the filter config's own) get one plain counter per
//! destination, named as the wasm filter names it
//! (`canary_router.requests.service=…;.rule=…;.destination=…;`, which the
//! `stats_tags` of the examples turn into labels). Rules that arrive later,
//! from the polled rule file, cannot define new names: a configuration with
//! a `ruleSource` defines `canary_router.requests` once with the label
//! names `service`, `rule`, `destination`, and counts every destination
//! under its label values. `/stats/prometheus` shows both forms the same
//! way (`canary_router_requests{service,rule,destination}`); `/stats` shows
//! the labelled one as `canary_router.requests.service.<s>.rule.<r>.destination.<d>`.

use std::sync::Arc;

use canary_router::domain::stats::{guard_metric, tag_value, tagged};
use canary_router::RuleSet;

use crate::abi::ConfigHandle;
use crate::guard::SlotMetrics;

/// A stat defined on a configuration: Envoy's id, and the label values it
/// is counted under if it was defined with label names (none otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Envoy's id (counters, gauges and labelled ones each have their own ids).
    pub id: usize,
    /// One value per label name of the definition.
    pub labels: Box<[Box<str>]>,
}

impl Metric {
    /// A stat without labels.
    pub fn plain(id: usize) -> Self {
        Metric {
            id,
            labels: Box::default(),
        }
    }
}

/// Counters and gauges that do not depend on the rules (the wasm filter's names).
#[derive(Debug, Default)]
pub struct Global {
    /// Requests the rules did not route.
    pub passthrough: Option<Metric>,
    /// Requests that came with a client's copy of the route header.
    pub spoofed_header_removed: Option<Metric>,
    /// Host calls that failed.
    pub host_call_errors: Option<Metric>,
    /// `Secure` sticky cookies issued to plain-HTTP requests.
    pub secure_cookie_over_http: Option<Metric>,
    /// Configurations refused.
    pub config_rejected: Option<Metric>,
    /// Rule files fetched, valid and installed.
    pub reload_success: Option<Metric>,
    /// Fetches that failed, or rule files refused.
    pub reload_failure: Option<Metric>,
    /// Fetches answered 304 or with the rules in use.
    pub fetch_not_modified: Option<Metric>,
    /// The version of the rules in force.
    pub rules_version: Option<Metric>,
    /// `canary_router.requests` with labels, for rules from the rule source.
    pub requests_by_label: Option<usize>,
    /// The configuration's revision (`canary_router.config_revision`).
    pub config_revision: Option<Metric>,
    /// `canary_router.guard.{ejected,requests,errors,window_requests,
    /// window_errors,window_p90_ms}` with labels, for rules from the rule source.
    pub guard_by_label: [Option<usize>; 6],
    /// `canary_router.weight` with labels, for rules from the rule source.
    pub weight_by_label: Option<usize>,
    /// `canary_router.{ramp_step,ramp_aborted,ramp_next_step_ms}` with the
    /// labels `service` and `rule`, for rules from the rule source.
    pub ramp_by_label: [Option<usize>; 3],
}

/// What a stat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A counter.
    Counter,
    /// A gauge.
    Gauge,
}

/// The label names of per-destination stats.
pub const DESTINATION_LABELS: [&str; 3] = ["service", "rule", "destination"];

/// The label names of per-rule stats (a ramp's gauges).
pub const RULE_LABELS: [&str; 2] = ["service", "rule"];

/// The guard's stats of a destination, by kind (the wasm filter's names).
const GUARD_KINDS: [(Kind, &str); 6] = [
    (Kind::Gauge, "ejected"),
    (Kind::Counter, "requests"),
    (Kind::Counter, "errors"),
    (Kind::Gauge, "window_requests"),
    (Kind::Gauge, "window_errors"),
    (Kind::Gauge, "window_p90_ms"),
];

/// A ramp's gauges (the wasm filter's names).
const RAMP_KINDS: [&str; 3] = ["ramp_step", "ramp_aborted", "ramp_next_step_ms"];

impl Global {
    /// Defines them; `labelled` also defines the labelled destination
    /// counter that rules from a rule source count under.
    pub fn define(handle: &ConfigHandle, labelled: bool) -> Arc<Self> {
        let c = |n: &str| handle.define_counter(n, &[]).map(Metric::plain);
        Arc::new(Global {
            passthrough: c("canary_router.passthrough"),
            spoofed_header_removed: c("canary_router.spoofed_header_removed"),
            host_call_errors: c("canary_router.host_call_errors"),
            secure_cookie_over_http: c("canary_router.secure_cookie_over_http"),
            config_rejected: c("canary_router.config_rejected"),
            reload_success: c("canary_router.rules.reload_success"),
            reload_failure: c("canary_router.rules.reload_failure"),
            fetch_not_modified: c("canary_router.rules.fetch_not_modified"),
            rules_version: handle
                .define_gauge("canary_router.rules_version", &[])
                .map(Metric::plain),
            requests_by_label: labelled
                .then(|| handle.define_counter("canary_router.requests", &DESTINATION_LABELS))
                .flatten(),
            config_revision: handle
                .define_gauge("canary_router.config_revision", &[])
                .map(Metric::plain),
            guard_by_label: GUARD_KINDS.map(|(kind, name)| {
                let name = format!("canary_router.guard.{name}");
                match (labelled, kind) {
                    (false, _) => None,
                    (true, Kind::Counter) => handle.define_counter(&name, &DESTINATION_LABELS),
                    (true, Kind::Gauge) => handle.define_gauge(&name, &DESTINATION_LABELS),
                }
            }),
            weight_by_label: labelled
                .then(|| handle.define_gauge("canary_router.weight", &DESTINATION_LABELS))
                .flatten(),
            ramp_by_label: RAMP_KINDS.map(|name| {
                labelled
                    .then(|| handle.define_gauge(&format!("canary_router.{name}"), &RULE_LABELS))
                    .flatten()
            }),
        })
    }
}

/// One stat per destination of `set`, in `stat_index` order: plain
/// names defined now (`define` is only called while the configuration is
/// being created), or the labelled stat `by_label` with the destination's
/// values. `kind` is `requests` (the counters) or `weight` (the gauges).
pub fn destinations(
    set: &RuleSet,
    kind: &str,
    by_label: Option<usize>,
    mut define: impl FnMut(&str) -> Option<usize>,
) -> Box<[Option<Metric>]> {
    set.all_destinations()
        .map(|(s, r, d)| match by_label {
            Some(id) => Some(labelled(id, &[&s.name, &r.name, d.label])),
            None => define(&tagged(kind, &s.name, &r.name, Some(d.label))).map(Metric::plain),
        })
        .collect()
}

/// A ramp's gauges (step, aborted, next step) for each rule of `set` with
/// a ramp, in rule order: plain names defined now, or the labelled ones of
/// `global`.
pub fn ramps(
    set: &RuleSet,
    global: &Global,
    mut define: impl FnMut(&str) -> Option<usize>,
) -> Box<[[Option<Metric>; 3]]> {
    let by_label = global.requests_by_label.is_some();
    set.services()
        .iter()
        .flat_map(|s| s.rules.iter().map(move |r| (s, r)))
        .filter(|(_, r)| r.route.ramp().is_some())
        .map(|(s, r)| {
            let mut out: [Option<Metric>; 3] = Default::default();
            for ((m, kind), id) in out.iter_mut().zip(RAMP_KINDS).zip(global.ramp_by_label) {
                *m = if by_label {
                    id.map(|id| labelled(id, &[&s.name, &r.name]))
                } else {
                    define(&tagged(kind, &s.name, &r.name, None)).map(Metric::plain)
                };
            }
            out
        })
        .collect()
}

/// A labelled stat with these values.
fn labelled(id: usize, values: &[&str]) -> Metric {
    Metric {
        id,
        labels: values.iter().map(|v| Box::from(tag_value(v))).collect(),
    }
}

/// The guard stats of a destination (service, rule, destination names):
/// plain names defined now through `define`, or the labelled ones of `global`.
pub fn guard_slot(
    global: &Global,
    mut define: impl FnMut(Kind, &str) -> Option<usize>,
    names: [&str; 3],
) -> SlotMetrics {
    let by_label = global.requests_by_label.is_some();
    let [s, r, d] = names;
    let mut one = GUARD_KINDS
        .iter()
        .zip(global.guard_by_label)
        .map(|((kind, name), id)| {
            if by_label {
                id.map(|id| labelled(id, &names))
            } else {
                define(*kind, &guard_metric(name, s, r, d)).map(Metric::plain)
            }
        });
    let mut next = || one.next().flatten();
    SlotMetrics {
        ejected: next(),
        requests: next(),
        errors: next(),
        window: [next(), next(), next()],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use canary_router::Plugin;

    fn set() -> RuleSet {
        let json = br#"{"services":[{"hosts":["backend"],"http":[{"name":"split","route":[
            {"destination":{"host":"backend","subset":"v1","port":{"number":80}},"weight":90},
            {"destination":{"host":"backend","subset":"v2","port":{"number":80}},"weight":10}]}]}]}"#;
        Plugin::from_bytes(json, &Default::default())
            .unwrap()
            .rules
            .unwrap()
            .set
    }

    #[test]
    fn inline_rules_get_the_wasm_filters_names_and_polled_rules_labels() {
        let mut names = Vec::new();
        let plain = destinations(&set(), "requests", None, |n| {
            names.push(n.to_string());
            Some(names.len())
        });
        assert_eq!(
            names,
            [
                "canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v1;",
                "canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;",
            ]
        );
        assert_eq!(&*plain, &[Some(Metric::plain(1)), Some(Metric::plain(2))]);

        let labelled = destinations(&set(), "requests", Some(7), |_| {
            panic!("nothing is defined")
        });
        let m = labelled[1].as_ref().unwrap();
        assert_eq!(m.id, 7);
        let labels: Vec<&str> = m.labels.iter().map(|l| &**l).collect();
        assert_eq!(labels, ["backend.default.svc.cluster.local", "split", "v2"]);
    }
}
