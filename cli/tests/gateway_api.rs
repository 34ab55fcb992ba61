//! Gateway API HTTPRoutes (cli/tests/fixtures/gateway-api/, this project's
//! own fixtures, each drawn from a test of Gateway API's conformance suite
//! and expecting what that test expects) imported with `canaryctl import`,
//! checked with `canaryctl validate`, and replayed in a real Envoy laid out
//! as an Istio proxy: the filter, the routing glue first (the route of the
//! EnvoyFilter `canaryctl render --glue` prints for these rules, with
//! `--gateway` or, for the mesh route, a sidecar selector), then Envoy's own
//! routes for the same rules as istiod writes them (`envoy_runner::native`)
//! and a 404 for anything else, as a Gateway answers a request no route
//! matches.
//!
//! Envoy's own routes answer `503 envoy-route` for a rule with backends
//! (so a request the filter should have routed but did not is seen) and
//! `500` for the rules Gateway API answers with 500 (istiod's direct
//! response): those the filter must leave to Envoy.

mod common;

use common::{canaryctl, fixture, TempFile};
use envoy_runner::{
    check_binomial, count_split, native, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request,
    SplitKey, FILTER_WASM_RELATIVE,
};
use serde_json::{json, Value};

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const BACKENDS: [(&str, u16); 3] = [("echo-v1", 10301), ("echo-v2", 10302), ("echo-v3", 10303)];
const LISTENER: u16 = 10380;
const PASS: &str = "gateway-api.envoy-route";

/// What a request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Routed by the filter to this backend (`echo-vN`).
    Backend(&'static str),
    /// Answered by Envoy with this status (404: no rule; 500: Gateway API's answer).
    Status(u16),
}
use Expect::{Backend, Status};

fn gw(name: &str) -> String {
    fixture(&format!("gateway-api/{name}"))
}

/// `canaryctl import` of a fixture, after the Gateway `edge` unless the
/// fixture brings its own; the output must pass `canaryctl validate`.
fn import(name: &str, extra: &[&str]) -> Value {
    let text = std::fs::read_to_string(gw(name)).expect("fixture");
    let input = if text.contains("kind: Gateway\n") {
        text
    } else {
        let gateway = std::fs::read_to_string(gw("gateway.yaml")).expect("gateway.yaml");
        format!("{gateway}---\n{text}")
    };
    let mut args = vec!["import", "-"];
    args.extend(extra);
    let run = canaryctl(&args, Some(&input)).expect_code(0);
    canaryctl(&["validate", "-"], Some(&run.stdout)).expect_code(0);
    // The routes themselves are not rules: validate says how to check them.
    let direct = canaryctl(&["validate", "-"], Some(&input)).expect_code(1);
    assert!(
        direct
            .stderr
            .contains("it holds routes: `canaryctl import - | canaryctl validate -`"),
        "{}",
        direct.stderr
    );
    run.json()
}

fn http_listener(name: &str, port: u16, routes: Value, filters: Vec<Value>) -> Value {
    let mut filters = filters;
    filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}));
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": name, "normalize_path": true,
            "route_config": routes, "http_filters": filters
        }}]}]
    })
}

fn cluster(backend: &str) -> String {
    format!("outbound|8080||{backend}.canary.svc.cluster.local")
}

/// The proxy for an imported rule file: the gateway `edge` in `canary`,
/// Envoy's own routes istiod's translation of the rules.
fn proxy(imported: &Value) -> Envoy {
    proxy_as(
        imported,
        "router~127.0.0.1~edge-0.canary~canary.svc.cluster.local",
        "canary",
        true,
    )
}

/// A client sidecar in namespace `ns` (the workload the filter judges
/// `sourceNamespace` against), whose own route for every host answers
/// `503 envoy-route`: what the filter leaves alone is seen as such.
fn sidecar(imported: &Value, ns: &str) -> Envoy {
    proxy_as(
        imported,
        &format!("sidecar~127.0.0.1~client-0.{ns}~{ns}.svc.cluster.local"),
        ns,
        false,
    )
}

