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

use canary_router::domain::stats::{destination_counter, guard_metric, tag_value};
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
    /// `canary_router.guard.{ejected,requests,errors}` with labels, for
    /// rules from the rule source.
    pub guard_by_label: [Option<usize>; 3],
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

impl Global {
    /// Defines them; `labelled` also defines the labelled destination
    /// counter that rules from a rule source count under.
    pub fn define(handle: &ConfigHandle, labelled: bool) -> Arc<Self> {
        let c = |n: &str| handle.define_counter(n, &[]).map(Metric::plain);
        Arc::new(Global {
            passthrough: c("canary_router.passthrough"),
            spoofed_header_removed: c("canary_router.spoofed_header_removed"),
            host_call_errors: c("canary_router.host_call_errors"),
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
            guard_by_label: if labelled {
                let l = &DESTINATION_LABELS;
                [
                    handle.define_gauge("canary_router.guard.ejected", l),
                    handle.define_counter("canary_router.guard.requests", l),
                    handle.define_counter("canary_router.guard.errors", l),
                ]
            } else {
                [None; 3]
            },
        })
    }
}

/// One counter per destination of `set`, in `stat_index` order: plain
/// names defined now (`define` is only called while the configuration is
/// being created), or the labelled counter `by_label` with the
/// destination's values.
pub fn destinations(
    set: &RuleSet,
    by_label: Option<usize>,
    mut define: impl FnMut(&str) -> Option<usize>,
) -> Box<[Option<Metric>]> {
    set.all_destinations()
        .map(|(s, r, d)| match by_label {
            Some(id) => Some(Metric {
                id,
                labels: [&*s.name, &*r.name, &*d.label]
                    .map(|v| Box::from(tag_value(v)))
                    .into(),
            }),
            None => define(&destination_counter(&s.name, &r.name, &d.label)).map(Metric::plain),
        })
        .collect()
}

/// The guard stats of a destination (service, rule, destination names):
/// plain names defined now through `define`, or the labelled ones of `global`.
pub fn guard_slot(
    global: &Global,
    mut define: impl FnMut(Kind, &str) -> Option<usize>,
    names: [&str; 3],
) -> SlotMetrics {
    let [ejected, requests, errors] = global.guard_by_label;
    let labelled = global.requests_by_label.is_some();
    let mut one = |kind: Kind, name: &str, by_label: Option<usize>| {
        if labelled {
            by_label.map(|id| Metric {
                id,
                labels: names.map(|v| Box::from(tag_value(v))).into(),
            })
        } else {
            let [s, r, d] = names;
            define(kind, &guard_metric(name, s, r, d)).map(Metric::plain)
        }
    };
    SlotMetrics {
        ejected: one(Kind::Gauge, "ejected", ejected),
        requests: one(Kind::Counter, "requests", requests),
        errors: one(Kind::Counter, "errors", errors),
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
        let plain = destinations(&set(), None, |n| {
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

        let labelled = destinations(&set(), Some(7), |_| panic!("nothing is defined"));
        let m = labelled[1].as_ref().unwrap();
        assert_eq!(m.id, 7);
        let labels: Vec<&str> = m.labels.iter().map(|l| &**l).collect();
        assert_eq!(labels, ["backend.default.svc.cluster.local", "split", "v2"]);
    }
}
