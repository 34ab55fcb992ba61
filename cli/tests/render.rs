//! `canaryctl render`, end to end: the output parses as YAML, is accepted by
//! `validate`, and is the same object as the hand-written manifests in
//! `wasmplugin/`.

mod common;

use common::{canaryctl, repo, TempFile};
use serde_json::Value;

const IMAGE: &str = "oci://ghcr.io/example/canary-router:0.1.0";

fn zeros() -> String {
    "0".repeat(64)
}

/// The non-empty documents of a YAML text.
fn docs(text: &str) -> Vec<Value> {
    all_docs(text)
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn all_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .collect()
}

fn manifest(name: &str) -> Vec<Value> {
    docs(&std::fs::read_to_string(repo(&format!("wasmplugin/{name}"))).expect("manifest"))
}

/// `spec.sha256` (a TrafficExtension's `spec.wasm.sha256`) is compared as
/// text: a digest of digits only (such as the placeholder of zeros) reads
/// as a YAML number when left unquoted.
fn take_sha256(doc: &mut Value) -> String {
    let spec = if doc["spec"].get("wasm").is_some() {
        &mut doc["spec"]["wasm"]
    } else {
        &mut doc["spec"]
    };
    match spec.as_object_mut().and_then(|s| s.remove("sha256")) {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => format!("{:064}", n.as_u64().expect("a digest of digits")),
        other => panic!("sha256 is {other:?}"),
    }
}

#[track_caller]
fn same_wasmplugin(mut rendered: Value, mut written: Value) {
    assert_eq!(take_sha256(&mut rendered), take_sha256(&mut written));
    assert_eq!(
        rendered,
        written,
        "rendered:\n{}\nwritten:\n{}",
        serde_json::to_string_pretty(&rendered).unwrap(),
        serde_json::to_string_pretty(&written).unwrap()
    );
}

#[test]
fn inline_rules_render_as_wasmplugin_yaml() {
    let run = canaryctl(
        &[
            "render",
            "--namespace",
            "default",
            "--image",
            IMAGE,
            "--sha256",
            &zeros(),
            "--selector",
            "app=frontend",
            &repo("examples/weighted/rules.json"),
        ],
        None,
    )
    .expect_code(0);
    let out = docs(&run.stdout);
    assert_eq!(out.len(), 1, "{}", run.stdout);
    let written = manifest("wasmplugin.yaml");
    same_wasmplugin(out[0].clone(), written[0].clone());
    // And validate accepts it.
    let f = TempFile::new("wasmplugin.yaml", &run.stdout);
    let v = canaryctl(&["validate", &f.path()], None).expect_code(0);
    assert!(
        v.stdout.contains("(WasmPlugin default/canary-router)"),
        "{}",
        v.stdout
    );
}

#[test]
fn a_file_module_renders_as_wasmplugin_file_yaml() {
    let run = canaryctl(
        &[
            "render",
            "--image",
            "file:///var/local/wasm/canary_router.wasm",
            "--sha256",
            &format!("sha256:{}", zeros()),
            "--selector",
            "app=frontend",
            &repo("examples/weighted/rules.json"),
        ],
        None,
    )
    .expect_code(0);
    let out = docs(&run.stdout);
    same_wasmplugin(out[0].clone(), manifest("wasmplugin-file.yaml")[0].clone());
}