/// The proxy for an imported rule file, with this node id and namespace;
/// Envoy's own routes after the glue are istiod's translation of the rules
/// (`native`) or one route answering `503 envoy-route`.
fn proxy_as(imported: &Value, node_id: &str, namespace: &str, native: bool) -> Envoy {
    let rules = json!({
        "routeHeader": "x-canary-upstream",
        "debugHeader": "x-canary-route",
        "namespace": "canary",
        "services": imported["services"],
    })
    .to_string();
    let wasm = json!({"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "canary-router", "root_id": "canary-router",
            "vm_config": {"vm_id": "canary-router", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": FILTER_WASM_RELATIVE}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": rules}
        }
    }});
    let glue = rendered_glue(imported);
    let mut hosts = Vec::new();
    for svc in imported["services"].as_array().expect("services") {
        let http = &svc["http"];
        let rules = http.as_array().expect("rules");
        let host = svc["hosts"][0].as_str().expect("a host");
        let mut routes: Vec<Value> = glue
            .iter()
            .filter(|(vhost, _)| vhost.rsplit_once(':').map(|(h, _)| h) == Some(host))
            .map(|(_, route)| route.clone())
            .collect();
        assert!(!routes.is_empty(), "no glue for {host}: {glue:?}");
        if !native {
            routes.push(json!({"match": {"prefix": "/"},
                "direct_response": {"status": 503, "body": {"inline_string": "envoy-route"}}}));
        }
        let none = json!([]);
        routes.extend(
            native::routes(if native { http } else { &none }, |i, _| {
                let pass = rules[i]["route"][0]["destination"]["cluster"] == PASS;
                if pass {
                    json!({"direct_response": {"status": 500}})
                } else {
                    json!({"direct_response": {"status": 503, "body": {"inline_string": "envoy-route"}}})
                }
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        routes.push(json!({"match": {"prefix": "/"}, "direct_response": {"status": 404}}));
        hosts.push(json!({"name": host, "domains": [host], "routes": routes}));
    }
    if !hosts.iter().any(|h| h["domains"][0] == "*") {
        hosts.push(json!({"name": "other", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}]}));
    }
    let mut listeners = vec![http_listener(
        "gateway",
        LISTENER,
        json!({"name": "gateway", "virtual_hosts": hosts}),
        vec![wasm],
    )];
    let mut clusters = Vec::new();
    for (backend, port) in BACKENDS {
        listeners.push(http_listener(
            backend,
            port,
            json!({"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": backend}},
                "response_headers_to_add": [{"header": {"key": "x-backend", "value": backend}}]}]}]}),
            vec![],
        ));
        let name = cluster(backend);
        clusters.push(json!({
            "name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
        }));
    }
    let doc = json!({
        "node": {"id": node_id, "cluster": format!("proxy.{namespace}"),
                 "metadata": {"NAMESPACE": namespace}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
        "static_resources": {"listeners": listeners, "clusters": clusters}
    });
    let config = EnvoyConfig::from_yaml_str(&doc.to_string(), "gateway-api proxy")
        .unwrap_or_else(|e| panic!("{e}"));
    Envoy::start(config, &EnvoyOptions::default().without_access_logs())
        .unwrap_or_else(|e| panic!("Envoy starts: {e}"))
}

/// The routing glue `canaryctl render --glue` prints for these rules: per
/// virtual host name (`<host>:<port>`), the routes it inserts first. A rule
/// file of mesh rules is rendered for sidecars, any other for a Gateway.
fn rendered_glue(imported: &Value) -> Vec<(String, Value)> {
    let file = TempFile::new("rules.json", &imported.to_string());
    let mesh = imported["services"][0]["hosts"][0]
        .as_str()
        .is_some_and(|h| h.ends_with(".svc.cluster.local"));
    let mut args = vec![
        "render",
        "--image",
        "oci://registry/canary-router:0.1.0",
        "--namespace",
        "canary",
        "--glue",
    ];
    args.extend(if mesh {
        ["--selector", "app=client"]
    } else {
        ["--gateway", "edge"]
    });
    let path = file.path();
    args.push(&path);
    let run = canaryctl(&args, None).expect_code(0);
    let docs: Vec<Value> = {
        use serde::Deserialize;
        serde_yaml_ng::Deserializer::from_str(&run.stdout)
            .map(|d| Value::deserialize(d).expect("YAML"))
            .collect()
    };
    let filter = docs
        .iter()
        .find(|d| d["kind"] == "EnvoyFilter")
        .expect("an EnvoyFilter");
    filter["spec"]["configPatches"]
        .as_array()
        .expect("patches")
        .iter()
        .map(|p| {
            assert_eq!(
                p["match"]["context"],
                if mesh { "SIDECAR_OUTBOUND" } else { "GATEWAY" }
            );
            assert_eq!(p["patch"]["operation"], "INSERT_FIRST");
            let vhost = p["match"]["routeConfiguration"]["vhost"]["name"]
                .as_str()
                .expect("vhost")
                .to_string();
            (vhost, p["patch"]["value"].clone())
        })
        .collect()
}

fn client(envoy: &Envoy) -> HttpClient {
    envoy.client(LISTENER).unwrap_or_else(|e| panic!("{e}"))
}

/// A request: `METHOD path` or `path`, with `name: value` headers.
fn request(host: &str, line: &str, headers: &[(&str, &str)]) -> Request {
    let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
    let mut req = Request::get(path).host(host);
    req.method = method.into();
    for (n, v) in headers {
        req = req.header(n, v);
    }
    req
}

/// What Envoy answered, as an [`Expect`]; a backend must have been chosen
/// by the filter (its debug header present).
fn outcome(c: &mut HttpClient, req: &Request) -> Result<Expect, String> {
    let resp = c.send(req).map_err(|e| e.to_string())?;
    match resp.header("x-backend") {
        Some(b) if resp.header("x-canary-route").is_some() => BACKENDS
            .iter()
            .find(|(name, _)| *name == b)
            .map(|(name, _)| Backend(name))
            .ok_or(format!("unknown backend {b}")),
        Some(b) => Err(format!("{b} answered without the filter's decision")),
        None => Ok(Status(resp.status)),
    }
}

type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Expect,
);

