#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Every match kind, host resolution and rule order, on the pure decision.

mod common;
use common::*;

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";

/// A service whose first rule has the given match list and goes to v2;
/// everything else goes to v1.
fn with_match(matches: &str) -> String {
    format!(
        r#"{{"services":[{{"hosts":["backend"],"http":[
            {{"name":"m","match":{matches},"route":[{{"destination":{{"host":"backend","subset":"v2","port":{{"number":80}}}}}}]}},
            {{"name":"rest","route":[{{"destination":{{"host":"backend","subset":"v1","port":{{"number":80}}}}}}]}}]}}]}}"#
    )
}

fn goes_to_v2(matches: &str, req: Req) -> bool {
    let rules = compile(&with_match(matches));
    match cluster(&rules, &req).as_deref() {
        Some(V2) => true,
        Some(V1) => false,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn headers_exact_prefix_regex_present() {
    let m = r#"[{"headers":{"canary":{"exact":"canary-tester"}}}]"#;
    assert!(goes_to_v2(
        m,
        Req::to("backend").with("canary", "canary-tester")
    ));
    assert!(!goes_to_v2(
        m,
        Req::to("backend").with("canary", "canary-tester2")
    ));
    assert!(!goes_to_v2(m, Req::to("backend")));
    let m = r#"[{"headers":{"x-user":{"prefix":"beta-"}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with("x-user", "beta-42")));
    assert!(!goes_to_v2(
        m,
        Req::to("backend").with("x-user", "alpha-42")
    ));
    let m = r#"[{"headers":{"x-user":{"regex":"user-[0-9]{2}"}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with("x-user", "user-42")));
    assert!(!goes_to_v2(
        m,
        Req::to("backend").with("x-user", "user-421")
    ));
    let m = r#"[{"headers":{"x-debug":{}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with("x-debug", "")));
    assert!(!goes_to_v2(m, Req::to("backend")));
    let m = r#"[{"headers":{"X-Mixed-Case":{"exact":"1"}}}]"#;
    assert!(
        goes_to_v2(m, Req::to("backend").with("x-mixed-case", "1")),
        "header names are case-insensitive"
    );
}

#[test]
fn without_headers() {
    let m = r#"[{"withoutHeaders":{"x-legacy":{}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend")));
    assert!(!goes_to_v2(m, Req::to("backend").with("x-legacy", "1")));
    let m = r#"[{"withoutHeaders":{"x-env":{"exact":"prod"}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with("x-env", "staging")));
    assert!(!goes_to_v2(m, Req::to("backend").with("x-env", "prod")));
}

#[test]
fn uri_method_scheme_authority_port() {
    let m = r#"[{"uri":{"prefix":"/api"}}]"#;
    assert!(goes_to_v2(
        m,
        Req::to("backend").with(":path", "/api/users?x=1")
    ));
    assert!(!goes_to_v2(m, Req::to("backend").with(":path", "/web")));
    let m = r#"[{"uri":{"exact":"/login"}}]"#;
    assert!(
        goes_to_v2(m, Req::to("backend").with(":path", "/login?next=/")),
        "the query string is not part of uri"
    );
    assert!(!goes_to_v2(m, Req::to("backend").with(":path", "/LOGIN")));
    let m = r#"[{"uri":{"exact":"/login"},"ignoreUriCase":true}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with(":path", "/LOGIN")));
    let m = r#"[{"uri":{"regex":"/users/[0-9]+"}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with(":path", "/users/17")));
    assert!(!goes_to_v2(
        m,
        Req::to("backend").with(":path", "/users/17/x")
    ));
    let m = r#"[{"method":{"exact":"POST"}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with(":method", "POST")));
    assert!(!goes_to_v2(m, Req::to("backend")));
    let m = r#"[{"scheme":{"exact":"https"}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with(":scheme", "https")));
    assert!(!goes_to_v2(m, Req::to("backend")));
    let m = r#"[{"authority":{"prefix":"backend.default"}}]"#;
    assert!(goes_to_v2(m, Req::to("backend.default:80")));
    assert!(!goes_to_v2(m, Req::to("backend")));
    // `port` is the port the request arrived on (the listener's), as Istio
    // selects a port's route configuration; `:authority` plays no part.
    let m = r#"[{"port":8080}]"#;
    assert!(goes_to_v2(m, Req::to("backend").on_port(8080)));
    assert!(goes_to_v2(m, Req::to("backend:80").on_port(8080)));
    assert!(!goes_to_v2(m, Req::to("backend:8080").on_port(80)));
    assert!(
        !goes_to_v2(m, Req::to("backend:8080")),
        "an unknown port matches no port"
    );
    let m = r#"[{"port":443}]"#;
    assert!(!goes_to_v2(m, Req::to("backend").with(":scheme", "https")));
}

#[test]
fn query_params() {
    let m = r#"[{"queryParams":{"canary":{"exact":"true"}}}]"#;
    assert!(goes_to_v2(
        m,
        Req::to("backend").with(":path", "/x?a=1&canary=true")
    ));
    assert!(!goes_to_v2(
        m,
        Req::to("backend").with(":path", "/x?canary=false")
    ));
    assert!(!goes_to_v2(
        m,
        Req::to("backend").with(":path", "/x?notcanary=true")
    ));
    let m = r#"[{"queryParams":{"debug":{}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with(":path", "/x?debug")));
    assert!(!goes_to_v2(m, Req::to("backend").with(":path", "/x#debug")));
    let m = r#"[{"queryParams":{"v":{"regex":"[0-9]+"}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend").with(":path", "/x?v=12")));
    assert!(!goes_to_v2(m, Req::to("backend").with(":path", "/x?v=1a")));
}

#[test]
fn fields_are_anded_and_entries_ored() {
    let and = r#"[{"headers":{"a":{"exact":"1"}},"method":{"exact":"GET"}}]"#;
    assert!(goes_to_v2(and, Req::to("backend").with("a", "1")));
    assert!(!goes_to_v2(
        and,
        Req::to("backend").with("a", "1").with(":method", "POST")
    ));
    let or = r#"[{"headers":{"a":{"exact":"1"}}},{"headers":{"b":{"exact":"2"}}}]"#;
    assert!(goes_to_v2(or, Req::to("backend").with("a", "1")));
    assert!(goes_to_v2(or, Req::to("backend").with("b", "2")));
    assert!(!goes_to_v2(or, Req::to("backend").with("c", "3")));
}

#[test]
fn source_labels_and_namespace_are_the_sidecars() {
    let json = with_match(r#"[{"sourceLabels":{"app":"frontend","version":"v2"}}]"#);
    let v2 = compile_for(
        &json,
        &workload("default", &[("app", "frontend"), ("version", "v2")]),
    );
    let v1 = compile_for(
        &json,
        &workload("default", &[("app", "frontend"), ("version", "v1")]),
    );
    let none = compile_for(&json, &workload("default", &[]));
    assert_eq!(cluster(&v2, &Req::to("backend")).as_deref(), Some(V2));
    assert_eq!(cluster(&v1, &Req::to("backend")).as_deref(), Some(V1));
    assert_eq!(cluster(&none, &Req::to("backend")).as_deref(), Some(V1));
    let json = with_match(r#"[{"sourceNamespace":"prod"}]"#);
    let prod = compile_for(&json, &workload("prod", &[]));
    let dev = compile_for(&json, &workload("dev", &[]));
    assert_eq!(
        cluster(&prod, &Req::to("backend.default")).as_deref(),
        Some(V2)
    );
    assert_eq!(
        cluster(&dev, &Req::to("backend.default")).as_deref(),
        Some(V1)
    );
    // A label match combined with a header: both must hold.
    let json = with_match(r#"[{"sourceLabels":{"version":"v2"},"headers":{"x":{"exact":"1"}}}]"#);
    let v2 = compile_for(&json, &workload("default", &[("version", "v2")]));
    assert_eq!(
        cluster(&v2, &Req::to("backend").with("x", "1")).as_deref(),
        Some(V2)
    );
    assert_eq!(cluster(&v2, &Req::to("backend")).as_deref(), Some(V1));
}

#[test]
fn host_resolution_like_an_istio_sidecar() {
    let json = with_match("[]");
    let same_ns = compile_for(&json, &workload("default", &[]));
    for authority in [
        "backend",
        "backend:80",
        "backend.default",
        "backend.default.svc",
        "backend.default.svc.cluster.local",
        "backend.default.svc.cluster.local:80",
        "Backend.Default.SVC.cluster.local",
        "backend.default.svc.cluster.local.",
    ] {
        assert!(
            cluster(&same_ns, &Req::to(authority)).is_some(),
            "{authority}"
        );
    }
    for authority in [
        "other",
        "backend.prod",
        "backend.default.svc.cluster",
        "",
        "backendx",
    ] {
        assert!(
            cluster(&same_ns, &Req::to(authority)).is_none(),
            "{authority}"
        );
    }
    let other_ns = compile_for(&json, &workload("prod", &[]));
    assert!(
        cluster(&other_ns, &Req::to("backend")).is_none(),
        "a bare name means the client's own namespace"
    );
    assert!(cluster(&other_ns, &Req::to("backend.default")).is_some());
    // A short host expands against the service's namespace field.
    let json = r#"{"services":[{"hosts":["reviews"],"namespace":"shop","http":[{"route":[{"destination":{"host":"reviews","subset":"v3","port":{"number":9080}}}]}]}]}"#;
    let rules = compile_for(json, &workload("default", &[]));
    assert_eq!(
        cluster(&rules, &Req::to("reviews.shop")).as_deref(),
        Some("outbound|9080|v3|reviews.shop.svc.cluster.local")
    );
    // Wildcards and external names.
    let json = r#"{"services":[{"hosts":["*.example.com","api.internal"],"http":[{"route":[{"destination":{"cluster":"ext"}}]}]}]}"#;
    let rules = compile(json);
    assert_eq!(
        cluster(&rules, &Req::to("www.example.com")).as_deref(),
        Some("ext")
    );
    assert_eq!(
        cluster(&rules, &Req::to("api.internal:8443")).as_deref(),
        Some("ext")
    );
    assert!(cluster(&rules, &Req::to("example.com")).is_none());
}

/// A ServiceEntry's host is a destination like a Service's, wildcard hosts
/// (`*.example.org`, resolution NONE) included: istiod names its clusters
/// `outbound|<port>|<subset>|<host>` with the host as written
/// (`model.BuildSubsetKey`), and `GetDestinationCluster` takes the
/// request's port for a destination without one.
#[test]
fn service_entry_hosts_route_to_the_clusters_istiod_names() {
    let json = r#"{"services":[{"hosts":["api.example.org"],"http":[{"route":[
        {"destination":{"host":"*.example.org","port":{"number":80}},"weight":90},
        {"destination":{"host":"api-v2.example.org"},"weight":10}]}]},
      {"hosts":["*.example.org"],"http":[{"route":[{"destination":{"host":"*.Example.org","subset":"eu"}}]}]}]}"#;
    let rules = compile(json);
    let named: Vec<String> = rules
        .all_destinations()
        .map(|(_, _, d)| d.cluster.with_port(80))
        .collect();
    assert_eq!(
        named,
        [
            "outbound|80||*.example.org",
            "outbound|80||api-v2.example.org",
            "outbound|80|eu|*.example.org"
        ]
    );
    assert_eq!(
        cluster(&rules, &Req::to("api.example.org").on_port(80)).as_deref(),
        Some("outbound|80||*.example.org")
    );
    // A name the wildcard service covers; the host lower-cased as Istio does.
    assert_eq!(
        cluster(&rules, &Req::to("www.example.org:8080").on_port(8080)).as_deref(),
        Some("outbound|8080|eu|*.example.org")
    );
}

