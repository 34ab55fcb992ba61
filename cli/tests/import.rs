//! `canaryctl import`, end to end: multi-document VirtualService YAML of
//! three API versions, every dropped field named in a warning, output that
//! `validate` accepts.

mod common;

use common::{canaryctl, fixture, TempFile};
use serde_json::{json, Value};

const VS: &str = "virtualservices.yaml";

/// The warnings of a run, one per line, without the `warning: ` prefix.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect()
}

#[test]
fn imports_every_virtualservice_and_names_what_it_drops() {
    let run = canaryctl(&["import", &fixture(VS)], None).expect_code(0);
    let out = run.json();
    let services = out["services"].as_array().expect("services");
    assert_eq!(services.len(), 3, "{out:#}");

    // Short hosts expand against the manifest's namespace (default: `default`).
    assert_eq!(
        services[0]["hosts"],
        json!(["reviews.prod.svc.cluster.local"])
    );
    assert_eq!(
        services[1]["hosts"],
        json!(["ratings.default.svc.cluster.local", "ratings.example.com"])
    );
    assert_eq!(
        services[2]["hosts"],
        json!(["details.shop.svc.cluster.local"])
    );
    assert_eq!(
        services[2]["http"][0]["route"][0]["destination"]["host"],
        "details.shop.svc.cluster.local"
    );

    // reviews: both rules, match and weights carried over.
    let reviews = &services[0]["http"];
    assert_eq!(reviews[0]["name"], "testers");
    assert_eq!(
        reviews[0]["match"][0]["headers"]["end-user"]["exact"],
        "jason"
    );
    assert_eq!(
        reviews[1]["route"],
        json!([
            {"destination": {"host": "reviews.prod.svc.cluster.local", "subset": "v1", "port": {"number": 9080}}, "weight": 75},
            {"destination": {"host": "reviews.prod.svc.cluster.local", "subset": "v3", "port": {"number": 9080}}, "weight": 25,
             "headers": {"response": {"add": {"x-canary": "true"}}}}
        ])
    );

    // ratings: the redirect rule and the gateway-only rule are gone; the
    // supported match fields stay; a missing weight among several is 0.
    let ratings = &services[1]["http"];
    let names: Vec<&str> = ratings
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["canary", "default"]);
    assert_eq!(
        ratings[0]["match"][0],
        json!({"uri": {"prefix": "/v2/"}, "queryParams": {"canary": {"exact": "1"}}, "ignoreUriCase": true})
    );
    assert_eq!(
        ratings[0]["match"][1],
        json!({"sourceLabels": {"app": "productpage", "version": "v2"}, "sourceNamespace": "default"})
    );
    // A destination without a port stays without one (it takes the
    // request's port in the filter, as Istio routes it in a sidecar), and
    // that is said once.
    assert_eq!(
        ratings[0]["route"][0]["destination"],
        json!({"host": "ratings.default.svc.cluster.local", "subset": "v2"})
    );
    assert!(
        run.stderr.contains(
            "virtualservices.yaml, document 2): spec.http[2].route[0].destination: no port: it takes the port the request arrives on"
        ) && run.stderr.contains("--port"),
        "{}",
        run.stderr
    );
    assert_eq!(ratings[1]["route"][1]["weight"], 0);

    // The route policies are carried (the routing glue applies them),
    // mirror hosts expanded as the destinations' are.
    assert_eq!(
        reviews[0]["fault"],
        json!({"delay": {"percentage": {"value": 10}, "fixedDelay": "5s"}})
    );
    assert_eq!(
        reviews[1]["retries"],
        json!({"attempts": 3, "perTryTimeout": "2s"})
    );
    assert_eq!(reviews[1]["timeout"], "10s");
    assert_eq!(
        reviews[1]["mirror"],
        json!({"host": "reviews.prod.svc.cluster.local", "subset": "v3"})
    );
    assert_eq!(reviews[1]["mirrorPercentage"], json!({"value": 5.0}));
    assert_eq!(
        reviews[1]["route"][1]["headers"],
        json!({"response": {"add": {"x-canary": "true"}}})
    );
    assert_eq!(ratings[0]["rewrite"], json!({"uri": "/"}));
    assert_eq!(
        ratings[0]["corsPolicy"],
        json!({"allowOrigins": [{"exact": "https://example.com"}]})
    );

    // Every field not carried over is named, with the VirtualService and
    // its path; the carried policies are not.
    let w = warnings(&run.stderr);
    for carried in [
        "fault",
        "retries",
        "timeout",
        "mirror",
        "headers",
        "rewrite",
        "corsPolicy",
    ] {
        assert!(
            !w.iter().any(|l| l.contains(&format!(".{carried}: "))),
            "{carried} is carried, not dropped:\n{}",
            run.stderr
        );
    }
    let expect = [
        ("VirtualService default/ratings", "spec.gateways"),
        ("VirtualService default/ratings", "spec.http[0].redirect"),
        (
            "VirtualService default/ratings",
            "spec.http[1].match[0].gateways",
        ),
        (
            "VirtualService default/ratings",
            "spec.http[2].match[0].statPrefix",
        ),
        ("VirtualService shop/details", "spec.exportTo"),
        ("VirtualService shop/details", "spec.tcp"),
    ];
    for (vs, path) in expect {
        assert!(
            w.iter()
                .any(|l| l.starts_with(vs) && l.contains(&format!("): {path}: "))),
            "no warning for {vs} {path} in:\n{}",
            run.stderr
        );
    }
    // The document is named too.
    assert!(w
        .iter()
        .any(|l| l.contains("virtualservices.yaml, document 3): spec.exportTo")));
    // Non-VirtualServices are skipped with a note.
    assert!(run
        .stderr
        .contains("document 4: DestinationRule reviews (networking.istio.io/v1) is not a VirtualService; skipped"));
    assert!(run
        .stderr
        .contains("document 5: Service reviews (v1) is not a VirtualService; skipped"));
}

