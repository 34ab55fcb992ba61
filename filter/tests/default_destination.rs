#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `defaultDestination`: the destinations it names are reached through
//! Envoy's own route (no header write), every other one through the route
//! header; the decisions themselves do not change.

mod common;
use canary_router::domain::rules::Via;
use canary_router::{Outcome, Plugin, RuleSet};
use common::*;

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";

/// Two services: `backend` (a header rule to v2, then 90/10) with the given
/// `defaultDestination` field (or none), and `other`, split 50/50 between
/// clusters named like backend's.
fn rules(default: Option<&str>) -> String {
    let default = default
        .map(|d| format!(r#","defaultDestination":{d}"#))
        .unwrap_or_default();
    let dest = |subset: &str| {
        format!(r#"{{"host":"backend","subset":"{subset}","port":{{"number":80}}}}"#)
    };
    format!(
        r#"{{"services":[
            {{"hosts":["backend"]{default},"http":[
                {{"name":"testers","match":[{{"headers":{{"canary":{{"exact":"yes"}}}}}}],"route":[{{"destination":{v2}}}]}},
                {{"name":"split","route":[{{"destination":{v1},"weight":90}},{{"destination":{v2},"weight":10}}]}}]}},
            {{"hosts":["other"],"http":[
                {{"name":"split","route":[{{"destination":{{"cluster":"{V1}"}},"weight":50}},{{"destination":{{"cluster":"{V2}"}},"weight":50}}]}}]}}]}}"#,
        v1 = dest("v1"),
        v2 = dest("v2"),
    )
}

/// Every destination of the rule set: (service, rule, cluster, via).
fn vias(set: &RuleSet) -> Vec<(String, String, String, Via)> {
    set.all_destinations()
        .map(|(s, r, d)| {
            (
                s.name.to_string(),
                r.name.to_string(),
                d.cluster.to_string(),
                d.via,
            )
        })
        .collect()
}

#[test]
fn without_it_every_destination_is_reached_through_the_route_header() {
    let set = compile(&rules(None));
    assert_eq!(set.destination_count(), 5);
    assert!(vias(&set).iter().all(|(.., via)| *via == Via::RouteHeader));
}

#[test]
fn it_marks_that_cluster_in_every_rule_of_its_own_service_only() {
    // A short host, expanded like the rules' hosts, names the same cluster.
    for default in [
        r#"{"host":"backend","subset":"v1","port":{"number":80}}"#.to_string(),
        r#"{"host":"backend.default.svc.cluster.local","subset":"v1","port":{"number":80}}"#
            .to_string(),
        format!(r#"{{"cluster":"{V1}"}}"#),
    ] {
        let set = compile(&rules(Some(&default)));
        let backend = "backend.default.svc.cluster.local";
        let other = "other.default.svc.cluster.local";
        let expected = vec![
            (backend, "testers", V2, Via::RouteHeader),
            (backend, "split", V1, Via::DefaultRoute),
            (backend, "split", V2, Via::RouteHeader),
            (other, "split", V1, Via::RouteHeader),
            (other, "split", V2, Via::RouteHeader),
        ];
        let got = vias(&set);
        let got: Vec<_> = got
            .iter()
            .map(|(s, r, c, v)| (s.as_str(), r.as_str(), c.as_str(), *v))
            .collect();
        assert_eq!(got, expected, "defaultDestination {default}");
    }
}

#[test]
fn a_default_no_rule_reaches_is_accepted_and_marks_nothing() {
    let set = compile(&rules(Some(
        r#"{"host":"backend","subset":"v3","port":{"number":80}}"#,
    )));
    assert!(vias(&set).iter().all(|(.., via)| *via == Via::RouteHeader));
}

#[test]
fn decisions_are_the_same_with_and_without_it() {
    let with = compile(&rules(Some(
        r#"{"host":"backend","subset":"v1","port":{"number":80}}"#,
    )));
    let without = compile(&rules(None));
    let requests = [
        Req::to("backend"),
        Req::to("backend").with("canary", "yes"),
        Req::to("other"),
        Req::to("elsewhere"),
    ];
    for req in &requests {
        for r in 0..2000u64 {
            let random = r.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let key = |o: Outcome<'_>| match o {
                Outcome::Routed(d) => Some((d.service, d.rule, d.destination, d.target.stat_index)),
                Outcome::NoRule { service } => Some((service, usize::MAX, 0, 0)),
                Outcome::NoService => None,
            };
            assert_eq!(
                key(with.decide(req, || random)),
                key(without.decide(req, || random)),
                "{req:?}, random {random}"
            );
        }
    }
}

#[test]
fn a_bad_default_names_its_field() {
    let cases = [
        (
            r#"{"host":"backend","subset":"v1","port":{"number":0}}"#,
            "services[0].defaultDestination.port.number",
        ),
        (
            r#"{"host":"*","subset":"v1","port":{"number":80}}"#,
            "services[0].defaultDestination.host",
        ),
        (
            r#"{"cluster":"has space"}"#,
            "services[0].defaultDestination.cluster",
        ),
        (r#"{}"#, "services[0].defaultDestination"),
        (
            r#"{"host":"backend","subst":"v1","port":{"number":80}}"#,
            "services[0].defaultDestination.subst",
        ),
    ];
    for (default, path) in cases {
        let json = rules(Some(default));
        match Plugin::from_bytes(json.as_bytes(), &workload("default", &[])) {
            Ok(_) => panic!("accepted defaultDestination {default}"),
            Err(e) => {
                assert_eq!(e.path(), Some(path), "{default}: {e}");
                assert!(e.to_string().starts_with(path), "{e}");
            }
        }
    }
}