/// The conformance cases, per fixture: (host, `[METHOD ]path`, headers, expected).
fn cases() -> Vec<(&'static str, Vec<Case>)> {
    const H: &str = "gw.example";
    vec![
        (
            "matching.yaml",
            vec![
                (H, "/", &[], Backend("echo-v1")),
                (H, "/example", &[], Backend("echo-v1")),
                (H, "/", &[("Edition", "first")], Backend("echo-v1")),
                (H, "/beta", &[], Backend("echo-v2")),
                (H, "/beta/example", &[], Backend("echo-v2")),
                (H, "/", &[("Edition", "second")], Backend("echo-v2")),
                (H, "/beta/", &[], Backend("echo-v2")),
                // Not a whole path element: the catch-all's.
                (H, "/betaexample", &[], Backend("echo-v1")),
                (H, "/foo/beta/example", &[], Backend("echo-v1")),
                (H, "/beta?x=/", &[], Backend("echo-v2")),
            ],
        ),
        (
            "path-order.yaml",
            vec![
                (H, "/shop/cart/item", &[], Backend("echo-v3")),
                (H, "/shop/cart", &[], Backend("echo-v2")),
                (H, "/shop", &[], Backend("echo-v1")),
                (H, "/shop/orders/new/any", &[], Backend("echo-v2")),
                (H, "/shop/orders/new", &[], Backend("echo-v2")),
                (H, "/shop/orders/newer", &[], Backend("echo-v1")),
                (H, "/shop/orders/any", &[], Backend("echo-v1")),
                (H, "/shop/orders", &[], Backend("echo-v1")),
                (H, "/shop/any", &[], Backend("echo-v3")),
                (H, "/shop/", &[], Backend("echo-v3")),
                (H, "/shopping", &[], Status(404)),
                (H, "/", &[], Status(404)),
            ],
        ),
        (
            "headers.yaml",
            vec![
                (H, "/", &[("Tier", "gold")], Backend("echo-v1")),
                (H, "/", &[("tier", "silver")], Backend("echo-v2")),
                (
                    H,
                    "/",
                    &[("Tier", "silver"), ("Region", "north")],
                    Backend("echo-v1"),
                ),
                (
                    H,
                    "/",
                    &[("Tier", "silver"), ("Region", "east")],
                    Backend("echo-v2"),
                ),
                (H, "/", &[("Region", "north")], Status(404)),
                (H, "/", &[("Some-Other", "gold")], Status(404)),
                (H, "/", &[("Region", "east")], Backend("echo-v1")),
                (H, "/", &[("REGION", "west")], Backend("echo-v1")),
                (H, "/", &[("Region", "south")], Backend("echo-v2")),
                (H, "/", &[("Region", "central")], Backend("echo-v2")),
                (H, "/", &[("Region", "purple")], Status(404)),
                (H, "/", &[("build", "v12")], Backend("echo-v3")),
                (H, "/", &[("build", "v12x")], Status(404)),
            ],
        ),
        (
            "query.yaml",
            vec![
                (H, "/?fruit=apple", &[], Backend("echo-v1")),
                (H, "/?fruit=pear", &[], Backend("echo-v2")),
                (H, "/?fruit=pear&color=green", &[], Backend("echo-v3")),
                (H, "/?FRUIT=Apple", &[], Backend("echo-v3")),
                (H, "/?fruit=apple&other=x", &[], Backend("echo-v1")),
                (H, "/?fruit=pear&color=red", &[], Backend("echo-v2")),
                (H, "/?color=green", &[], Status(404)),
                (H, "/?fruit=dog", &[], Status(404)),
                (H, "/?fruit=applepear", &[], Status(404)),
                (H, "/", &[], Status(404)),
                (H, "/p1?fruit=apple", &[], Backend("echo-v1")),
                (H, "/?fruit=apple", &[("tier", "one")], Backend("echo-v2")),
                (H, "/p2?fruit=apple", &[("tier", "two")], Backend("echo-v3")),
                (H, "/p3?fruit=plum", &[], Backend("echo-v1")),
                (H, "/p4?fruit=fig", &[("tier", "three")], Backend("echo-v1")),
                (H, "/?fruit=plum", &[], Status(404)),
                (H, "/p4?fruit=fig", &[], Status(404)),
                (H, "/p5?fruit=kiwi", &[], Backend("echo-v1")),
                (H, "/?fruit=kiwi", &[("tier", "four")], Backend("echo-v3")),
            ],
        ),
        (
            "method.yaml",
            vec![
                (H, "POST /", &[], Backend("echo-v1")),
                (H, "GET /", &[], Backend("echo-v2")),
                (H, "HEAD /", &[], Status(404)),
                (H, "GET /p1", &[], Backend("echo-v1")),
                (H, "PUT /", &[("tier", "one")], Backend("echo-v2")),
                (H, "POST /p2", &[("tier", "two")], Backend("echo-v3")),
                (H, "PATCH /p3", &[], Backend("echo-v1")),
                (H, "DELETE /p4", &[("tier", "three")], Backend("echo-v1")),
                (H, "PUT /", &[], Status(404)),
                (H, "DELETE /p4", &[], Status(404)),
                (H, "PATCH /p5", &[], Backend("echo-v1")),
                (H, "PATCH /", &[("tier", "four")], Backend("echo-v2")),
            ],
        ),
        (
            "exact.yaml",
            vec![
                (H, "/one", &[], Backend("echo-v1")),
                (H, "/two", &[], Backend("echo-v2")),
                (H, "/", &[], Status(404)),
                (H, "/one/example", &[], Status(404)),
                (H, "/two/", &[], Status(404)),
                (H, "/Two", &[], Status(404)),
            ],
        ),
        (
            "across-routes.yaml",
            vec![
                ("a.example.com", "/", &[], Backend("echo-v1")),
                ("a.example.com", "/example", &[], Backend("echo-v1")),
                ("b.example.com", "/example", &[], Backend("echo-v1")),
                (
                    "a.example.com",
                    "/example",
                    &[("Edition", "first")],
                    Backend("echo-v1"),
                ),
                ("a.example.com", "/beta", &[], Backend("echo-v2")),
                ("b.example.com", "/beta", &[], Backend("echo-v1")),
                ("a.example.com", "/beta/example", &[], Backend("echo-v2")),
                (
                    "a.example.com",
                    "/",
                    &[("Edition", "second")],
                    Backend("echo-v2"),
                ),
                // The listener does not accept it.
                ("other.net", "/", &[], Status(404)),
            ],
        ),
        (
            "no-backend.yaml",
            vec![
                (H, "/", &[], Backend("echo-v1")),
                (H, "/closed", &[], Status(500)),
                (H, "/closed/x", &[], Status(500)),
                (H, "/closedx", &[], Backend("echo-v1")),
                (H, "/gone", &[], Status(500)),
                (H, "/gone/x", &[], Backend("echo-v1")),
            ],
        ),
    ]
}