#[test]
fn the_output_passes_validate_in_json_and_yaml() {
    let json_out = canaryctl(&["import", &fixture(VS)], None).expect_code(0);
    let run = canaryctl(&["validate", "-"], Some(&json_out.stdout)).expect_code(0);
    assert!(
        run.stdout.contains("3 services, 5 rules, 7 destinations"),
        "{}",
        run.stdout
    );

    let yaml_out = canaryctl(&["import", "-o", "yaml", &fixture(VS)], None).expect_code(0);
    let parsed: Value = serde_yaml_ng::from_str(&yaml_out.stdout).expect("YAML output parses");
    assert_eq!(parsed, json_out.json(), "YAML and JSON say the same");
    let f = TempFile::new("imported.yaml", &yaml_out.stdout);
    canaryctl(&["validate", &f.path()], None).expect_code(0);
}

#[test]
fn strict_fails_when_anything_is_dropped() {
    let run = canaryctl(&["import", "--strict", &fixture(VS)], None).expect_code(1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("--strict"), "{}", run.stderr);
    // A VirtualService that carries over whole passes --strict.
    let clean = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend]
  http:
  - name: split
    route:
    - destination: {host: backend, subset: v1, port: {number: 80}}
      weight: 90
    - destination: {host: backend, subset: v2, port: {number: 80}}
      weight: 10
";
    let run = canaryctl(&["import", "--strict", "-"], Some(clean)).expect_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    // It is the weighted example's rules.
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("examples/weighted/rules.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run.json()["services"], example["services"]);
}

#[test]
fn hosts_claimed_twice_and_unknown_versions_are_warned_about() {
    let docs = "\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [backend]
  http:
  - route:
    - destination: {host: backend, port: {number: 80}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: [backend.default.svc.cluster.local, other]
  http:
  - route:
    - destination: {host: other, port: {number: 80}}
---
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: c}
spec:
  hosts: [third]
";
    let run = canaryctl(&["import", "-"], Some(docs)).expect_code(0);
    assert!(
        run.stderr.contains(
            "VirtualService default/b (<stdin>, document 2): spec.hosts[0]: host backend.default.svc.cluster.local is already routed by VirtualService default/a"
        ),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("apiVersion networking.istio.io/v2 is not one canaryctl knows"));
    let out = run.json();
    assert_eq!(
        out["services"][1]["hosts"],
        json!(["other.default.svc.cluster.local"])
    );
    assert_eq!(out["services"].as_array().unwrap().len(), 2);
}

