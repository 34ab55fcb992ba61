//! End to end: every example's `envoy.yaml` in a real Envoy with the built
//! filter, driven over HTTP.
//!
//! Each test starts its own Envoy (free loopback ports, own temp dir); a test
//! that fails prints the tail of Envoy's log (see `Envoy`'s Drop). Splits are
//! checked with a 5-sigma binomial bound (`check_binomial`): a correct filter
//! fails one about once in a million runs, a wrong weight fails every time.
//!
//! Needs Envoy (see `find_envoy`) and the `wasm32-wasip1` target; the filter
//! is built once per test binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use envoy_runner::{
    check_binomial, example_dir, example_names, Envoy, EnvoyConfig, EnvoyOptions, Request,
    Response, Split, Stats, FILTER_MODULE_RELATIVE, FILTER_WASM_RELATIVE, MODULE_FILTER_TYPE,
    WASM_FILTER_TYPE,
};
use serde_json::Value;

/// Requests per measured split.
const N: usize = 2000;
const FQDN: &str = "backend.default.svc.cluster.local";
const CLUSTER_V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const CLUSTER_V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
/// Examples that route with the rules inlined in their envoy.yaml alone.
const EXAMPLES: [&str; 5] = [
    "default-destination",
    "header-override",
    "source-labels",
    "sticky",
    "weighted",
];
/// Examples whose envoy.yaml inlines their rules.json: the routing ones, and
/// `configmap-poll` (whose inline config only names the rule server).
const INLINE: [&str; 7] = [
    "configmap-poll",
    "default-destination",
    "header-override",
    "self-driving",
    "source-labels",
    "sticky",
    "weighted",
];
/// The dynamic module's own example, proven below
/// (`native_module_example_runs_as_is`) whatever `CANARY_ROUTER_BUILD` says.
const NATIVE: &str = "native-module";
/// Examples proven in `e2e_reload.rs`: `ecds-reload` (rules through ECDS)
/// and `configmap-poll` (rules polled from a server); and in
/// `e2e_sticky_cookie.rs`: `gateway-cookie` (an ingress gateway issuing
/// the sticky cookie); and in `e2e_ramp.rs`: `self-driving` (ramps that
/// start when its run.sh says).
const TESTED_ELSEWHERE: [&str; 5] = [
    "configmap-poll",
    "ecds-reload",
    "gateway-cookie",
    "self-driving",
    NATIVE,
];
/// Stat prefix of the examples' outbound listener.
const HCM: &str = "http.outbound_0.0.0.0_80";

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn config(example: &str, rules_file: Option<&str>) -> EnvoyConfig {
    let mut config = or_panic(EnvoyConfig::from_example(example));
    if let Some(file) = rules_file {
        or_panic(config.set_rules_file(example_dir(example).join(file)));
    }
    config
}

fn start(example: &str, rules_file: Option<&str>) -> Envoy {
    or_panic(Envoy::start(
        config(example, rules_file),
        &EnvoyOptions::default(),
    ))
}

fn backend() -> Request {
    Request::get("/").host("backend")
}

/// The filter's counter for one destination.
fn counter(rule: &str, dest: &str) -> String {
    format!("wasmcustom.canary_router.requests.service={FQDN};.rule={rule};.destination={dest};")
}

/// How much a stat grew between two snapshots.
fn delta(before: &Stats, after: &Stats, name: &str) -> u64 {
    after.get(name).saturating_sub(before.get(name))
}

/// Which backend answered: its `x-version`, after checking that the answer is
/// a 200 whose body agrees, and that the debug header names the same
/// destination under `rule` (or is absent when `rule` is None: the filter
/// did not route the request).
fn version_of(resp: &Response, rule: Option<&str>) -> Result<String, String> {
    if resp.status != 200 {
        return Err(format!(
            "status {} (body {:?}, headers {:?})",
            resp.status,
            resp.text(),
            resp.headers
        ));
    }
    let version = resp
        .header("x-version")
        .ok_or_else(|| format!("no x-version in {:?}", resp.headers))?;
    if resp.text() != format!("backend {version}\n") {
        return Err(format!("body {:?} from {version}", resp.text()));
    }
    let debug = resp.header("x-canary-route");
    let expected = rule.map(|r| format!("{FQDN}/{r}/{version}"));
    if debug != expected {
        return Err(format!(
            "x-canary-route {debug:?}, expected {expected:?} (x-version {version})"
        ));
    }
    Ok(version)
}

