//! `canaryctl validate`, end to end: the built binary on the examples, the
//! manifests and bad files, judged by the filter's own parser.

mod common;

use canary_router::{Plugin, Workload};
use common::{canaryctl, example_rule_files, repo, TempFile};

const GOOD: &str = r#"{
  "services": [
    {
      "hosts": ["backend"],
      "http": [
        {
          "name": "split",
          "route": [
            { "destination": { "host": "backend", "subset": "v1", "port": { "number": 80 } }, "weight": 90 },
            { "destination": { "host": "backend", "subset": "v2", "port": { "number": 80 } }, "weight": 10 }
          ]
        }
      ]
    }
  ]
}"#;

#[test]
fn every_example_is_accepted() {
    for file in example_rule_files() {
        let run = canaryctl(&["validate", &file], None).expect_code(0);
        assert!(run.stdout.starts_with("ok: "), "{file}: {}", run.stdout);
        let text = std::fs::read_to_string(&file).unwrap();
        let inline =
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["services"].is_array();
        let expected = if inline && file.contains("gateway-cookie") {
            "service shop.example.com"
        } else if inline {
            "service backend.default.svc.cluster.local"
        } else {
            "rules polled from cluster "
        };
        assert!(run.stdout.contains(expected), "{file}: {}", run.stdout);
        assert!(run.stderr.is_empty(), "{file}: {}", run.stderr);
    }
}

#[test]
fn default_destination_is_shown_beside_the_destinations_it_covers() {
    let file = repo("examples/default-destination/rules.json");
    let run = canaryctl(&["validate", &file], None).expect_code(0);
    let note = "(defaultDestination: left to Envoy's own route)";
    let lines: Vec<&str> = run.stdout.lines().filter(|l| l.contains(note)).collect();
    // v1 of the split only: the testers' v2 and the split's v2 are written.
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].contains("outbound|80|v1|backend.default.svc.cluster.local"),
        "{}",
        run.stdout
    );
    let plain = canaryctl(
        &["validate", &repo("examples/header-override/rules.json")],
        None,
    )
    .expect_code(0);
    assert!(!plain.stdout.contains(note), "{}", plain.stdout);
}

#[test]
fn the_examples_envoy_yaml_are_checked_with_their_node_identity() {
    for example in [
        "default-destination",
        "header-override",
        "source-labels",
        "sticky",
        "weighted",
    ] {
        let file = repo(&format!("examples/{example}/envoy.yaml"));
        let run = canaryctl(&["validate", &file], None).expect_code(0);
        assert!(
            run.stdout
                .contains("wasm filter configuration at static_resources.listeners[0]"),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("sidecar identity: namespace default"));
    }
    // source-labels' envoy.yaml plays a frontend v2 pod: its first rule applies.
    let run = canaryctl(
        &["validate", &repo("examples/source-labels/envoy.yaml")],
        None,
    )
    .expect_code(0);
    assert!(run.stdout.contains("labels app=frontend,version=v2"));
    assert!(!run.stdout.contains("never matches"), "{}", run.stdout);
}

#[test]
fn labels_and_namespace_decide_which_rules_can_match() {
    let file = repo("examples/source-labels/rules.json");
    let plain = canaryctl(&["validate", &file], None).expect_code(0);
    assert!(
        plain
            .stdout
            .contains("rule frontend-v2 (never matches on this sidecar"),
        "{}",
        plain.stdout
    );
    let v2 = canaryctl(
        &[
            "validate",
            "--labels",
            "app=frontend,version=v2",
            "--namespace",
            "default",
            &file,
        ],
        None,
    )
    .expect_code(0);
    assert!(!v2.stdout.contains("never matches"), "{}", v2.stdout);
    assert!(v2
        .stdout
        .contains("sidecar identity: namespace default, labels app=frontend,version=v2"));
}