#[test]
fn namespace_option_and_nothing_to_import() {
    let vs = "\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
";
    let run = canaryctl(&["import", "--namespace", "bookinfo", "-"], Some(vs)).expect_code(0);
    assert_eq!(
        run.json()["services"][0]["hosts"][0],
        "reviews.bookinfo.svc.cluster.local"
    );

    let none = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    let run = canaryctl(&["import", "-"], Some(none)).expect_code(1);
    assert!(
        run.stderr.contains("no VirtualService could be imported"),
        "{}",
        run.stderr
    );

    // Rules Istio takes but the filter does not are refused, naming both places.
    let bad = vs.replace("number: 9080", "number: 70000");
    let run = canaryctl(&["import", "-"], Some(&bad)).expect_code(1);
    assert!(
        run.stderr.contains("services[0].http[0].route[0].destination.port.number: port 70000 is outside 1..=65535 (from VirtualService default/r (<stdin>) spec.http[0])"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_routing_glue_is_recognized() {
    let glue = common::repo("wasmplugin/route-virtualservice.yaml");
    // The glue is not canary rules: the filter refuses rules reading its route
    // header, so the import says why and fails rather than printing them.
    let run = canaryctl(&["import", &glue], None).expect_code(1);
    assert!(run.stderr.contains("is the route header"), "{}", run.stderr);
    let w = warnings(&run.stderr);
    assert!(
        w.iter().any(|l| l.contains("spec.http[0].match[0].headers.x-canary-upstream: matches on the header canary-router itself writes")),
        "{}",
        run.stderr
    );
}

#[test]
fn help_shows_an_example() {
    let run = canaryctl(&["import", "--help"], None).expect_code(0);
    assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
    assert!(run.stdout.contains("canaryctl import"));
}

/// A VirtualService for `reviews` bound by `gateways` (YAML flow list, or
/// nothing), with one match entry bound by `entry`.
fn bound(gateways: Option<&str>, entry: Option<&str>) -> String {
    let spec_gw = gateways.map_or(String::new(), |g| format!("  gateways: {g}\n"));
    let entry_gw = entry.map_or(String::new(), |g| format!("      gateways: {g}\n"));
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
{spec_gw}  http:
  - name: jason
    match:
    - headers: {{end-user: {{exact: jason}}}}
{entry_gw}    route:
    - destination: {{host: reviews, subset: v2}}
  - name: rest
    route:
    - destination: {{host: reviews, subset: v1}}
"
    )
}

#[test]
fn gateways_absent_empty_or_with_mesh_mean_the_sidecars() {
    // (spec.gateways, match[0].gateways, rules imported, warned paths)
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        &'a [&'a str],
        &'a [&'a str],
    );
    let cases: [Case<'_>; 9] = [
        (None, None, &["jason", "rest"], &[]),
        (Some("[]"), None, &["jason", "rest"], &[]),
        (Some("[mesh]"), None, &["jason", "rest"], &[]),
        (
            Some("[mesh, istio-system/public]"),
            None,
            &["jason", "rest"],
            &["spec.gateways"],
        ),
        (Some("[]"), Some("[]"), &["jason", "rest"], &[]),
        (None, Some("[mesh]"), &["jason", "rest"], &[]),
        (
            Some("[mesh, gw]"),
            Some("[mesh, gw]"),
            &["jason", "rest"],
            &["spec.gateways", "spec.http[0].match[0].gateways"],
        ),
        (
            None,
            Some("[gw]"),
            &["rest"],
            &["spec.http[0].match[0].gateways", "spec.http[0].match"],
        ),
        (Some("[gw]"), None, &[], &["spec.gateways"]),
    ];
    for (spec, entry, rules, warned) in cases {
        let vs = bound(spec, entry);
        let code = if rules.is_empty() { 1 } else { 0 };
        let run = canaryctl(&["import", "-"], Some(&vs)).expect_code(code);
        let w: Vec<&str> = warnings(&run.stderr)
            .into_iter()
            .filter_map(|l| l.split_once("): ").map(|(_, rest)| rest))
            .filter_map(|l| l.split_once(": ").map(|(path, _)| path))
            .collect();
        assert_eq!(w, warned, "{spec:?} {entry:?}:\n{}", run.stderr);
        if rules.is_empty() {
            assert!(
                run.stderr.contains(
                    "bound to gateways only (no `mesh`), so it never applies to sidecars; skipped"
                ) && run.stderr.contains("no VirtualService could be imported"),
                "{}",
                run.stderr
            );
            continue;
        }
        let out = run.json();
        let names: Vec<&str> = out["services"][0]["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, rules, "{spec:?} {entry:?}");
    }
}

#[test]
fn portless_destinations_stay_portless_unless_a_port_is_given() {
    let vs = bound(Some("[]"), None);
    let run = canaryctl(&["import", "-"], Some(&vs)).expect_code(0);
    let out = run.json();
    assert_eq!(
        out["services"][0]["http"][1]["route"][0]["destination"],
        json!({"host": "reviews.default.svc.cluster.local", "subset": "v1"})
    );
    assert!(out["services"][0].get("destinationPort").is_none());
    assert!(
        run.stderr.contains(
            "(<stdin>): spec.http[0].route[0].destination and 1 more destination(s): no port: it takes the port the request arrives on"
        ),
        "{}",
        run.stderr
    );
    // --port: the service port, for every destination that gives none.
    let run = canaryctl(&["import", "--port", "9080", "-"], Some(&vs)).expect_code(0);
    let out = run.json();
    assert_eq!(out["services"][0]["destinationPort"], 9080);
    assert!(!run.stderr.contains("no port"), "{}", run.stderr);
    // --default-port: written into each.
    let run = canaryctl(&["import", "--default-port", "9080", "-"], Some(&vs)).expect_code(0);
    let out = run.json();
    assert_eq!(
        out["services"][0]["http"][1]["route"][0]["destination"]["port"]["number"],
        9080
    );
    canaryctl(&["import", "--port", "0", "-"], Some(&vs)).expect_code(2);
}