#[test]
fn first_matching_rule_wins_and_no_match_is_untouched() {
    let json = r#"{"services":[{"hosts":["backend"],"http":[
        {"name":"a","match":[{"headers":{"x":{"exact":"1"}}}],"route":[{"destination":{"cluster":"ca"}}]},
        {"name":"b","match":[{"headers":{"x":{}}}],"route":[{"destination":{"cluster":"cb"}}]},
        {"name":"c","match":[{"headers":{"y":{}}}],"route":[{"destination":{"cluster":"cc"}}]}]}]}"#;
    let rules = compile(json);
    assert_eq!(
        rule_name(&rules, &Req::to("backend").with("x", "1")).as_deref(),
        Some("a")
    );
    assert_eq!(
        rule_name(&rules, &Req::to("backend").with("x", "2")).as_deref(),
        Some("b")
    );
    assert_eq!(
        rule_name(&rules, &Req::to("backend").with("y", "")).as_deref(),
        Some("c")
    );
    assert_eq!(rule_name(&rules, &Req::to("backend")), None);
    assert!(matches!(
        rules.decide(&Req::to("backend"), || 0),
        canary_router::Outcome::NoRule { service: 0 }
    ));
    assert!(matches!(
        rules.decide(&Req::to("nope"), || 0),
        canary_router::Outcome::NoService
    ));
    assert!(matches!(
        rules.decide(&Req::default(), || 0),
        canary_router::Outcome::NoService
    ));
}

