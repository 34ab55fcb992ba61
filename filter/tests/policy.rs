#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Rules that carry Istio route policies (`timeout`, `retries`, `headers`,
//! ...): the filter accepts them without reading their content and writes
//! `<cluster>;<rule name>` into the route header, a value only that rule's
//! glue routes accept, so that each rule's requests keep its own policies.

mod common;

use canary_router::domain::rules::Via;
use canary_router::{Plugin, Workload};
use common::{cluster, compile, Req};

/// `testers` and `split` send to the same subsets; `testers` carries policies.
fn rules(testers_policy: &str) -> String {
    format!(
        r#"{{"services":[{{"hosts":["reviews"],"defaultDestination":{{"host":"reviews","subset":"v1","port":{{"number":9080}}}},"http":[
        {{"name":"testers","match":[{{"headers":{{"x-tester":{{}}}}}}],{testers_policy}
          "route":[{{"destination":{{"host":"reviews","subset":"v1","port":{{"number":9080}}}},"weight":50}},
                   {{"destination":{{"host":"reviews","subset":"v2","port":{{"number":9080}}}},"weight":50}}],
          "sticky":{{"header":"x-user"}}}},
        {{"name":"split","route":[{{"destination":{{"host":"reviews","subset":"v2","port":{{"number":9080}}}}}}]}}]}}]}}"#
    )
}

const POLICIES: &str = r#""timeout":"1s","retries":{"attempts":3,"retryOn":"5xx","perTryTimeout":"0.5s"},
    "headers":{"request":{"set":{"x-a":"1"},"remove":["x-b"]}},"rewrite":{"uri":"/v2"},
    "mirror":{"host":"reviews","subset":"v3"},"mirrorPercentage":{"value":50},
    "mirrors":[{"destination":{"host":"shadow"}}],"fault":{"abort":{"httpStatus":503,"percentage":{"value":100}}},
    "corsPolicy":{"allowOrigins":[{"exact":"https://a.example"}],"maxAge":"24h","nested":[[{"any":[1,-2.5e3,null,true]}]]},"#;

#[test]
fn a_rule_with_policies_names_itself_after_the_cluster_and_others_do_not() {
    let set = compile(&rules(POLICIES));
    let tester = |user: &str| {
        cluster(
            &set,
            &Req::to("reviews")
                .with("x-tester", "1")
                .with("x-user", user),
        )
        .unwrap()
    };
    let mut seen = std::collections::BTreeSet::new();
    for u in 0..200 {
        seen.insert(tester(&format!("user-{u}")));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "outbound|9080|v1|reviews.default.svc.cluster.local;testers",
            "outbound|9080|v2|reviews.default.svc.cluster.local;testers"
        ]
    );
    assert_eq!(
        cluster(&set, &Req::to("reviews")).as_deref(),
        Some("outbound|9080|v2|reviews.default.svc.cluster.local")
    );
    // The policy rule's v1 is the defaultDestination, but Envoy's own route
    // does not carry the rule's policies: its requests take the header too.
    let testers = &set.services()[0].rules[0].route.destinations;
    assert!(testers.iter().all(|d| d.via == Via::RouteHeader));
}

#[test]
fn adding_a_policy_moves_no_sticky_user() {
    let plain = compile(&rules(""));
    let with = compile(&rules(POLICIES));
    for u in 0..500 {
        let req = Req::to("reviews")
            .with("x-tester", "1")
            .with("x-user", format!("user-{u}"));
        let before = cluster(&plain, &req);
        let after = cluster(&with, &req).unwrap();
        // v1 is the defaultDestination without the policy (no header).
        let before =
            before.unwrap_or_else(|| "outbound|9080|v1|reviews.default.svc.cluster.local".into());
        assert_eq!(format!("{before};testers"), after, "user-{u}");
    }
}

#[test]
fn every_kind_of_destination_takes_the_suffix() {
    let json = r#"{"portlessDestinations":"glue","services":[{"hosts":["reviews"],"http":[
        {"match":[{"headers":{"k":{"exact":"fixed"}}}],"timeout":"2s","route":[{"destination":{"cluster":"plain-cluster"}}]},
        {"match":[{"headers":{"k":{"exact":"glue"}}}],"retries":{"attempts":0},"route":[{"destination":{"host":"reviews","subset":"v1"}}]},
        {"name":"dest-headers","route":[{"destination":{"host":"reviews","subset":"v2","port":{"number":80}},
          "headers":{"response":{"set":{"x-v":"2"}}}}]}]}]}"#;
    let set = compile(json);
    let to = |k: &str| cluster(&set, &Req::to("reviews").with("k", k));
    assert_eq!(to("fixed").as_deref(), Some("plain-cluster;http-0"));
    assert_eq!(
        to("glue").as_deref(),
        Some("outbound||v1|reviews.default.svc.cluster.local;http-1")
    );
    assert_eq!(
        to("other").as_deref(),
        Some("outbound|80|v2|reviews.default.svc.cluster.local;dest-headers")
    );
    // The request's port, built per request.
    let json = json.replace(r#""portlessDestinations":"glue","#, "");
    let set = compile(&json);
    assert_eq!(
        cluster(&set, &Req::to("reviews").with("k", "glue").on_port(9080)).as_deref(),
        Some("outbound|9080|v1|reviews.default.svc.cluster.local;http-1")
    );
}

#[test]
fn null_is_no_policy_and_a_policy_rule_needs_a_name_fit_for_a_header() {
    let set = compile(&rules(r#""timeout":null,"retries":null,"#));
    assert_eq!(
        cluster(
            &set,
            &Req::to("reviews").with("x-tester", "1").with("x-user", "a")
        )
        .map(|c| c.contains(';')),
        Some(false)
    );
    let bad = rules(POLICIES).replace(r#""name":"testers""#, r#""name":"the testers""#);
    let err = Plugin::from_bytes(bad.as_bytes(), &Workload::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("services[0].http[0].name"), "{err}");
    // Without a policy, such a name is accepted as before.
    let ok = rules("").replace(r#""name":"testers""#, r#""name":"the testers""#);
    assert!(Plugin::from_bytes(ok.as_bytes(), &Workload::default()).is_ok());
    // A policy that is not JSON is refused with its path.
    let broken = rules(r#""fault":{"abort":[1,}],"#);
    let err = Plugin::from_bytes(broken.as_bytes(), &Workload::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("services[0].http[0].fault.abort"), "{err}");
    // An unknown field is still one, and the error lists the policies.
    let typo = rules(r#""timeouts":"1s","#);
    let err = Plugin::from_bytes(typo.as_bytes(), &Workload::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unknown field `timeouts`"), "{err}");
    assert!(err.contains("`corsPolicy`"), "{err}");
}