#[test]
fn a_bad_rule_file_fails_with_the_json_path() {
    let bad = TempFile::new(
        "bad.json",
        &GOOD.replace("\"weight\": 10", "\"weight\": -10"),
    );
    let run = canaryctl(&["validate", &bad.path()], None).expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: {}: services[0].http[0].route[1].weight: weight -10 is negative",
            bad.path()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// The messages are the filter's own: each bad input gives exactly the
/// error `Plugin::from_bytes` gives.
#[test]
fn errors_are_the_filters_own() {
    let cases = [
        GOOD.replace("\"weight\": 90", "\"weight\": 2000000"),
        GOOD.replace("\"subset\": \"v1\", ", ""),
        GOOD.replace(
            "\"port\": { \"number\": 80 } }, \"weight\": 10",
            "\"port\": { \"number\": 0 } }, \"weight\": 10",
        ),
        GOOD.replace("\"name\": \"split\"", "\"name\": \"split\", \"sticky\": {}"),
        GOOD.replace(
            "\"hosts\": [\"backend\"]",
            "\"hosts\": [\"http://backend\"]",
        ),
        GOOD.replace("\"name\": \"split\"", "\"nmae\": \"split\""),
        GOOD.replace(
            "\"name\": \"split\"",
            "\"match\": [{\"uri\": {\"regex\": \"(\"}}]",
        ),
        GOOD.replace("\"weight\": 90", "\"weight\": \"90\""),
        "{\"services\": [".to_string(),
        "   ".to_string(),
    ];
    for (i, text) in cases.iter().enumerate() {
        let expected = match Plugin::from_bytes(text.as_bytes(), &Workload::default()) {
            Err(e) => e.to_string(),
            Ok(_) => {
                // Dropping the subset is still valid: check it is accepted.
                let f = TempFile::new("case.json", text);
                canaryctl(&["validate", &f.path()], None).expect_code(0);
                continue;
            }
        };
        let f = TempFile::new("case.json", text);
        let run = canaryctl(&["validate", &f.path()], None).expect_code(1);
        assert!(
            run.stderr.contains(&format!("{}: {expected}", f.path())),
            "case {i}: expected `{expected}` in\n{}",
            run.stderr
        );
    }
}

#[test]
fn yaml_gives_the_same_paths_as_json() {
    let yaml = "\
services:
- hosts: [backend]
  http:
  - name: split
    route:
    - destination: {host: backend, subset: v1, port: {number: 80}}
      weight: 90
    - destination: {host: backend, subset: v2, port: {number: 80}}
      weight: -10
";
    let f = TempFile::new("bad.yaml", yaml);
    let run = canaryctl(&["validate", &f.path()], None).expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[0].route[1].weight: weight -10 is negative"),
        "{}",
        run.stderr
    );
    let typo = yaml.replace("weight: 90", "wieght: 90");
    let f = TempFile::new("typo.yml", &typo);
    let run = canaryctl(&["validate", &f.path()], None).expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[0].route[0].wieght: unknown field `wieght`"),
        "{}",
        run.stderr
    );
    // Line numbers of the converted JSON would mislead: none are shown.
    assert!(!run.stderr.contains(" at line "), "{}", run.stderr);
    // And good YAML is accepted.
    let good = yaml.replace("weight: -10", "weight: 10");
    let f = TempFile::new("good.yaml", &good);
    canaryctl(&["validate", &f.path()], None).expect_code(0);
}