#[test]
fn the_issue_example_routes_as_istio_would() {
    let json = include_str!("../../examples/header-override/rules.json");
    let plain = compile_for(
        json,
        &workload("default", &[("app", "frontend"), ("version", "v1")]),
    );
    for _ in 0..100 {
        assert_eq!(
            cluster(&plain, &Req::to("backend").with("canary", "canary-tester")).as_deref(),
            Some(V2)
        );
    }
}

// Semantics measured against Envoy's own routes (test-harness/envoy-runner/tests/e2e_oracle.rs).

#[test]
fn a_repeated_header_matches_when_any_of_its_values_does() {
    let m = r#"[{"headers":{"x-ver":{"exact":"v1"}}}]"#;
    let req = |values: &[&str]| {
        values
            .iter()
            .fold(Req::to("backend"), |r, v| r.with("x-ver", v))
    };
    assert!(goes_to_v2(m, req(&["v2", "v1"])));
    assert!(goes_to_v2(m, req(&["v1", "v2"])));
    assert!(!goes_to_v2(m, req(&["v2", "v3"])));
    let re = r#"[{"headers":{"x-ver":{"regex":"v[0-9]+"}}}]"#;
    assert!(goes_to_v2(re, req(&["zz", "v33"])));
    // withoutHeaders: no value may match.
    let without = r#"[{"withoutHeaders":{"x-ver":{"exact":"v1"}}}]"#;
    assert!(!goes_to_v2(without, req(&["v2", "v1"])));
    assert!(goes_to_v2(without, req(&["v2", "v3"])));
}