/// Sends `n` copies of `req` over one keep-alive connection and counts the
/// answers by version; every answer must pass [`version_of`].
fn send(envoy: &Envoy, n: usize, req: &Request, rule: Option<&str>) -> Split {
    let mut client = or_panic(envoy.client(10000));
    let mut split = Split::default();
    for i in 0..n {
        let resp = or_panic(client.send(req));
        match version_of(&resp, rule) {
            Ok(v) => split.add(v),
            Err(e) => panic!("request {i} of {n} ({req:?}): {e}"),
        }
    }
    split
}

/// The split has only v1/v2 answers, `n` of them, with a v2 share within the
/// binomial bound of `p_v2`.
fn assert_share(split: &Split, n: usize, p_v2: f64, what: &str) {
    assert_eq!(split.total(), n as u64, "{what}: {split}");
    assert!(
        split.others(&["v1", "v2"]).is_empty(),
        "{what}: unexpected answers: {split}"
    );
    if let Err(e) = check_binomial(split.total(), p_v2, split.count("v2")) {
        panic!("{what}: v2 share: {e}; split {split}");
    }
}

/// Envoy answered no request with a 5xx, on the outbound listener or upstream.
fn assert_no_5xx(envoy: &Envoy) {
    let stats = or_panic(envoy.stats());
    assert_eq!(stats.get(&format!("{HCM}.downstream_rq_5xx")), 0);
    for cluster in [CLUSTER_V1, CLUSTER_V2] {
        assert_eq!(
            stats.get(&format!("cluster.{cluster}.upstream_rq_5xx")),
            0,
            "{cluster}"
        );
    }
    assert_eq!(stats.get("wasmcustom.canary_router.host_call_errors"), 0);
    assert_eq!(stats.get("wasmcustom.canary_router.config_rejected"), 0);
}

/// The filter's counters and Envoy's cluster stats grew exactly by what the
/// split saw (every request sent in between was routed by `rule`).
fn assert_counted(before: &Stats, after: &Stats, rule: &str, split: &Split) {
    for (dest, cluster) in [("v1", CLUSTER_V1), ("v2", CLUSTER_V2)] {
        assert_eq!(
            delta(before, after, &counter(rule, dest)),
            split.count(dest),
            "counter {} vs {split}",
            counter(rule, dest)
        );
        assert_eq!(
            delta(before, after, &format!("cluster.{cluster}.upstream_rq_200")),
            split.count(dest),
            "cluster {cluster} vs {split}"
        );
    }
    assert_eq!(
        delta(before, after, "wasmcustom.canary_router.passthrough"),
        0
    );
}

fn rules_json(example: &str, file: &str) -> Value {
    let path = example_dir(example).join(file);
    let text = or_panic(std::fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}")));
    or_panic(serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}")))
}

/// The rule JSON of the filters in a `/config_dump`: the wasm filters'
/// `configuration`, the dynamic module's `filter_config`.
fn dumped_wasm_configurations(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(obj) => {
            let at = match obj.get("@type").and_then(Value::as_str) {
                Some(WASM_FILTER_TYPE) => "/config/configuration/value",
                Some(MODULE_FILTER_TYPE) => "/filter_config/value",
                _ => "",
            };
            if let Some(s) = v
                .pointer(at)
                .filter(|_| !at.is_empty())
                .and_then(Value::as_str)
            {
                out.push(s.to_owned());
            }
            obj.values()
                .for_each(|c| dumped_wasm_configurations(c, out));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|c| dumped_wasm_configurations(c, out)),
        _ => {}
    }
}

fn dumped_node(envoy: &Envoy) -> Value {
    let dump = or_panic(envoy.config_dump());
    dump["configs"]
        .as_array()
        .and_then(|c| c.iter().find_map(|c| c.pointer("/bootstrap/node")))
        .cloned()
        .unwrap_or_else(|| panic!("no bootstrap node in /config_dump"))
}

// ---------------------------------------------------------------------------
// The examples themselves

#[test]
fn every_example_inline_configuration_equals_its_rules_file() {
    let mut expected: Vec<&str> = EXAMPLES.iter().chain(&TESTED_ELSEWHERE).copied().collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(
        example_names(),
        expected,
        "examples/ changed: cover new examples in these tests"
    );
    for name in INLINE {
        let config = config(name, None);
        let inline = or_panic(config.wasm_configuration());
        let inline: Value = serde_json::from_str(&inline)
            .unwrap_or_else(|e| panic!("{name}: inline configuration is not JSON: {e}"));
        assert_eq!(
            inline,
            rules_json(name, "rules.json"),
            "examples/{name}/envoy.yaml: the inline configuration differs from rules.json"
        );
        // The contract the READMEs state: run from the repo root after the build.
        assert_eq!(config.wasm_filenames(), [FILTER_WASM_RELATIVE], "{name}");
        assert_eq!(config.admin_port(), Some(9901), "{name}");
        let ports: BTreeMap<String, u16> = config.listeners().into_iter().collect();
        assert_eq!(ports.get("outbound_80"), Some(&10000), "{name}");
        assert_eq!(ports.get("backend_v1"), Some(&10101), "{name}");
        assert_eq!(ports.get("backend_v2"), Some(&10102), "{name}");
        // Every rules file of the example is JSON.
        for entry in or_panic(std::fs::read_dir(example_dir(name))) {
            let file = or_panic(entry).file_name().to_string_lossy().into_owned();
            if file.ends_with(".json") {
                rules_json(name, &file);
            }
        }
    }
}