#[test]
fn standard_input_and_several_files() {
    let run = canaryctl(&["validate", "-"], Some(GOOD)).expect_code(0);
    assert!(run.stdout.starts_with("ok: <stdin>"), "{}", run.stdout);
    let run = canaryctl(&["validate", "-"], Some("{\"services\": [")).expect_code(1);
    assert!(run.stderr.contains("<stdin>"), "{}", run.stderr);
    assert!(run.stderr.contains("EOF while parsing"), "{}", run.stderr);

    let bad = TempFile::new(
        "bad.json",
        &GOOD.replace("\"hosts\": [\"backend\"]", "\"hosts\": []"),
    );
    let good = repo("examples/weighted/rules.json");
    let run = canaryctl(&["validate", &good, &bad.path()], None).expect_code(1);
    assert!(
        run.stdout.contains(&format!("ok: {good}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("services[0].hosts: must not be empty"),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("1 configuration(s) rejected, 1 accepted"));
}

#[test]
fn an_unreadable_file_is_a_usage_error() {
    let run = canaryctl(&["validate", "no/such/rules.json"], None).expect_code(2);
    assert!(
        run.stderr.contains("cannot read no/such/rules.json"),
        "{}",
        run.stderr
    );
    canaryctl(&["validate"], None).expect_code(2);
}

#[test]
fn manifests_are_checked_with_the_path_inside_them() {
    let manifests = "\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: canary-router, namespace: default}
spec:
  url: oci://registry/canary-router:0.1.0
  pluginConfig:
    debugHeader: x-canary-route
    services:
    - hosts: [backend]
      http:
      - route:
        - destination: {host: backend, subset: v1, port: {number: 0}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: canary-rules, namespace: default}
data:
  rules.json: |
    {\"services\": [{\"hosts\": [\"backend\"], \"http\": [{\"route\": [{\"destination\": {\"host\": \"backend\", \"port\": {\"number\": 80}}, \"weight\": -1}]}]}]}
  README: not rules
---
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: {name: header-logger, namespace: default}
spec:
  lua: {inlineCode: \"function envoy_on_request(h) end\"}
---
apiVersion: v1
kind: Service
metadata: {name: backend}
";
    let f = TempFile::new("manifests.yaml", manifests);
    let run = canaryctl(&["validate", &f.path()], None).expect_code(1);
    assert!(
        run.stderr.contains(
            "document 1 (WasmPlugin default/canary-router): spec.pluginConfig.services[0].http[0].route[0].destination.port.number: port 0 is outside 1..=65535"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "data[\"rules.json\"]): data[\"rules.json\"].services[0].http[0].route[0].weight: weight -1 is negative"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("note: "), "{}", run.stderr);
    assert!(run
        .stderr
        .contains("Service backend is not a WasmPlugin, TrafficExtension or ConfigMap; skipped"));
    assert!(run.stderr.contains("data[\"README\"] is not named *.json"));
    assert!(
        run.stderr.contains(
            "TrafficExtension default/header-logger has no spec.wasm (a Lua extension?); nothing to check"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn help_shows_an_example() {
    let run = canaryctl(&["validate", "--help"], None).expect_code(0);
    assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
    assert!(run
        .stdout
        .contains("canaryctl validate examples/weighted/rules.json"));
    assert!(run.stdout.contains("--labels"));
}

#[test]
fn destinations_that_take_the_requests_port_are_shown() {
    let rules = TempFile::new(
        "portless.json",
        r#"{"services": [{"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}]}"#,
    );
    let run = canaryctl(&["validate", &rules.path()], None).expect_code(0);
    assert!(
        run.stdout.contains(
            "outbound|<request port>|v1|reviews.default.svc.cluster.local  (no port: the port the request arrived on)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_guard_is_explained_and_its_errors_have_paths() {
    let guard =
        r#""weight": 10, "guard": { "maxErrorRate": 0.05, "minRequests": 100, "interval": "30s" }"#;
    let good = TempFile::new("guard.json", &GOOD.replace("\"weight\": 10", guard));
    let run = canaryctl(&["validate", &good.path()], None).expect_code(0);
    assert!(
        run.stdout.contains(
            "guard: ejected when, over the last 30s, at least 100 responses were counted in one Envoy and 5% or more of them were 5xx or never came"
        ),
        "{}",
        run.stdout
    );
    // A rule's only destination: the guard never ejects it, and says so.
    let lone = GOOD
        .replace("\"weight\": 90", "\"weight\": 0")
        .replace("\"weight\": 10", guard);
    let lone = TempFile::new("lone.json", &lone);
    let run = canaryctl(&["validate", &lone.path()], None).expect_code(0);
    assert!(run.stdout.contains("guard: never ejects"), "{}", run.stdout);
    let bad = TempFile::new(
        "bad-guard.json",
        &GOOD.replace("\"weight\": 10", &guard.replace("30s", "30 s")),
    );
    let run = canaryctl(&["validate", &bad.path()], None).expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[0].route[1].guard.interval: `30 s` is not a duration"),
        "{}",
        run.stderr
    );
}