#[test]
fn without_headers_match_a_missing_header_as_empty() {
    let without = |sm: &str| format!(r#"[{{"withoutHeaders":{{"x-ver":{sm}}}}}]"#);
    let none = Req::to("backend");
    // Istio writes these with treat_missing_header_as_empty.
    assert!(!goes_to_v2(&without(r#"{"exact":""}"#), none.clone()));
    assert!(!goes_to_v2(&without(r#"{"regex":".*"}"#), none.clone()));
    assert!(goes_to_v2(&without(r#"{"regex":".+"}"#), none.clone()));
    assert!(goes_to_v2(&without(r#"{"exact":"v1"}"#), none.clone()));
    // A presence match is not: `{}` and `*` mean "absent".
    for sm in [r#"{}"#, r#"{"regex":"*"}"#] {
        assert!(goes_to_v2(&without(sm), none.clone()), "{sm}");
        assert!(
            !goes_to_v2(&without(sm), none.clone().with("x-ver", "")),
            "{sm}"
        );
    }
}

#[test]
fn ignore_uri_case_leaves_a_regex_case_sensitive() {
    let m = |uri: &str| format!(r#"[{{"uri":{uri},"ignoreUriCase":true}}]"#);
    let path = |p: &str| Req::to("backend").with(":path", p);
    assert!(goes_to_v2(&m(r#"{"prefix":"/API"}"#), path("/api/x")));
    assert!(goes_to_v2(&m(r#"{"exact":"/API"}"#), path("/api")));
    assert!(goes_to_v2(&m(r#"{"regex":"/API.*"}"#), path("/API/x")));
    assert!(!goes_to_v2(&m(r#"{"regex":"/API.*"}"#), path("/api/x")));
}

#[test]
fn regexes_count_bytes_not_characters() {
    let m = |re: &str| format!(r#"[{{"headers":{{"x":{{"regex":"{re}"}}}}}}]"#);
    let x = |v: &[u8]| Req::to("backend").with("x", v);
    assert!(!goes_to_v2(&m("."), x("ü".as_bytes())));
    assert!(goes_to_v2(&m(".."), x("ü".as_bytes())));
    assert!(goes_to_v2(&m(".*"), x(b"\xff")));
}

#[test]
fn the_rule_index_reads_every_value_of_a_repeated_header() {
    // Enough exact-header rules for an index (INDEX_MIN_RULES).
    let http: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"name":"u{i}","match":[{{"headers":{{"x-user":{{"exact":"u{i}"}}}}}}],"route":[{{"destination":{{"cluster":"c{i}"}}}}]}}"#
            )
        })
        .collect();
    let rules = compile(&format!(
        r#"{{"services":[{{"hosts":["backend"],"http":[{}]}}]}}"#,
        http.join(",")
    ));
    let req = Req::to("backend")
        .with("x-user", "nobody")
        .with("x-user", "u7");
    assert_eq!(rule_name(&rules, &req).as_deref(), Some("u7"));
    let buf = canary_router::adapters::proxy_wasm::pairs::serialize(
        req.headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_slice())),
    );
    let pairs = canary_router::adapters::proxy_wasm::pairs::Pairs::parse(&buf).unwrap();
    let d = rules.decide(&pairs, || 0);
    assert_eq!(
        d.decision()
            .map(|d| &*rules.services()[0].rules[d.rule].name),
        Some("u7")
    );
    let first_wins = Req::to("backend").with("x-user", "u9").with("x-user", "u2");
    assert_eq!(
        rule_name(&rules, &first_wins).as_deref(),
        Some("u2"),
        "rule order, not header order"
    );
}

#[test]
fn a_host_condition_reads_the_authority_as_envoy_does() {
    let m = r#"[{"headers":{"Host":{"prefix":"backend"}}}]"#;
    assert!(goes_to_v2(m, Req::to("backend:8080")));
    let without = r#"[{"withoutHeaders":{"host":{}}}]"#;
    assert!(!goes_to_v2(without, Req::to("backend")));
}