#[test]
fn conformance_cases_route_as_gateway_api_says_in_envoy() {
    let mut wrong = Vec::new();
    let mut sent = 0;
    for (file, cases) in cases() {
        let imported = import(file, &[]);
        let envoy = proxy(&imported);
        let mut c = client(&envoy);
        for (host, line, headers, expect) in cases {
            let got = outcome(&mut c, &request(host, line, headers));
            sent += 1;
            if got != Ok(expect) {
                wrong.push(format!(
                    "{file}: {host} {line} {headers:?}: expected {expect:?}, got {got:?}"
                ));
            }
        }
        let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stats.get("http.gateway.downstream_rq_503"),
            0,
            "{file}: a request fell to Envoy's route"
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {sent} cases differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn weights_are_relative_and_a_zero_weight_gets_nothing() {
    let imported = import("weights.yaml", &[]);
    let envoy = proxy(&imported);
    let mut c = client(&envoy);
    let n = 1000;
    let split = count_split(
        &mut c,
        n,
        &request("gw.example", "/", &[]),
        &SplitKey::Header("x-backend".into()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(split.count("echo-v3"), 0, "{split}");
    assert_eq!(
        split.count("echo-v1") + split.count("echo-v2"),
        n as u64,
        "{split}"
    );
    check_binomial(n as u64, 0.3, split.count("echo-v2")).unwrap_or_else(|e| panic!("{e}"));
}

/// The canary header's rule sends `always` requests for `host` to echo-v2,
/// and 600 requests for `path` without it split 90/10 between echo-v1 and
/// echo-v2 (binomial bounds).
fn header_rule_wins_then_90_10(envoy: &Envoy, host: &str, always: usize, path: &str) {
    let mut c = client(envoy);
    let key = SplitKey::Header("x-backend".into());
    let canary = request(host, "/", &[("x-canary", "always")]);
    let seen = count_split(&mut c, always, &canary, &key).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen.count("echo-v2"), always as u64, "{host}: {seen}");
    let n = 600;
    let split =
        count_split(&mut c, n, &request(host, path, &[]), &key).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        split.count("echo-v1") + split.count("echo-v2"),
        n as u64,
        "{host}: {split}"
    );
    check_binomial(n as u64, 0.1, split.count("echo-v2")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_mesh_route_splits_lets_its_header_rule_win_and_takes_sticky_from_a_flag_or_an_overlay() {
    let host = "echo.canary.svc.cluster.local";
    let imported = import("mesh.yaml", &[]);
    assert_eq!(imported["services"][0]["hosts"], json!([host]));
    let envoy = proxy(&imported);
    header_rule_wins_then_90_10(&envoy, host, 50, "/any");
    drop(envoy);
    let key = SplitKey::Header("x-backend".into());

    // What HTTPRoute lacks: one user, one version.
    let sticky = import("mesh.yaml", &["--sticky", "header=x-user"]);
    let envoy = proxy(&sticky);
    let mut c = client(&envoy);
    let users = 200;
    let mut on_v2 = 0;
    for u in 0..users {
        let user = format!("user-{u}");
        let req = request(host, "/", &[("x-user", &user)]);
        let seen = count_split(&mut c, 4, &req, &key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen.counts.len(), 1, "{user} saw {seen}");
        on_v2 += seen.count("echo-v2") / 4;
    }
    check_binomial(users, 0.1, on_v2).unwrap_or_else(|e| panic!("{e}"));
    drop(envoy);

    // The overlay's sticky cookie, issued by the filter: a user without one
    // gets it, and keeps its version with it (the canary's guard, from the
    // same overlay, sees no failure and keeps its share).
    let run = canaryctl(
        &["import", &gw("mesh.yaml"), "--overlay", &gw("overlay.yaml")],
        None,
    )
    .expect_code(0);
    let envoy = proxy(&run.json());
    let mut c = client(&envoy);
    let mut on_v2 = 0;
    for _ in 0..users {
        let first = c
            .send(&request(host, "/", &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        let cookie = first
            .header("set-cookie")
            .and_then(|v| v.split(';').next().map(str::to_string))
            .unwrap_or_else(|| panic!("no Set-Cookie: {first:?}"));
        assert!(cookie.starts_with("session="), "{cookie}");
        let version = first.header("x-backend").expect("a backend");
        let req = request(host, "/", &[("cookie", &cookie)]);
        let seen = count_split(&mut c, 3, &req, &key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen.count(&version),
            3,
            "{cookie}: first {version}, then {seen}"
        );
        on_v2 += u64::from(version == "echo-v2");
    }
    check_binomial(users, 0.1, on_v2).unwrap_or_else(|e| panic!("{e}"));
}

/// A consumer route (`MeshConsumerRoute`): an HTTPRoute in namespace
/// `consumer` whose parent is the Service `echo` of namespace `canary`
/// applies to the client sidecars of `consumer` only, and for them takes
/// the place of the producer route of `canary`, as Istio applies them. Each
/// request goes to a sidecar of one namespace; Envoy's own route answers
/// `503 envoy-route` for what the filter leaves alone.
#[test]
fn a_consumer_route_applies_to_its_namespaces_clients_only() {
    let host = "echo.canary.svc.cluster.local";
    let imported = import("consumer.yaml", &[]);
    assert_eq!(imported["services"][0]["hosts"], json!([host]));
    let envoy_route = Status(503);
    // (the client's namespace, `[METHOD ]path`, headers, expected)
    let cases: [Case; 12] = [
        // The consumer's clients: its route, and for what it does not
        // match Envoy's own route (istiod's is the consumer route's: no
        // producer rule applies to them).
        ("consumer", "/shop", &[], Backend("echo-v2")),
        (
            "consumer",
            "/shop/cart",
            &[("x-canary", "always")],
            Backend("echo-v2"),
        ),
        ("consumer", "/", &[], envoy_route),
        ("consumer", "/other", &[("x-canary", "always")], envoy_route),
        // The producer's own clients: the producer route, never the consumer's.
        ("canary", "/shop", &[], Backend("echo-v1")),
        (
            "canary",
            "/shop/cart",
            &[("x-canary", "always")],
            Backend("echo-v3"),
        ),
        ("canary", "/", &[], Backend("echo-v1")),
        (
            "canary",
            "/other",
            &[("x-canary", "always")],
            Backend("echo-v3"),
        ),
        // Any other namespace: the same as the producer's.
        ("elsewhere", "/shop", &[], Backend("echo-v1")),
        (
            "elsewhere",
            "/shop/cart",
            &[("x-canary", "always")],
            Backend("echo-v3"),
        ),
        ("elsewhere", "/", &[], Backend("echo-v1")),
        (
            "elsewhere",
            "/other",
            &[("x-canary", "always")],
            Backend("echo-v3"),
        ),
    ];
    let mut wrong = Vec::new();
    for ns in ["consumer", "canary", "elsewhere"] {
        let envoy = sidecar(&imported, ns);
        let mut c = client(&envoy);
        for (_, line, headers, expect) in cases.iter().filter(|c| c.0 == ns) {
            let got = outcome(&mut c, &request(host, line, headers));
            if got != Ok(*expect) {
                wrong.push(format!(
                    "a client in {ns}: {line} {headers:?}: expected {expect:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The consumer route alone: the producer's clients are left to Envoy's
    // own route, the consumer's routed.
    let text = std::fs::read_to_string(gw("consumer.yaml")).expect("fixture");
    let alone = text.split("\n---\n").next().expect("the consumer route");
    let run = canaryctl(&["import", "-"], Some(alone)).expect_code(0);
    assert!(
        run.stderr
            .contains("a consumer route (the Service is in namespace canary)"),
        "{}",
        run.stderr
    );
    let only = run.json();
    for (ns, expect) in [
        ("consumer", Backend("echo-v2")),
        ("canary", envoy_route),
        ("elsewhere", envoy_route),
    ] {
        let envoy = sidecar(&only, ns);
        let got = outcome(&mut client(&envoy), &request(host, "/shop", &[]));
        assert_eq!(
            got,
            Ok(expect),
            "the consumer route alone, a client in {ns}"
        );
    }
}

/// The warnings of a run, one per line, without the `warning: ` prefix.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect()
}

#[test]
fn what_is_not_carried_is_named_by_path_and_left_to_envoy() {
    let file = gw("dropped.yaml");
    let run = canaryctl(&["import", &file], None).expect_code(0);
    let w = warnings(&run.stderr);
    for (path, says) in [
        (
            "spec.rules[0].filters[0]",
            "RequestRedirect: a redirect is answered by Envoy's own route",
        ),
        (
            "spec.rules[1].matches[0].headers[1]",
            "a second header named `X-A`: Gateway API considers only the first",
        ),
        ("spec.rules[2].backendRefs[0]", "not a Service"),
        (
            "spec.rules[3].sessionPersistence",
            "not carried over as such: give the rule canary-router's `sticky`",
        ),
    ] {
        assert!(
            w.iter().any(|l| l.contains(&format!("): {path}: {says}"))),
            "no warning for {path}:\n{}",
            run.stderr
        );
    }
    assert_eq!(w.len(), 4, "{}", run.stderr);
    canaryctl(&["import", "--strict", &file], None).expect_code(1);
    let out = run.json();
    let svc = &out["services"][0];
    assert_eq!(svc["hosts"], json!(["echo.canary.svc.cluster.local"]));
    assert_eq!(svc["defaultDestination"], json!({"cluster": PASS}));
    let names: Vec<&str> = svc["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // Longest prefix first; of the two 4-byte prefixes, the one with a header.
    assert_eq!(names, ["bucket", "api", "legacy", "session"]);
    for rule in svc["http"].as_array().unwrap() {
        assert_eq!(
            rule["match"][0]["port"], 8080,
            "the Service parent's port: {rule}"
        );
    }
    for pass in [0, 2] {
        assert_eq!(
            svc["http"][pass]["route"],
            json!([{"destination": {"cluster": PASS}}])
        );
    }
    assert_eq!(
        svc["http"][1]["match"][0]["headers"],
        json!({"x-a": {"exact": "1"}}),
        "the first of two equal names"
    );
    // The filters, timeouts and retry are carried as istiod converts them
    // (the routing glue applies them): no warning for any of them.
    let api = &svc["http"][1];
    assert_eq!(
        api["headers"],
        json!({"request": {"add": {"x-via": "canary"}}})
    );
    assert_eq!(
        api["rewrite"],
        json!({"uriRegexRewrite": {"match": "^/api(/?)(.*)", "rewrite": "/\\2"}}),
        "ReplacePrefixMatch `/`: istiod's regex removing the match's prefix"
    );
    assert_eq!(
        api["mirrors"],
        json!([{"destination": {"host": "echo-v3.canary.svc.cluster.local", "port": {"number": 8080}}}])
    );
    assert_eq!(api["timeout"], "10s");
    assert_eq!(
        api["retries"],
        json!({"attempts": 2, "retryOn": "connect-failure,refused-stream,unavailable,cancelled"})
    );
}

#[test]
fn an_overlay_adds_any_rule_field_and_the_filter_judges_it() {
    let run = canaryctl(
        &["import", &gw("mesh.yaml"), "--overlay", &gw("overlay.yaml")],
        None,
    )
    .expect_code(0);
    let out = run.json();
    let http = &out["services"][0]["http"];
    assert_eq!(http[1]["name"], "canary.echo-canary.0");
    assert_eq!(
        http[1]["sticky"],
        json!({"cookie": "session", "setCookie": {"path": "/", "maxAge": 86400}})
    );
    assert!(http[0].get("sticky").is_none());
    // `route` as an object: the destination named by host gets the guard,
    // the other keeps what it had.
    assert_eq!(
        http[1]["route"][1]["guard"],
        json!({"maxErrorRate": 0.5, "minRequests": 20, "interval": "30s"})
    );
    assert_eq!(http[1]["route"][1]["weight"], 10);
    assert!(http[1]["route"][0].get("guard").is_none());
    canaryctl(&["validate", "-"], Some(&run.stdout)).expect_code(0);
    // A name that matches nothing is an error, not a silent no-op; a field
    // the filter does not know is judged by the filter, with its path.
    let typo = common::TempFile::new(
        "typo.yaml",
        "rules:\n  canary.echo-canary.9: {sticky: {cookie: s}}\n",
    );
    let run = canaryctl(
        &["import", &gw("mesh.yaml"), "--overlay", &typo.path()],
        None,
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains("rules.canary.echo-canary.9: no imported rule"),
        "{}",
        run.stderr
    );
    let unknown =
        common::TempFile::new("unknown.yaml", "rules:\n  \"*\": {stickyy: {cookie: s}}\n");
    let run = canaryctl(
        &["import", &gw("mesh.yaml"), "--overlay", &unknown.path()],
        None,
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[0].stickyy: unknown field `stickyy`"),
        "{}",
        run.stderr
    );
}

#[test]
fn both_parent_kinds_and_virtualservices_share_one_stream_imported_per_proxy() {
    let stream = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: canary}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: canary}
spec: {host: reviews}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: canary}
spec:
  gatewayClassName: istio
  listeners:
  - {name: shop, port: 80, protocol: HTTP, hostname: shop.example.com}
  - {name: other, port: 8000, protocol: HTTP, hostname: other.example.com}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: echo, namespace: canary}
spec:
  parentRefs:
  - {name: edge, sectionName: shop}
  - {group: "", kind: Service, name: echo, port: 8080}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 8080, weight: 9}
    - {name: echo-v2, port: 8080, weight: 1}
"#;
    // Routes for the mesh and for a Gateway: one stream, two rule sets.
    let both = canaryctl(&["import", "-"], Some(stream)).expect_code(1);
    assert!(
        both.stderr
            .contains("the routes are for Gateway canary/edge and the mesh"),
        "{}",
        both.stderr
    );
    let hosts = |out: &Value| -> Vec<Value> {
        out["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["hosts"].clone())
            .collect()
    };
    let mesh = canaryctl(&["import", "-", "--for", "mesh"], Some(stream)).expect_code(0);
    let edge = canaryctl(
        &["import", "-", "--for", "gateway=canary/edge"],
        Some(stream),
    )
    .expect_code(0);
    for run in [&mesh, &edge] {
        assert!(warnings(&run.stderr).is_empty(), "{}", run.stderr);
        assert!(
            run.stderr.contains(
                "DestinationRule reviews (networking.istio.io/v1) is not a VirtualService; skipped"
            ) && !run.stderr.contains("Gateway edge ("),
            "{}",
            run.stderr
        );
        canaryctl(&["validate", "-"], Some(&run.stdout)).expect_code(0);
    }
    // The mesh: the VirtualService, then the Service's host.
    let mesh = mesh.json();
    assert_eq!(
        hosts(&mesh),
        [
            json!(["reviews.canary.svc.cluster.local"]),
            json!(["echo.canary.svc.cluster.local"])
        ]
    );
    // The Gateway: its chosen listener's hostname.
    let edge = edge.json();
    assert_eq!(hosts(&edge), [json!(["shop.example.com"])]);
    let gateway_rule = &edge["services"][0]["http"][0];
    let mesh_rule = &mesh["services"][1]["http"][0];
    assert!(
        gateway_rule["match"][0].get("port").is_none(),
        "{gateway_rule}"
    );
    assert_eq!(mesh_rule["match"][0]["port"], 8080, "{mesh_rule}");
    for rule in [gateway_rule, mesh_rule] {
        assert_eq!(
            rule["route"][0]["destination"]["host"],
            "echo-v1.canary.svc.cluster.local"
        );
        assert_eq!(rule["route"][1]["weight"], 1);
    }
}

#[test]
fn ties_go_to_the_oldest_route_then_namespace_and_name_and_regex_paths_rank_last() {
    let route = |name: &str, created: Option<&str>, backend: &str, path: &str| {
        let meta = match created {
            Some(t) => format!("{{name: {name}, namespace: canary, creationTimestamp: \"{t}\"}}"),
            None => format!("{{name: {name}, namespace: canary}}"),
        };
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {meta}\nspec:\n  \
             parentRefs: [{{name: edge}}]\n  hostnames: [t.example.com]\n  rules:\n  - matches:\n    \
             - path: {path}\n    backendRefs: [{{name: {backend}, port: 8080}}]\n"
        )
    };
    let order = |docs: &[String]| -> Vec<String> {
        let run = canaryctl(&["import", "-"], Some(&docs.join("---\n"))).expect_code(0);
        let out = run.json();
        out["services"][0]["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["route"][0]["destination"]["host"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let prefix = "{type: PathPrefix, value: /a}";
    // The same match in three routes: the oldest first, whatever the input order.
    let timed = [
        route("zz", Some("2024-03-01T00:00:00Z"), "echo-v1", prefix),
        route("yy", Some("2024-01-01T00:00:00Z"), "echo-v2", prefix),
        route("xx", Some("2024-02-01T00:00:00Z"), "echo-v3", prefix),
    ];
    assert_eq!(order(&timed), ["echo-v2", "echo-v3", "echo-v1"]);
    // Without timestamps: namespace/name.
    let named = [
        route("b", None, "echo-v1", prefix),
        route("c", None, "echo-v2", prefix),
        route("a", None, "echo-v3", prefix),
    ];
    assert_eq!(order(&named), ["echo-v3", "echo-v1", "echo-v2"]);
    // A regex path ranks after every prefix, even `/` (as istiod ranks it).
    let regex = [
        route(
            "a",
            None,
            "echo-v1",
            "{type: RegularExpression, value: \"/a.*\"}",
        ),
        route("b", None, "echo-v2", "{type: PathPrefix, value: /}"),
        route("c", None, "echo-v3", "{type: Exact, value: /a}"),
    ];
    assert_eq!(order(&regex), ["echo-v3", "echo-v2", "echo-v1"]);
}

/// Istio applies a Service parent's routes in the sidecars and a Gateway's
/// in that Gateway's proxies, but a rule set applies wherever its
/// WasmPlugin runs: an input with routes for both is refused, and `--for`
/// imports the routes of one.
#[test]
fn routes_for_the_mesh_and_for_a_gateway_are_imported_apart() {
    let read = |name: &str| std::fs::read_to_string(gw(name)).expect("fixture");
    let input = format!(
        "{}---\n{}---\n{}",
        read("gateway.yaml"),
        read("exact.yaml"),
        read("mesh.yaml")
    );
    let hosts = |out: &Value| -> Vec<String> {
        out["services"]
            .as_array()
            .expect("services")
            .iter()
            .flat_map(|s| s["hosts"].as_array().expect("hosts").clone())
            .map(|h| h.as_str().expect("host").to_string())
            .collect()
    };

    let both = canaryctl(&["import", "-"], Some(&input)).expect_code(1);
    assert!(
        both.stderr
            .contains("the routes are for Gateway canary/edge and the mesh")
            && both.stderr.contains("--for mesh or --for gateway="),
        "{}",
        both.stderr
    );
    assert!(both.stdout.is_empty(), "{}", both.stdout);

    let mesh = canaryctl(&["import", "-", "--for", "mesh"], Some(&input)).expect_code(0);
    assert_eq!(hosts(&mesh.json()), ["echo.canary.svc.cluster.local"]);
    assert!(
        mesh.stderr.contains(
            "HTTPRoute canary/pages (<stdin>, document 2): spec.parentRefs[0]: its rules are for \
             Gateway canary/edge, not for the mesh; parent skipped (--for)"
        ),
        "{}",
        mesh.stderr
    );
    // Left out by choice: a note, not a warning that --strict refuses.
    canaryctl(&["import", "-", "--for", "mesh", "--strict"], Some(&input)).expect_code(0);

    for target in ["gateway=canary/edge", "gateway=edge"] {
        let edge = canaryctl(
            &["import", "-", "--for", target, "--namespace", "canary"],
            Some(&input),
        )
        .expect_code(0);
        assert_eq!(hosts(&edge.json()), ["*"], "--for {target}");
        assert!(
            edge.stderr.contains(
                "HTTPRoute canary/echo-canary (<stdin>, document 3): spec.parentRefs[0]: a Service \
                 parent: its rules are for the mesh (sidecars), not for Gateway canary/edge"
            ),
            "{}",
            edge.stderr
        );
    }
    let other = canaryctl(
        &["import", "-", "--for", "gateway=canary/other"],
        Some(&input),
    )
    .expect_code(1);
    assert!(
        other
            .stderr
            .contains("no VirtualService or HTTPRoute could be imported"),
        "{}",
        other.stderr
    );

    // A VirtualService bound to the mesh is for the sidecars too.
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: canary}\n\
              spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1, port: {number: 9080}}\n";
    let with_vs = format!(
        "{}---\n{}---\n{vs}",
        read("gateway.yaml"),
        read("exact.yaml")
    );
    let both = canaryctl(&["import", "-"], Some(&with_vs)).expect_code(1);
    assert!(
        both.stderr
            .contains("the routes are for Gateway canary/edge and the mesh"),
        "{}",
        both.stderr
    );
    let edge = canaryctl(
        &["import", "-", "--for", "gateway=canary/edge"],
        Some(&with_vs),
    )
    .expect_code(0);
    assert_eq!(hosts(&edge.json()), ["*"]);
    assert!(
        edge.stderr.contains(
            "VirtualService canary/reviews (<stdin>, document 3): spec.gateways: bound to the mesh \
             (sidecars), not to Gateway canary/edge; skipped (--for)"
        ),
        "{}",
        edge.stderr
    );
    let mesh = canaryctl(&["import", "-", "--for", "mesh"], Some(&with_vs)).expect_code(0);
    assert_eq!(hosts(&mesh.json()), ["reviews.canary.svc.cluster.local"]);

    let bad = canaryctl(&["import", "-", "--for", "sidecars"], Some(&input)).expect_code(2);
    assert!(
        bad.stderr
            .contains("\"sidecars\": expected `mesh` or `gateway=[NAMESPACE/]NAME`"),
        "{}",
        bad.stderr
    );
}

/// A ServiceEntry parent (GAMMA on a ServiceEntry's hosts, as istiod's
/// `serviceEntryHosts` takes them): mesh rules for each host of the
/// ServiceEntry, routed by the filter in a real Envoy as a Service
/// parent's are; a parent's `port` becomes each match's port.
#[test]
fn a_serviceentry_parent_gives_mesh_rules_for_its_hosts() {
    let entry = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
                 metadata: {name: api, namespace: canary}\n\
                 spec:\n  hosts: [api.example.org, api.example.net]\n  \
                 ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n";
    let route = |parent: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: api-canary, namespace: canary}}\n\
             spec:\n  parentRefs:\n  - {parent}\n  rules:\n  \
             - backendRefs:\n    - {{name: echo-v1, port: 8080, weight: 90}}\n    \
             - {{name: echo-v2, port: 8080, weight: 10}}\n  \
             - matches:\n    - headers:\n      - {{name: x-canary, value: always}}\n    \
             backendRefs:\n    - {{name: echo-v2, port: 8080}}\n"
        )
    };
    let parent = "{group: networking.istio.io, kind: ServiceEntry, name: api}";
    let input = format!("{entry}---\n{}", route(parent));
    let run = canaryctl(&["import", "-"], Some(&input)).expect_code(0);
    assert!(warnings(&run.stderr).is_empty(), "{}", run.stderr);
    let imported = run.json();
    let hosts: Vec<&Value> = imported["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| &s["hosts"])
        .collect();
    assert_eq!(
        hosts,
        [&json!(["api.example.org"]), &json!(["api.example.net"])]
    );
    let envoy = proxy(&imported);
    header_rule_wins_then_90_10(&envoy, "api.example.org", 30, "/");
    header_rule_wins_then_90_10(&envoy, "api.example.net", 30, "/");
    drop(envoy);

    // The parent's port, as `augmentPortMatch` writes it; a mesh route.
    let with_port = format!(
        "{entry}---\n{}",
        route("{group: networking.istio.io, kind: ServiceEntry, name: api, port: 80}")
    );
    let out = canaryctl(&["import", "-"], Some(&with_port))
        .expect_code(0)
        .json();
    for rule in out["services"][0]["http"].as_array().expect("rules") {
        assert_eq!(rule["match"][0]["port"], 80, "{rule}");
    }
    canaryctl(
        &["import", "-", "--for", "gateway=canary/edge"],
        Some(&with_port),
    )
    .expect_code(1);

    // Without the ServiceEntry, its hosts are unknown: named, and skipped.
    let alone = canaryctl(&["import", "-"], Some(&route(parent))).expect_code(1);
    assert!(
        alone.stderr.contains(
            "spec.parentRefs[0]: ServiceEntry canary/api is not in the input, so its hosts are not known; parent skipped"
        ),
        "{}",
        alone.stderr
    );
}