/// examples/weighted/README.md steps to 50/50 and 0/100 with `sed` on the
/// weights of the inline copy: the result must be the step files' rules.
#[test]
fn weighted_readme_sed_steps_give_the_step_files() {
    let path = example_dir("weighted").join("envoy.yaml");
    let yaml = or_panic(std::fs::read_to_string(&path));
    for (v1, v2, file) in [
        ("50", "50", "rules-50-50.json"),
        ("0", "100", "rules-100-v2.json"),
    ] {
        // sed -e 's/"weight": 90/"weight": <v1>/' -e 's/"weight": 10/"weight": <v2>/'
        let stepped = yaml
            .lines()
            .map(|l| {
                l.replacen("\"weight\": 90", &format!("\"weight\": {v1}"), 1)
                    .replacen("\"weight\": 10", &format!("\"weight\": {v2}"), 1)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = or_panic(EnvoyConfig::from_yaml_str(&stepped, &path));
        let inline: Value = or_panic(serde_json::from_str(&or_panic(config.wasm_configuration())));
        assert_eq!(inline, rules_json("weighted", file), "{file}");
    }
}

#[test]
fn every_example_runs_in_envoy_with_its_inline_rules() {
    for name in EXAMPLES {
        let envoy = start(name, None);
        // The listeners as Envoy runs them (the bootstrap in the dump would
        // only repeat the file).
        let dump = or_panic(envoy.config_dump());
        let listeners = dump["configs"]
            .as_array()
            .and_then(|c| {
                c.iter().find(|c| {
                    c["@type"] == "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
                })
            })
            .unwrap_or_else(|| panic!("{name}: no ListenersConfigDump"));
        let mut found = Vec::new();
        dumped_wasm_configurations(listeners, &mut found);
        assert_eq!(found.len(), 1, "{name}: wasm filters in /config_dump");
        let live: Value = or_panic(serde_json::from_str(&found[0]));
        assert_eq!(live, rules_json(name, "rules.json"), "{name}");

        let node = dumped_node(&envoy);
        assert_eq!(node["metadata"]["NAMESPACE"], "default", "{name}: {node}");
        assert_eq!(
            node["metadata"]["LABELS"]["app"], "frontend",
            "{name}: {node}"
        );

        // A request is routed by the filter and answered by a backend.
        let mut client = or_panic(envoy.client(10000));
        let resp = or_panic(client.send(&backend()));
        let route = resp.header("x-canary-route").unwrap_or_default();
        assert!(
            route.starts_with(&format!("{FQDN}/")),
            "{name}: debug header {route:?}"
        );
        or_panic(version_of(&resp, route.split('/').nth(1)));
        assert_no_5xx(&envoy);
    }
}

// ---------------------------------------------------------------------------
// weighted: 90/10 -> 50/50 -> 0/100

#[test]
fn weighted_steps_through_90_10_then_50_50_then_0_100() {
    for (file, p_v2) in [
        ("rules.json", 0.1),
        ("rules-50-50.json", 0.5),
        ("rules-100-v2.json", 1.0),
    ] {
        let envoy = start("weighted", Some(file));
        let before = or_panic(envoy.stats());
        let split = send(&envoy, N, &backend(), Some("split"));
        assert_share(&split, N, p_v2, file);
        let after = or_panic(envoy.stats());
        assert_counted(&before, &after, "split", &split);
        assert_eq!(
            delta(&before, &after, &format!("{HCM}.downstream_rq_2xx")),
            N as u64
        );

        // Prometheus: the stats_tags turn the counter name into labels.
        let prom = or_panic(envoy.prometheus());
        for dest in ["v1", "v2"] {
            let samples: Vec<_> = prom
                .iter()
                .filter(|s| {
                    s.name == "canary_router_requests"
                        && s.has_labels(&[
                            ("service", FQDN),
                            ("rule", "split"),
                            ("destination", dest),
                        ])
                })
                .collect();
            assert_eq!(
                samples.len(),
                1,
                "{file}: canary_router_requests for {dest}"
            );
            assert_eq!(samples[0].labels.len(), 3, "{file}: {:?}", samples[0]);
            assert_eq!(samples[0].value, split.count(dest) as f64, "{file} {dest}");
        }
        assert_no_5xx(&envoy);
    }
}

#[test]
fn weighted_rules_reload_without_restart() {
    let mut envoy = or_panic(Envoy::start(
        config("weighted", None),
        &EnvoyOptions::default().reloadable(),
    ));
    let split = send(&envoy, N, &backend(), Some("split"));
    assert_share(&split, N, 0.1, "before the reload");
    let version_before = or_panic(envoy.stats()).get("wasmcustom.canary_router.rules_version");

    let next = or_panic(std::fs::read_to_string(
        example_dir("weighted").join("rules-100-v2.json"),
    ));
    or_panic(envoy.reload_rules(&next));
    // A new connection gets the new filter chain.
    let split = send(&envoy, N, &backend(), Some("split"));
    assert_share(&split, N, 1.0, "after the reload to 0/100");
    let version_after = or_panic(envoy.stats()).get("wasmcustom.canary_router.rules_version");
    assert_ne!(version_before, version_after, "rules_version gauge");

    let next = or_panic(std::fs::read_to_string(
        example_dir("weighted").join("rules-50-50.json"),
    ));
    or_panic(envoy.reload_rules(&next));
    let split = send(&envoy, N, &backend(), Some("split"));
    assert_share(&split, N, 0.5, "after the reload to 50/50");
    assert_no_5xx(&envoy);
}

#[test]
fn every_form_of_the_backend_host_is_routed() {
    let envoy = start("weighted", Some("rules-100-v2.json"));
    let mut client = or_panic(envoy.client(10000));
    for host in [
        "backend",
        "backend:80",
        "backend.default",
        "backend.default:80",
        "backend.default.svc",
        "backend.default.svc:80",
        FQDN,
        "backend.default.svc.cluster.local:80",
        "BACKEND.Default",
    ] {
        for _ in 0..20 {
            let resp = or_panic(client.send(&Request::get("/").host(host)));
            assert_eq!(
                version_of(&resp, Some("split")).as_deref(),
                Ok("v2"),
                "Host: {host}"
            );
        }
    }
    // A host the route config does not know: Envoy's own 404, not the filter's doing.
    let resp = or_panic(client.send(&Request::get("/").host("unknown.example")));
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("x-canary-route"), None);
    assert_no_5xx(&envoy);
}

// ---------------------------------------------------------------------------
// header-override

#[test]
fn header_override_sends_testers_to_v2_and_others_90_10() {
    let envoy = start("header-override", None);
    let before = or_panic(envoy.stats());
    let testers = send(
        &envoy,
        N,
        &backend().header("canary", "canary-tester"),
        Some("testers"),
    );
    assert_share(&testers, N, 1.0, "canary: canary-tester");
    // HTTP/1 header names are case-insensitive.
    let testers_case = send(
        &envoy,
        200,
        &backend().header("Canary", "canary-tester"),
        Some("testers"),
    );
    assert_share(&testers_case, 200, 1.0, "Canary: canary-tester");
    let after = or_panic(envoy.stats());
    assert_eq!(
        delta(&before, &after, &counter("testers", "v2")),
        N as u64 + 200
    );

    // Everyone else, including near misses, splits 90/10.
    for (what, req) in [
        ("no canary header", backend()),
        ("canary: other", backend().header("canary", "other")),
        (
            "canary: non-UTF-8",
            backend().header("canary", b"canary-tester\xff".as_slice()),
        ),
        (
            "canary: Canary-Tester (values are case-sensitive)",
            backend().header("canary", "Canary-Tester"),
        ),
    ] {
        let before = or_panic(envoy.stats());
        let split = send(&envoy, N, &req, Some("split"));
        assert_share(&split, N, 0.1, what);
        let after = or_panic(envoy.stats());
        assert_counted(&before, &after, "split", &split);
        assert_eq!(
            delta(&before, &after, &counter("testers", "v2")),
            0,
            "{what}"
        );
    }
    assert_no_5xx(&envoy);
}

// ---------------------------------------------------------------------------
// default-destination: v1 stays on Envoy's own route

/// Which way a request of the `default-destination` example went:
/// `<version> via <route>`, with `, header <value>` when the backend
/// received the route header (`x-saw-canary-upstream`).
fn path_of(resp: &Response, rule: &str) -> Result<String, String> {
    let version = version_of(resp, Some(rule))?;
    let route = resp
        .header("x-route")
        .ok_or_else(|| format!("no x-route in {:?}", resp.headers))?;
    Ok(match resp.header("x-saw-canary-upstream") {
        Some(seen) => format!("{version} via {route}, header {seen}"),
        None => format!("{version} via {route}"),
    })
}

/// Sends `n` copies of `req` and counts them by [`path_of`].
fn paths(envoy: &Envoy, n: usize, req: &Request, rule: &str) -> Split {
    let mut client = or_panic(envoy.client(10000));
    let mut split = Split::default();
    for i in 0..n {
        let resp = or_panic(client.send(req));
        split.add(or_panic(
            path_of(&resp, rule).map_err(|e| format!("request {i} ({req:?}): {e}")),
        ));
    }
    split
}

#[test]
fn default_destination_leaves_v1_requests_on_envoys_own_route() {
    let envoy = start("default-destination", None);
    let v1 = "v1 via default";
    let v2 = format!("v2 via canary, header {CLUSTER_V2}");
    // A client's copy of the route header, whatever it names, is gone before
    // the route is chosen: for v1 the filter removes it and re-selects.
    let spoofed = spoofed_requests();
    let mut cases = vec![("plain", backend())];
    cases.extend(spoofed.iter().cloned());
    for (what, req) in cases {
        let before = or_panic(envoy.stats());
        let split = paths(&envoy, N, &req, "split");
        assert_eq!(
            split.count(v1) + split.count(&v2),
            N as u64,
            "{what}: every v1 answer on the default route without the header, \
             every v2 answer on the header's route: {split}"
        );
        if let Err(e) = check_binomial(N as u64, 0.1, split.count(&v2)) {
            panic!("{what}: v2 share: {e}; {split}");
        }
        let after = or_panic(envoy.stats());
        let by_version = Split {
            counts: [("v1", split.count(v1)), ("v2", split.count(&v2))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        assert_counted(&before, &after, "split", &by_version);
        let removed = if what == "plain" { 0 } else { N as u64 };
        assert_eq!(
            delta(
                &before,
                &after,
                "wasmcustom.canary_router.spoofed_header_removed"
            ),
            removed,
            "{what}"
        );
    }
    // The header rule's destination is v2: always written.
    let testers = paths(
        &envoy,
        200,
        &backend().header("canary", "canary-tester"),
        "testers",
    );
    assert_eq!(testers.count(&v2), 200, "{testers}");
    assert_no_5xx(&envoy);
}

#[test]
fn without_default_destination_v1_requests_take_the_header_route_too() {
    // The same example with the field removed: the filter writes every
    // decision, so v1 answers come through the `canary` route with the header.
    let mut rules = rules_json("default-destination", "rules.json");
    let removed = rules["services"][0]
        .as_object_mut()
        .and_then(|s| s.remove("defaultDestination"));
    assert!(removed.is_some(), "the example names a defaultDestination");
    let mut config = config("default-destination", None);
    or_panic(config.set_wasm_configuration(&rules.to_string()));
    let envoy = or_panic(Envoy::start(config, &EnvoyOptions::default()));
    let split = paths(&envoy, N, &backend(), "split");
    let v1 = format!("v1 via canary, header {CLUSTER_V1}");
    let v2 = format!("v2 via canary, header {CLUSTER_V2}");
    assert_eq!(split.count(&v1) + split.count(&v2), N as u64, "{split}");
    if let Err(e) = check_binomial(N as u64, 0.1, split.count(&v2)) {
        panic!("v2 share: {e}; {split}");
    }
    assert_no_5xx(&envoy);
}

// ---------------------------------------------------------------------------
// source-labels

#[test]
fn source_labels_v2_sidecar_sends_everything_to_v2() {
    let envoy = start("source-labels", None);
    let node = dumped_node(&envoy);
    assert_eq!(node["metadata"]["LABELS"]["version"], "v2", "{node}");
    let before = or_panic(envoy.stats());
    let split = send(&envoy, N, &backend(), Some("frontend-v2"));
    assert_share(&split, N, 1.0, "version=v2 sidecar");
    let after = or_panic(envoy.stats());
    assert_eq!(
        delta(&before, &after, &counter("frontend-v2", "v2")),
        N as u64
    );
    assert_eq!(delta(&before, &after, &counter("split", "v1")), 0);
    assert_no_5xx(&envoy);
}

/// The README's way to run the example as a `version=v1` sidecar.
const AS_V1: &str = "{node: {metadata: {LABELS: {app: frontend, version: v1}}}}";

#[test]
fn source_labels_v1_sidecar_splits_90_10() {
    let envoy = or_panic(Envoy::start(
        config("source-labels", None),
        &EnvoyOptions::default().config_yaml(AS_V1),
    ));
    // --config-yaml merged: LABELS replaced, the other metadata kept.
    let node = dumped_node(&envoy);
    assert_eq!(
        node["metadata"]["LABELS"],
        serde_json::json!({"app": "frontend", "version": "v1"}),
        "{node}"
    );
    assert_eq!(node["metadata"]["NAMESPACE"], "default", "{node}");
    assert_eq!(node["metadata"]["CLUSTER_ID"], "Kubernetes", "{node}");
    let before = or_panic(envoy.stats());
    let split = send(&envoy, N, &backend(), Some("split"));
    assert_share(&split, N, 0.1, "version=v1 sidecar");
    let after = or_panic(envoy.stats());
    assert_counted(&before, &after, "split", &split);
    assert_eq!(delta(&before, &after, &counter("frontend-v2", "v2")), 0);
    assert_no_5xx(&envoy);
}

/// Envoy merges `--config-yaml` with protobuf MergeFrom: a key of the
/// metadata Struct is replaced whole, so giving only `version` drops `app`,
/// and the `{app: frontend, version: v2}` rule no longer matches.
#[test]
fn source_labels_partial_labels_override_replaces_the_whole_map() {
    let envoy = or_panic(Envoy::start(
        config("source-labels", None),
        &EnvoyOptions::default().config_yaml("{node: {metadata: {LABELS: {version: v2}}}}"),
    ));
    let node = dumped_node(&envoy);
    assert_eq!(
        node["metadata"]["LABELS"],
        serde_json::json!({"version": "v2"}),
        "{node}"
    );
    let split = send(&envoy, N, &backend(), Some("split"));
    assert_share(&split, N, 0.1, "LABELS without app");
    assert_no_5xx(&envoy);
}

// ---------------------------------------------------------------------------
// native-module: the dynamic module's example, as its README runs it

/// examples/native-module runs as is (its envoy.yaml loads the `.so` that
/// scripts/build-module.sh builds): its inline rules are rules.json, the
/// 90/10 split, `canary: canary-tester` to v2, and sticky users.
#[test]
fn native_module_example_runs_as_is() {
    let config = config(NATIVE, None);
    let filters = config.value().to_string();
    assert!(
        filters.contains(MODULE_FILTER_TYPE),
        "{NATIVE}: no module filter"
    );
    assert!(
        !filters.contains(WASM_FILTER_TYPE),
        "{NATIVE}: a wasm filter"
    );
    let mut inline = Vec::new();
    dumped_wasm_configurations(config.value(), &mut inline);
    assert_eq!(inline.len(), 1, "{NATIVE}: one filter config");
    let inline: Value = or_panic(serde_json::from_str(&inline[0]));
    assert_eq!(inline, rules_json(NATIVE, "rules.json"));
    assert!(
        filters.contains(FILTER_MODULE_RELATIVE),
        "{NATIVE}: loads {FILTER_MODULE_RELATIVE}"
    );
    assert_native_module_routes(config, "native-module", true);
}

/// Starts an `examples/native-module` Envoy `config` with the built module
/// (the runner's build stands in for the example's relative path, as the
/// wasm's Auto does) and checks what both placements route: rules.json's
/// 90/10 split and its testers, each counted per rule, and 300 sticky
/// users who each see one version over 4 requests, about 10% of them on
/// v2, with no 5xx. `debug`: the responses carry the debug header (the
/// HTTP filter's; a cluster specifier has no response to add it to).
/// Returns the Envoy and its stats after the testers.
fn assert_native_module_routes(
    mut config: EnvoyConfig,
    label: &str,
    debug: bool,
) -> (Envoy, envoy_runner::Stats) {
    let rule = |name| debug.then_some(name);
    config.load_module_from(or_panic(envoy_runner::build_filter_module()));
    let envoy = or_panic(Envoy::start(config, &EnvoyOptions::default()));

    let before = or_panic(envoy.stats());
    let split = send(&envoy, N, &backend(), rule("split"));
    assert_share(&split, N, 0.1, &format!("{label} 90/10"));
    let mid = or_panic(envoy.stats());
    assert_counted(&before, &mid, "split", &split);
    let testers = send(
        &envoy,
        200,
        &backend().header("canary", "canary-tester"),
        rule("testers"),
    );
    assert_eq!(testers.count("v2"), 200, "{label} testers: {testers}");
    let after = or_panic(envoy.stats());
    assert_eq!(delta(&mid, &after, &counter("testers", "v2")), 200);

    let mut client = or_panic(envoy.client(10000));
    let mut users = Split::default();
    for u in 0..300 {
        let req = backend().header("x-user-id", format!("user-{u}"));
        let first = or_panic(version_of(&or_panic(client.send(&req)), rule("split")));
        for _ in 0..3 {
            let again = or_panic(version_of(&or_panic(client.send(&req)), rule("split")));
            assert_eq!(again, first, "{label}: user-{u} moved");
        }
        users.add(first);
    }
    assert_share(&users, 300, 0.1, &format!("{label} sticky users"));
    assert_no_5xx(&envoy);
    (envoy, after)
}

/// examples/native-module/envoy-specifier.yaml runs as is: the module as
/// the cluster specifier of istiod's route (no filter, no route header),
/// with rules.json's 90/10 split, testers and sticky users, and v1 as the
/// defaultDestination; the route keeps istiod's timeout and retry policy.
#[test]
fn native_module_specifier_example_runs_as_is() {
    let path = example_dir(NATIVE).join("envoy-specifier.yaml");
    let config = or_panic(EnvoyConfig::from_file(&path));
    let text = config.value().to_string();
    assert!(
        !text.contains(MODULE_FILTER_TYPE),
        "{path:?}: an HTTP filter"
    );
    assert!(!text.contains(WASM_FILTER_TYPE), "{path:?}: a wasm filter");
    assert!(
        text.contains(FILTER_MODULE_RELATIVE),
        "{path:?}: loads {FILTER_MODULE_RELATIVE}"
    );
    let route = config.value()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        [0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        .clone();
    assert_eq!(route["timeout"], "0s", "{route}");
    assert_eq!(route["retry_policy"]["num_retries"], 2, "{route}");
    assert!(route.get("cluster").is_none(), "{route}");
    // Its rules are rules.json's for the route's one service, with v1 as
    // the defaultDestination and no debug header.
    let inline = route["inline_cluster_specifier_plugin"]["extension"]["typed_config"]
        ["specifier_config"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut inline: Value = or_panic(serde_json::from_str(&inline));
    let mut want = rules_json(NATIVE, "rules.json");
    if let Some(w) = want.as_object_mut() {
        w.remove("routeHeader");
        w.remove("debugHeader");
    }
    let default = inline["services"][0]
        .as_object_mut()
        .and_then(|s| s.remove("defaultDestination"));
    assert_eq!(inline, want, "{path:?}: the rules differ from rules.json's");
    assert_eq!(
        default,
        Some(serde_json::json!({ "host": FQDN, "subset": "v1", "port": { "number": 80 } }))
    );
    let (_envoy, after) = assert_native_module_routes(config, "specifier", false);
    assert_eq!(after.get(&format!("{HCM}.no_cluster")), 0);
}

// ---------------------------------------------------------------------------
// sticky

#[test]
fn sticky_users_keep_one_version() {
    const USERS: usize = 200;
    const ROUNDS: usize = 5;
    let envoy = start("sticky", None);
    let mut client = or_panic(envoy.client(10000));
    let mut seen: BTreeMap<Vec<u8>, BTreeSet<String>> = BTreeMap::new();
    let mut user_ids: Vec<Vec<u8>> = (0..USERS)
        .map(|i| format!("user-{i}").into_bytes())
        .collect();
    // Raw bytes are user ids too.
    user_ids.push(b"\xff\xfe-not-utf8".to_vec());
    // Rounds interleave users, so stickiness cannot come from a connection.
    for _ in 0..ROUNDS {
        for id in &user_ids {
            let resp = or_panic(client.send(&backend().header("x-user-id", id)));
            let version = or_panic(version_of(&resp, Some("split")));
            seen.entry(id.clone()).or_default().insert(version);
        }
    }
    let moved: Vec<_> = seen
        .iter()
        .filter(|(_, v)| v.len() != 1)
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
        .collect();
    assert!(moved.is_empty(), "users that changed version: {moved:?}");
    let on_v2 = (0..USERS)
        .filter(|i| seen[format!("user-{i}").as_bytes()].contains("v2"))
        .count();
    if let Err(e) = check_binomial(USERS as u64, 0.5, on_v2 as u64) {
        panic!("users on v2: {e}");
    }
    // Without a user id the request is not sticky: still 50/50.
    let split = send(&envoy, N, &backend(), Some("split"));
    assert_share(&split, N, 0.5, "no x-user-id");
    assert_no_5xx(&envoy);
}

// ---------------------------------------------------------------------------
// A client cannot choose the upstream

fn spoofed_requests() -> Vec<(&'static str, Request)> {
    vec![
        (
            "x-canary-upstream: v2",
            backend().header("x-canary-upstream", CLUSTER_V2),
        ),
        (
            "X-Canary-Upstream: v2",
            backend().header("X-Canary-Upstream", CLUSTER_V2),
        ),
        (
            "two copies",
            backend()
                .header("x-canary-upstream", CLUSTER_V2)
                .header("X-CANARY-UPSTREAM", CLUSTER_V2),
        ),
        (
            "copies with other values",
            backend()
                .header("x-canary-upstream", b"\xff\xfe".as_slice())
                .header("x-canary-upstream", CLUSTER_V2)
                .header("x-canary-upstream", "outbound|80||no-such-cluster"),
        ),
    ]
}

#[test]
fn spoofed_route_header_does_not_change_the_split() {
    let envoy = start("weighted", None);
    for (what, req) in spoofed_requests() {
        let before = or_panic(envoy.stats());
        let split = send(&envoy, N, &req, Some("split"));
        assert_share(&split, N, 0.1, what);
        let after = or_panic(envoy.stats());
        assert_counted(&before, &after, "split", &split);
        assert_eq!(
            delta(
                &before,
                &after,
                "wasmcustom.canary_router.spoofed_header_removed"
            ),
            N as u64,
            "{what}"
        );
    }
    assert_no_5xx(&envoy);
}

#[test]
fn spoofed_route_header_is_removed_for_hosts_the_rules_do_not_cover() {
    // The same Envoy config, with rules for another service only: requests
    // for `backend` are not the filter's to route, and must take Envoy's
    // default route (v1) whatever the client sent.
    let mut rules = rules_json("weighted", "rules.json");
    let text = or_panic(serde_json::to_string(&rules));
    rules = or_panic(serde_json::from_str(&text.replace("backend.", "other.")));
    let mut config = config("weighted", None);
    or_panic(config.set_wasm_configuration(&rules.to_string()));
    let envoy = or_panic(Envoy::start(config, &EnvoyOptions::default()));

    const PER_VARIANT: usize = 300;
    let before = or_panic(envoy.stats());
    let variants = spoofed_requests();
    for (what, req) in &variants {
        let split = send(&envoy, PER_VARIANT, req, None);
        assert_eq!(
            split.count("v1"),
            PER_VARIANT as u64,
            "{what}: the client's header was obeyed: {split}"
        );
    }
    let plain = send(&envoy, PER_VARIANT, &backend(), None);
    assert_eq!(plain.count("v1"), PER_VARIANT as u64);
    let after = or_panic(envoy.stats());
    let spoofed = (variants.len() * PER_VARIANT) as u64;
    assert_eq!(
        delta(
            &before,
            &after,
            "wasmcustom.canary_router.spoofed_header_removed"
        ),
        spoofed
    );
    assert_eq!(
        delta(&before, &after, "wasmcustom.canary_router.passthrough"),
        spoofed + PER_VARIANT as u64
    );
    assert_eq!(
        delta(
            &before,
            &after,
            &format!("cluster.{CLUSTER_V2}.upstream_rq_total")
        ),
        0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            &format!("cluster.{CLUSTER_V1}.upstream_rq_200")
        ),
        spoofed + PER_VARIANT as u64
    );
    assert_no_5xx(&envoy);
}

// ---------------------------------------------------------------------------
// The runner cleans up

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn runner_stops_envoy_on_drop_and_when_a_test_panics() {
    let envoy = start("weighted", None);
    let (pid, dir) = (envoy.pid(), envoy.dir().to_path_buf());
    assert!(alive(pid));
    drop(envoy);
    assert!(!alive(pid), "Envoy {pid} still running after drop");
    assert!(!dir.exists(), "{dir:?} left behind");

    // An Envoy outlives the thread that started it (PDEATHSIG must not fire).
    let envoy = or_panic(
        std::thread::spawn(|| start("weighted", None))
            .join()
            .map_err(|_| "the starting thread panicked"),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        alive(envoy.pid()),
        "Envoy died with the thread that started it"
    );
    let resp = or_panic(or_panic(envoy.client(10000)).send(&backend()));
    or_panic(version_of(&resp, Some("split")));
    drop(envoy);

    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let envoy = start("weighted", None);
        tx.send((envoy.pid(), envoy.dir().to_path_buf()))
            .unwrap_or_default();
        panic!("deliberate panic: the runner must stop Envoy and keep its log");
    });
    assert!(thread.join().is_err());
    let (pid, dir) = or_panic(rx.recv());
    assert!(!alive(pid), "Envoy {pid} still running after a panic");
    assert!(
        dir.join("envoy.log").is_file(),
        "the log of a failed run is kept"
    );
    or_panic(std::fs::remove_dir_all(&dir));
}