#[test]
fn configmap_renders_as_rules_configmap_and_wasmplugin_configmap() {
    let run = canaryctl(
        &[
            "render",
            "--configmap",
            "--namespace",
            "default",
            "--image",
            IMAGE,
            "--sha256",
            &zeros(),
            "--selector",
            "app=frontend",
            "--debug-header",
            "x-canary-route",
            &repo("examples/configmap-poll/rule-file-90-10.json"),
        ],
        None,
    )
    .expect_code(0);
    let out = docs(&run.stdout);
    assert_eq!(out.len(), 2, "{}", run.stdout);
    same_wasmplugin(
        out[1].clone(),
        manifest("wasmplugin-configmap.yaml")[0].clone(),
    );

    let written = &manifest("rules-configmap.yaml")[0];
    let rendered = &out[0];
    for key in ["apiVersion", "kind", "metadata"] {
        assert_eq!(rendered[key], written[key], "{key}");
    }
    let rules = |cm: &Value| -> Value {
        serde_json::from_str(cm["data"]["rules.json"].as_str().expect("rules.json")).expect("JSON")
    };
    assert_eq!(rules(rendered), rules(written));
    let keys = |v: &Value| {
        v["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(rendered), keys(written));

    // Both documents pass validate, the ConfigMap's rules with the plugin's settings.
    let f = TempFile::new("configmap.yaml", &run.stdout);
    let v = canaryctl(&["validate", &f.path()], None).expect_code(0);
    assert!(v
        .stdout
        .contains("ConfigMap istio-system/canary-rules data[\"rules.json\"]"));
    assert!(v.stdout.contains(
        "rules polled from cluster outbound|80||canary-rules.istio-system.svc.cluster.local"
    ));
    assert!(
        v.stdout.contains("debug header x-canary-route"),
        "{}",
        v.stdout
    );
}

/// `--traffic-extension` prints the TrafficExtension twins of the
/// WasmPlugins in `wasmplugin/` (which the manifest tests check against
/// Istio 1.30's CRD and against istiod's conversion of each WasmPlugin).
#[test]
fn with_traffic_extension_render_prints_the_trafficextension_manifests() {
    let z = zeros();
    let base = ["render", "--traffic-extension", "--sha256", &z];
    let cases: [(&[&str], &str, usize); 3] = [
        (
            &[
                "--image",
                IMAGE,
                "--selector",
                "app=frontend",
                "examples/weighted/rules.json",
            ],
            "trafficextension.yaml",
            0,
        ),
        (
            &[
                "--image",
                "file:///var/local/wasm/canary_router.wasm",
                "--selector",
                "app=frontend",
                "examples/weighted/rules.json",
            ],
            "trafficextension-file.yaml",
            0,
        ),
        (
            &[
                "--configmap",
                "--image",
                IMAGE,
                "--selector",
                "app=frontend",
                "--debug-header",
                "x-canary-route",
                "examples/configmap-poll/rule-file-90-10.json",
            ],
            "trafficextension-configmap.yaml",
            1,
        ),
    ];
    for (args, file, at) in cases {
        let mut all: Vec<String> = base.iter().map(|a| a.to_string()).collect();
        for a in args {
            all.push(if a.starts_with("examples/") {
                repo(a)
            } else {
                a.to_string()
            });
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let run = canaryctl(&all, None).expect_code(0);
        assert!(
            run.stdout
                .contains("(a TrafficExtension: Istio 1.30 and later)"),
            "{}",
            run.stdout
        );
        let out = docs(&run.stdout);
        same_wasmplugin(out[at].clone(), manifest(file)[0].clone());
        // validate reads it (spec.wasm.pluginConfig).
        let f = TempFile::new("te.yaml", &run.stdout);
        let v = canaryctl(&["validate", &f.path()], None).expect_code(0);
        assert!(
            v.stdout
                .contains("(TrafficExtension default/canary-router)"),
            "{}",
            v.stdout
        );
    }
    // A bad rule in a TrafficExtension is named by its path there.
    let bad = std::fs::read_to_string(repo("wasmplugin/trafficextension.yaml"))
        .unwrap()
        .replace("weight: 90", "weight: -90");
    let f = TempFile::new("bad-te.yaml", &bad);
    let v = canaryctl(&["validate", &f.path()], None).expect_code(1);
    assert!(
        v.stderr
            .contains("spec.wasm.pluginConfig.services[0].http[0].route[0].weight"),
        "{}",
        v.stderr
    );
}

#[test]
fn options_shape_the_wasmplugin() {
    let run = canaryctl(
        &[
            "render",
            "--namespace",
            "shop",
            "--name",
            "canary",
            "--image",
            "https://example.com/canary_router.wasm",
            "--port",
            "8080",
            "--port",
            "9080",
            "--fail-strategy",
            "fail-close",
            &repo("examples/sticky/rules.json"),
        ],
        None,
    )
    .expect_code(0);
    let wp = &docs(&run.stdout)[0];
    assert_eq!(wp["metadata"]["namespace"], "shop");
    assert_eq!(wp["metadata"]["name"], "canary");
    assert_eq!(wp["spec"]["failStrategy"], "FAIL_CLOSE");
    assert_eq!(
        wp["spec"]["match"][0]["ports"],
        serde_json::json!([{"number": 8080}, {"number": 9080}])
    );
    assert!(wp["spec"].get("selector").is_none());
    assert!(wp["spec"].get("sha256").is_none());
    assert!(wp["spec"].get("imagePullPolicy").is_none());
    assert_eq!(
        wp["spec"]["pluginConfig"]["services"][0]["http"][0]["sticky"]["header"],
        "x-user-id"
    );
    // What was left out is said.
    assert!(run.stderr.contains("no --selector"), "{}", run.stderr);
    assert!(run.stderr.contains("no --sha256"), "{}", run.stderr);
}

#[test]
fn bad_rules_and_bad_options_are_refused() {
    let bad = TempFile::new(
        "bad.json",
        r#"{"services": [{"hosts": ["backend"], "http": [{"route": [{"destination": {"host": "backend", "port": {"number": 0}}}]}]}]}"#,
    );
    let run = canaryctl(&["render", "--image", IMAGE, &bad.path()], None).expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[0].route[0].destination.port.number: port 0 is outside"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let good = repo("examples/weighted/rules.json");
    let run = canaryctl(
        &["render", "--image", IMAGE, "--sha256", "abc", &good],
        None,
    )
    .expect_code(2);
    assert!(run.stderr.contains("not 64 hex digits"), "{}", run.stderr);
    let run = canaryctl(&["render", "--image", "registry/canary:1", &good], None).expect_code(2);
    assert!(run.stderr.contains("oci://"), "{}", run.stderr);
    // A configuration that already polls has no rules to render.
    let run = canaryctl(
        &[
            "render",
            "--image",
            IMAGE,
            &repo("wasmplugin/wasmplugin-configmap.yaml"),
        ],
        None,
    )
    .expect_code(1);
    assert!(
        run.stderr.contains("render the rule file itself"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_shows_an_example() {
    let run = canaryctl(&["render", "--help"], None).expect_code(0);
    assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
    assert!(run.stdout.contains("--configmap"));
}

#[test]
fn portless_rules_need_the_service_ports_by_name() {
    let rules = TempFile::new(
        "portless.json",
        r#"{"services": [{"hosts": ["reviews"], "http": [{"name": "all", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}]}"#,
    );
    let run = canaryctl(&["render", "--image", IMAGE, &rules.path()], None).expect_code(1);
    assert!(
        run.stderr.contains(
            "service reviews.default.svc.cluster.local, rule all, destination v1: no port (it takes the port the request arrived on)"
        ) && run.stderr.contains("--port"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let run = canaryctl(
        &["render", "--image", IMAGE, "--port", "9080", &rules.path()],
        None,
    )
    .expect_code(0);
    let wp: serde_yaml_ng::Value = serde_yaml_ng::from_str(&run.stdout).unwrap();
    assert_eq!(wp["spec"]["match"][0]["ports"][0]["number"], 9080);
}

#[test]
fn with_the_glue_portless_rules_are_written_portless_and_glued_per_port() {
    let rules = TempFile::new(
        "portless.json",
        r#"{"services": [{"hosts": ["reviews"], "http": [{"name": "all", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}]}"#,
    );
    let run = canaryctl(
        &[
            "render",
            "--image",
            IMAGE,
            "--glue",
            "--port",
            "9080",
            "--port",
            "9081",
            &rules.path(),
        ],
        None,
    )
    .expect_code(0);
    assert!(
        run.stderr.contains("portlessDestinations: glue"),
        "{}",
        run.stderr
    );
    let docs = docs(&run.stdout);
    assert_eq!(
        docs[0]["spec"]["pluginConfig"]["portlessDestinations"],
        "glue"
    );
    let patches = docs[1]["spec"]["configPatches"].as_array().unwrap();
    let routes: Vec<(u64, String, String)> = patches
        .iter()
        .map(|p| {
            let v = &p["patch"]["value"];
            (
                p["match"]["routeConfiguration"]["portNumber"]
                    .as_u64()
                    .unwrap(),
                v["match"]["headers"][0]["string_match"]["exact"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["route"]["cluster"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let v1 = "|v1|reviews.default.svc.cluster.local";
    assert_eq!(
        routes,
        [9080u64, 9081]
            .map(|p| (p, format!("outbound|{v1}"), format!("outbound|{p}{v1}")))
            .to_vec()
    );
    // Without --glue the file's mode stays (the request's port).
    let run = canaryctl(
        &["render", "--image", IMAGE, "--port", "9080", &rules.path()],
        None,
    )
    .expect_code(0);
    assert!(
        !run.stdout.contains("portlessDestinations"),
        "{}",
        run.stdout
    );
    // A gateway's listener port is not the service's: refused by name.
    for extra in [&["--glue"][..], &[]] {
        let mut args = vec!["render", "--image", IMAGE, "--gateway", "edge"];
        args.extend(extra);
        let path = rules.path();
        args.push(&path);
        let run = canaryctl(&args, None).expect_code(1);
        assert!(
            run.stderr
                .contains("rule all, destination v1: no port, and on a gateway")
                && run.stderr.contains("destinationPort"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn an_httproute_setup_is_attached_by_target_refs_with_its_glue() {
    let imported = canaryctl(
        &[
            "import",
            &repo("cli/tests/fixtures/gateway-api/weights.yaml"),
        ],
        None,
    )
    .expect_code(0);
    let rules = TempFile::new("rules.json", &imported.stdout);
    let base = [
        "render",
        "--image",
        IMAGE,
        "--namespace",
        "canary",
        "--sha256",
    ];
    let z = zeros();
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.push(&z);
        args.extend(extra);
        let path = rules.path();
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        canaryctl(&args, None)
    };
    let run = with(&["--gateway", "edge", "--glue"]).expect_code(0);
    let d = docs(&run.stdout);
    assert_eq!(d.len(), 2, "{}", run.stdout);
    let refs = serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}]);
    assert_eq!(d[0]["spec"]["targetRefs"], refs);
    assert!(d[0]["spec"].get("selector").is_none());
    // On every listener of the Gateway (not the backends' port), as
    // wasmplugin/gateway-api-wasmplugin.yaml; --port names listeners.
    assert_eq!(
        d[0]["spec"]["match"],
        serde_json::json!([{"mode": "CLIENT"}])
    );
    let on_8000 = docs(
        &with(&["--gateway", "edge", "--port", "8000"])
            .expect_code(0)
            .stdout,
    );
    assert_eq!(
        on_8000[0]["spec"]["match"],
        serde_json::json!([{"mode": "CLIENT", "ports": [{"number": 8000}]}])
    );
    assert_eq!(d[1]["kind"], "EnvoyFilter");
    assert_eq!(d[1]["spec"]["targetRefs"], refs);
    let patches = d[1]["spec"]["configPatches"].as_array().unwrap();
    // One route per cluster the rules name (v1, v2 and the weight-0 v3), in the `*:80` vhost.
    assert_eq!(patches.len(), 3, "{}", run.stdout);
    for p in patches {
        assert_eq!(p["match"]["context"], "GATEWAY");
        assert_eq!(
            p["match"]["routeConfiguration"],
            serde_json::json!({"portNumber": 80, "vhost": {"name": "*:80"}})
        );
        let exact = p["patch"]["value"]["match"]["headers"][0]["string_match"]["exact"]
            .as_str()
            .unwrap();
        assert!(exact.starts_with("outbound|8080||echo-v"), "{exact}");
    }
    let wasmplugin = TempFile::new("wp.yaml", &run.stdout);
    canaryctl(&["validate", &wasmplugin.path()], None).expect_code(0);
    // As a TrafficExtension: the same targetRefs and match, the module under `wasm`.
    let te = docs(
        &with(&["--gateway", "edge", "--glue", "--traffic-extension"])
            .expect_code(0)
            .stdout,
    );
    assert_eq!(te[0]["kind"], "TrafficExtension");
    assert_eq!(te[0]["spec"]["targetRefs"], refs);
    assert_eq!(te[0]["spec"]["match"], d[0]["spec"]["match"]);
    assert_eq!(te[0]["spec"]["phase"], "UNSPECIFIED");
    assert_eq!(te[0]["spec"]["wasm"]["url"], IMAGE);
    assert_eq!(
        te[0]["spec"]["wasm"]["pluginConfig"],
        d[0]["spec"]["pluginConfig"]
    );
    assert!(te[0]["spec"].get("url").is_none() && te[0]["spec"].get("selector").is_none());
    assert_eq!(te[1], d[1], "the same glue");

    let run = with(&["--waypoint-service", "echo"]).expect_code(0);
    let d = docs(&run.stdout);
    assert_eq!(
        d[0]["spec"]["targetRefs"],
        serde_json::json!([{"group": "", "kind": "Service", "name": "echo"}])
    );
    assert!(d[0]["spec"]["match"][0].get("mode").is_none());
    with(&["--gateway", "edge", "--selector", "app=x"]).expect_code(2);
    with(&["--waypoint-service", "echo", "--glue"]).expect_code(2);
}

/// The glue's routes (the `value` of each patch), in the order printed.
fn glue_routes(stdout: &str) -> Vec<Value> {
    docs(stdout)
        .into_iter()
        .find(|d| d["kind"] == "EnvoyFilter")
        .expect("an EnvoyFilter")["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["patch"]["value"].clone())
        .collect()
}

#[test]
fn every_glue_route_carries_istiods_defaults_and_the_mesh_can_change_its_retries() {
    let rules = repo("examples/weighted/rules.json");
    let run = canaryctl(&["render", "--image", IMAGE, "--glue", &rules], None).expect_code(0);
    let routes = glue_routes(&run.stdout);
    assert_eq!(routes.len(), 2);
    for r in &routes {
        let a = &r["route"];
        assert_eq!(a["cluster_header"], "x-canary-upstream");
        assert_eq!(
            (&a["timeout"], &a["max_grpc_timeout"]),
            (&"0s".into(), &"0s".into())
        );
        let p = &a["retry_policy"];
        assert_eq!(p["num_retries"], 2);
        assert_eq!(
            p["retry_on"],
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
        );
        assert_eq!(p["host_selection_retry_max_attempts"], "5");
        assert_eq!(
            p["retry_host_predicate"][0]["name"],
            "envoy.retry_host_predicates.previous_hosts"
        );
        assert_eq!(
            r["decorator"]["operation"],
            "backend.default.svc.cluster.local:80/*"
        );
    }
    let mesh = [
        "--mesh-retries",
        "{attempts: 4, retryOn: \"5xx,503\", perTryTimeout: 2s}",
    ];
    let run = canaryctl(
        &[
            "render", "--image", IMAGE, "--glue", mesh[0], mesh[1], &rules,
        ],
        None,
    )
    .expect_code(0);
    let p = &glue_routes(&run.stdout)[0]["route"]["retry_policy"];
    assert_eq!(p["num_retries"], 4);
    assert_eq!(p["retry_on"], "5xx,retriable-status-codes");
    assert_eq!(p["retriable_status_codes"], serde_json::json!([503]));
    assert_eq!(p["per_try_timeout"], "2s");
    let run = canaryctl(
        &[
            "render",
            "--image",
            IMAGE,
            "--glue",
            "--mesh-retries",
            "{attempts: 0}",
            &rules,
        ],
        None,
    )
    .expect_code(0);
    assert!(glue_routes(&run.stdout)[0]["route"]
        .get("retry_policy")
        .is_none());
    let run = canaryctl(
        &[
            "render",
            "--image",
            IMAGE,
            "--glue",
            "--mesh-retries",
            "{attempts: 2, retryOn: sometimes}",
            &rules,
        ],
        None,
    )
    .expect_code(2);
    assert!(
        run.stderr.contains(
            "defaultHttpRetryPolicy.retryOn: \"sometimes\" is not a valid retryOn policy"
        ),
        "{}",
        run.stderr
    );
}

const POLICY_RULES: &str = r#"{"services": [{"hosts": ["reviews"], "http": [
  {"name": "testers", "match": [{"name": "api", "uri": {"prefix": "/api"}, "headers": {"x-t": {}}}, {"uri": {"exact": "/login"}}],
   "rewrite": {"uri": "/v2"}, "timeout": "2s",
   "route": [{"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}}]},
  {"name": "split", "route": [
    {"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}, "weight": 90},
    {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}, "weight": 10}]}]}]}"#;

#[test]
fn a_rule_with_route_policies_gets_routes_of_its_own() {
    let file = TempFile::new("rules.json", POLICY_RULES);
    let run = canaryctl(&["render", "--image", IMAGE, "--glue", &file.path()], None).expect_code(0);
    let routes = glue_routes(&run.stdout);
    // Last route first: split's two values, then testers' two entries.
    let seen: Vec<(String, String)> = routes
        .iter()
        .rev()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["match"]["headers"][0]["string_match"]["exact"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let v = |s: &str| format!("outbound|9080|{s}|reviews.default.svc.cluster.local");
    assert_eq!(
        seen,
        [
            ("testers.api".to_string(), format!("{};testers", v("v2"))),
            ("testers".to_string(), format!("{};testers", v("v2"))),
            ("canary-router".to_string(), v("v1")),
            ("canary-router".to_string(), v("v2")),
        ]
    );
    let api = &routes[3];
    assert_eq!(api["match"]["prefix"], "/api");
    assert_eq!(api["match"]["headers"][1]["name"], "x-t");
    assert_eq!(api["route"]["cluster"], v("v2"));
    assert_eq!(api["route"]["prefix_rewrite"], "/v2");
    assert_eq!(api["route"]["timeout"], "2s");
    assert_eq!(
        api["route"]["retry_policy"]["num_retries"], 2,
        "the mesh default"
    );
    assert_eq!(
        api["decorator"]["operation"],
        "reviews.default.svc.cluster.local:9080/api*"
    );
    assert_eq!(routes[2]["match"]["path"], "/login");
    // The shared routes of the rule without policies have no policy of its.
    assert!(routes[0]["route"].get("prefix_rewrite").is_none());
    assert_eq!(routes[0]["route"]["timeout"], "0s");

    // Without --glue, a note says the policies need it.
    let run = canaryctl(&["render", "--image", IMAGE, &file.path()], None).expect_code(0);
    assert!(
        run.stderr.contains("1 rule(s) carry route policies"),
        "{}",
        run.stderr
    );

    // A policy istiod would refuse is refused by path, by validate too.
    let bad = POLICY_RULES.replace(r#""timeout": "2s""#, r#""timeout": "2 seconds""#);
    let bad = TempFile::new("bad.json", &bad);
    for cmd in [
        &["render", "--image", IMAGE, "--glue"][..],
        &["validate"][..],
    ] {
        let mut args = cmd.to_vec();
        let path = bad.path();
        args.push(&path);
        let run = canaryctl(&args, None).expect_code(1);
        assert!(
            run.stderr
                .contains("services[0].http[0].timeout: `2 seconds` is not a duration"),
            "{args:?}: {}",
            run.stderr
        );
    }

    // Two rules of one name to one cluster with other policies cannot be
    // told apart by the route header: refused by path.
    let twin = POLICY_RULES.replace(
        r#"{"name": "split", "route": ["#,
        r#"{"name": "testers", "timeout": "5s", "route": ["#,
    );
    let twin = TempFile::new("twin.json", &twin);
    let run = canaryctl(&["render", "--image", IMAGE, "--glue", &twin.path()], None).expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[1].name: services[0].http[0] has the same name `testers`"),
        "{}",
        run.stderr
    );
}
