//! A routed request keeps what Istio gave it. The VirtualServices of
//! `fixtures/route-policies/` go, in one real Envoy, through istiod's own
//! routes (`envoy_runner::native` and `route_policy`: the oracle's
//! translation, with the mesh defaults and the route policies as istiod
//! builds them) on one listener, and through canary-router with the glue
//! `canaryctl render --glue` prints for `canaryctl import`'s rules on
//! another, whose own default routes carry nothing. The same requests get
//! the same outcome on both: a 20 s answer completes, Istio's default
//! retries hide a dead endpoint, a 1 s timeout cuts a 3 s answer, `retries`
//! hide a flaky endpoint (and only for the rule that has them), header
//! operations, a URI rewrite per match entry, CORS, a 50 % mirror and a
//! fault abort.
//!
//! Both listeners run istiod's HTTP filters after the point where a
//! WasmPlugin of phase UNSPECIFIED_PHASE sits: fault, CORS, router. The
//! backends are listeners of the same Envoy that delay (the fault filter),
//! fail (503) or echo what they received.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{canaryctl, fixture, TempFile};
use envoy_runner::{
    check_binomial, route_policy, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request, Response,
    FILTER_WASM_RELATIVE,
};
use serde::Deserialize;
use serde_json::{json, Value};

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const CORS: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors";
const CANARY: u16 = 10000;
const NATIVE: u16 = 10980;
const ROUTE_HEADER: &str = "x-canary-upstream";
const DEBUG_HEADER: &str = "x-canary-route";
const SERVICES: [&str; 8] = [
    "slow", "churn", "limited", "flaky", "echo", "shadowed", "broken", "gwecho",
];

fn fqdn(service: &str) -> String {
    format!("{service}.default.svc.cluster.local")
}

fn cluster(service: &str, subset: &str) -> String {
    format!("outbound|80|{subset}|{}", fqdn(service))
}

fn http_filter(name: &str, ty: &str, config: Value) -> Value {
    let mut typed = json!({ "@type": ty });
    if let (Some(t), Some(c)) = (typed.as_object_mut(), config.as_object()) {
        t.extend(c.clone());
    }
    json!({ "name": name, "typed_config": typed })
}

/// istiod's HTTP filters after the WasmPlugin's place (UNSPECIFIED_PHASE):
/// fault and CORS, which read the selected route's config, then the router.
fn istiod_filters() -> Vec<Value> {
    vec![
        http_filter("envoy.filters.http.fault", FAULT, json!({})),
        http_filter("envoy.filters.http.cors", CORS, json!({})),
        http_filter("envoy.filters.http.router", ROUTER, json!({})),
    ]
}

fn listener(name: &str, port: u16, virtual_hosts: Value, filters: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
            "typed_config": {"@type": HCM, "stat_prefix": name,
                "route_config": {"name": "80", "virtual_hosts": virtual_hosts},
                "http_filters": filters}}]}]
    })
}

/// A backend: answers `status`, after `delay` if any, echoing what it
/// received (path, authority, x-a, x-b) in response headers.
fn backend(name: &str, port: u16, status: u16, delay: Option<&str>) -> Value {
    let echo = |k: &str, v: &str| json!({"header": {"key": k, "value": v}});
    let routes = json!([{
        "match": {"prefix": "/"},
        "direct_response": {"status": status, "body": {"inline_string": name}},
        "response_headers_to_add": [
            echo("x-backend", name),
            echo("x-path", "%REQ(:PATH)%"),
            echo("x-authority", "%REQ(:AUTHORITY)%"),
            echo("x-seen-a", "%REQ(x-a)%"),
            echo("x-seen-b", "%REQ(x-b)%"),
        ]
    }]);
    let mut filters = Vec::new();
    if let Some(d) = delay {
        filters.push(http_filter(
            "envoy.filters.http.fault",
            FAULT,
            json!({"delay": {"fixed_delay": d, "percentage": {"numerator": 100}}}),
        ));
    }
    filters.push(http_filter("envoy.filters.http.router", ROUTER, json!({})));
    listener(
        name,
        port,
        json!([{"name": name, "domains": ["*"], "routes": routes}]),
        filters,
    )
}

fn endpoints(ports: &[u16]) -> Value {
    let eps: Vec<Value> = ports
        .iter()
        .map(|p| json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}))
        .collect();
    json!([{ "lb_endpoints": eps }])
}

fn static_cluster(name: &str, ports: &[u16], lb: &str) -> Value {
    json!({"name": name, "type": "STATIC", "connect_timeout": "1s", "lb_policy": lb,
           "load_assignment": {"cluster_name": name, "endpoints": endpoints(ports)}})
}

/// Backend ports as written (remapped by the runner); 10299 is never bound.
const ECHO: u16 = 10201;
const SLOW20: u16 = 10202;
const SLOW3: u16 = 10203;
const FAILING: u16 = 10204;
const SHADOW: u16 = 10205;
const GW_SHADOW: u16 = 10206;
const DEAD: u16 = 10299;

fn clusters() -> Vec<Value> {
    vec![
        static_cluster(&cluster("slow", "v1"), &[SLOW20], "ROUND_ROBIN"),
        static_cluster(&cluster("churn", "v1"), &[DEAD, ECHO], "ROUND_ROBIN"),
        static_cluster(&cluster("limited", "v1"), &[SLOW3], "ROUND_ROBIN"),
        // Random: the two listeners share the cluster, and round robin
        // would hand them the endpoints in turn.
        static_cluster(&cluster("flaky", "v1"), &[FAILING, ECHO], "RANDOM"),
        static_cluster(&cluster("echo", "v1"), &[ECHO], "ROUND_ROBIN"),
        static_cluster(&cluster("shadowed", "v1"), &[ECHO], "ROUND_ROBIN"),
        static_cluster(&cluster("mirror", "shadow"), &[SHADOW], "ROUND_ROBIN"),
        static_cluster(&cluster("broken", "v1"), &[ECHO], "ROUND_ROBIN"),
        static_cluster(&cluster("gwecho-v1", ""), &[ECHO], "ROUND_ROBIN"),
        static_cluster(&cluster("gwslow", ""), &[SLOW3], "ROUND_ROBIN"),
        static_cluster(&cluster("gwshadow", ""), &[GW_SHADOW], "ROUND_ROBIN"),
    ]
}

fn domains(service: &str) -> Vec<String> {
    let f = fqdn(service);
    vec![
        service.to_string(),
        format!("{service}:80"),
        format!("{service}.default"),
        format!("{service}.default.svc"),
        f.clone(),
        format!("{f}:80"),
    ]
}

/// The VirtualServices of the fixture.
fn virtual_services() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("route-policies/virtualservices.yaml")).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .collect()
}

/// A Destination's cluster as istiod names it (the fixture's hosts are
/// short names of namespace `default`, each with its port).
fn istio_cluster(d: &Value) -> String {
    let host = d["host"].as_str().unwrap_or_default();
    let port = d["port"]["number"].as_u64().unwrap_or(80);
    let subset = d["subset"].as_str().unwrap_or_default();
    format!("outbound|{port}|{subset}|{}", fqdn(host))
}

/// The VirtualService istiod converts `httproute.yaml` to
/// (`convertHTTPRoute` in pilot/pkg/config/kube/gateway/conversion.go),
/// written out: one http entry per HTTPRoute rule, in Gateway API's
/// precedence (the longest path prefix first), `PathPrefix` as an
/// element-wise prefix with its trailing `/` cut (`path_separated_prefix`);
/// `ReplacePrefixMatch: /v2` a `uri` rewrite, `ReplacePrefixMatch: /` the
/// regex istiod writes to remove the match's prefix (`^<prefix>(/?)(.*)` to
/// `/\2`), `ReplaceFullPath` the regex `/.*`; the header modifiers as
/// `headers`, the mirror as `mirrors` with its percent, `timeouts.request`
/// as `timeout`. Backends are Services without subsets.
fn istiod_httproute() -> Value {
    let to = |svc: &str| json!([{"destination": {"host": svc, "port": {"number": 80}}}]);
    let header = |v: &str| json!([{"headers": {"x-case": {"exact": v}}}]);
    json!({
        "metadata": {"name": "filtered"},
        "spec": {"hosts": ["gwecho"], "http": [
            {"name": "strip", "match": [{"uri": {"pathPrefix": "/strip"}}],
             "rewrite": {"uriRegexRewrite": {"match": "^/strip(/?)(.*)", "rewrite": "/\\2"}},
             "route": to("gwecho-v1")},
            {"name": "full", "match": [{"uri": {"pathPrefix": "/full"}}],
             "rewrite": {"uriRegexRewrite": {"match": "/.*", "rewrite": "/replaced"}},
             "route": to("gwecho-v1")},
            {"name": "rewrite", "match": [{"uri": {"pathPrefix": "/api"}}],
             "rewrite": {"uri": "/v2"}, "route": to("gwecho-v1")},
            {"name": "headers", "match": header("headers"),
             "headers": {"request": {"set": {"x-a": "gw"}, "remove": ["x-b"]}, "response": {"add": {"x-r": "gw"}}},
             "route": to("gwecho-v1")},
            {"name": "mirrored", "match": header("mirror"),
             "mirrors": [{"destination": {"host": "gwshadow", "port": {"number": 80}}, "percentage": {"value": 50}}],
             "route": to("gwecho-v1")},
            {"name": "timed", "match": header("timeout"), "timeout": "1s", "route": to("gwslow")}
        ]}
    })
}

/// istiod's virtual hosts for the VirtualServices, translated from the
/// manifests themselves (not from what `import` made of them).
fn native_hosts() -> Value {
    let mut routes = virtual_services();
    routes.push(istiod_httproute());
    let hosts: Vec<Value> = routes
        .iter()
        .map(|vs| {
            let name = vs["metadata"]["name"].as_str().unwrap();
            let service = vs["spec"]["hosts"][0].as_str().unwrap();
            let routes = route_policy::routes(&vs["spec"]["http"], name, 80, &istio_cluster)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            json!({"name": format!("{}:80", fqdn(service)), "domains": domains(service), "routes": routes})
        })
        .collect();
    Value::Array(hosts)
}

/// `canaryctl import` then `canaryctl render --glue --port 80`: the rules
/// and, per virtual host, the glue routes in the order Istio leaves them
/// (each patch INSERT_FIRST, in turn).
fn imported_and_rendered() -> (Value, BTreeMap<String, Vec<Value>>) {
    let read = |f: &str| std::fs::read_to_string(fixture(&format!("route-policies/{f}"))).unwrap();
    let both = format!(
        "{}---\n{}",
        read("virtualservices.yaml"),
        read("httproute.yaml")
    );
    let run = canaryctl(&["import", "-"], Some(&both)).expect_code(0);
    assert!(
        !run.stderr.contains("warning:"),
        "the policies are carried, nothing is dropped:\n{}",
        run.stderr
    );
    let rules = run.json();
    let file = TempFile::new("rules.json", &rules.to_string());
    let run = canaryctl(
        &[
            "render",
            "--image",
            "file:///m.wasm",
            "--glue",
            "--port",
            "80",
            &file.path(),
        ],
        None,
    )
    .expect_code(0);
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&run.stdout)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .collect();
    let ef = docs
        .iter()
        .find(|d| d["kind"] == "EnvoyFilter")
        .expect("an EnvoyFilter");
    let mut glue: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in ef["spec"]["configPatches"].as_array().unwrap() {
        assert_eq!(p["patch"]["operation"], "INSERT_FIRST");
        assert_eq!(p["match"]["routeConfiguration"]["portNumber"], 80);
        let vhost = p["match"]["routeConfiguration"]["vhost"]["name"]
            .as_str()
            .unwrap();
        glue.entry(vhost.to_string())
            .or_default()
            .insert(0, p["patch"]["value"].clone());
    }
    (rules, glue)
}

/// canary-router's virtual hosts: the glue, then a default route to v1
/// that carries nothing, so that only the glue can give the policies.
fn canary_hosts(glue: &BTreeMap<String, Vec<Value>>) -> Value {
    let hosts: Vec<Value> = SERVICES
        .iter()
        .map(|s| {
            let name = format!("{}:80", fqdn(s));
            let mut routes = glue.get(&name).cloned().unwrap_or_default();
            let default = match *s {
                "gwecho" => cluster("gwecho-v1", ""),
                s => cluster(s, "v1"),
            };
            routes.push(
                json!({"name": "default", "match": {"prefix": "/"}, "route": {"cluster": default}}),
            );
            json!({"name": name, "domains": domains(s), "routes": routes})
        })
        .collect();
    Value::Array(hosts)
}

fn wasm_filter(rules: &Value) -> Value {
    let config = json!({
        "routeHeader": ROUTE_HEADER,
        "debugHeader": DEBUG_HEADER,
        "namespace": "default",
        "services": rules["services"],
    });
    json!({"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "canary-router", "root_id": "canary-router",
            "vm_config": {"vm_id": "canary-router", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": FILTER_WASM_RELATIVE}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": config.to_string()}}}})
}

fn start() -> Envoy {
    let (rules, glue) = imported_and_rendered();
    let mut canary_filters = vec![wasm_filter(&rules)];
    canary_filters.extend(istiod_filters());
    let listeners = vec![
        listener("canary", CANARY, canary_hosts(&glue), canary_filters),
        listener("native", NATIVE, native_hosts(), istiod_filters()),
        backend("echo", ECHO, 200, None),
        backend("slow20", SLOW20, 200, Some("20s")),
        backend("slow3", SLOW3, 200, Some("3s")),
        backend("failing", FAILING, 503, None),
        backend("shadow", SHADOW, 200, None),
        backend("gwshadow", GW_SHADOW, 200, None),
    ];
    let doc = json!({
        "node": {"id": "sidecar~127.0.0.1~frontend-0.default~default.svc.cluster.local",
                 "cluster": "frontend.default",
                 "metadata": {"NAMESPACE": "default", "LABELS": {"app": "frontend"}}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
        "static_resources": {"listeners": listeners, "clusters": clusters()}
    });
    let config = EnvoyConfig::from_yaml_str(&doc.to_string(), "route policies").unwrap();
    Envoy::start(config, &EnvoyOptions::default().without_access_logs())
        .unwrap_or_else(|e| panic!("Envoy starts: {e}"))
}

/// What a response showed: the status and the headers a case looks at.
fn seen(resp: &Response, headers: &[&str]) -> String {
    let mut out = resp.status.to_string();
    for h in headers {
        out.push_str(&format!(
            " {h}={}",
            resp.header(h).unwrap_or_else(|| "-".into())
        ));
    }
    out
}

fn client(envoy: &Envoy, port: u16, timeout: Duration) -> HttpClient {
    envoy
        .client(port)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_timeout(timeout)
}

/// Sends `req` through canary-router: the response, and that the filter
/// routed it (its debug header names the rule).
fn through_canary(c: &mut HttpClient, req: &Request, rule: &str) -> Response {
    let resp = c.send(req).unwrap_or_else(|e| panic!("canary: {e}"));
    let route = resp.header(DEBUG_HEADER).unwrap_or_default();
    assert_eq!(
        route.split('/').nth(1),
        Some(rule),
        "the filter routed {} by rule {rule} (debug header {route:?})",
        req.path
    );
    resp
}

/// Both listeners give every request the same outcome (`headers` shown).
fn same_outcomes(envoy: &Envoy, cases: &[(Request, &str)], headers: &[&str]) -> Vec<String> {
    let mut canary = client(envoy, CANARY, Duration::from_secs(10));
    let mut native = client(envoy, NATIVE, Duration::from_secs(10));
    let mut out = Vec::new();
    for (req, rule) in cases {
        let want = seen(
            &native.send(req).unwrap_or_else(|e| panic!("native: {e}")),
            headers,
        );
        let got = seen(&through_canary(&mut canary, req, rule), headers);
        assert_eq!(
            got, want,
            "{} {:?}: canary-router, then istiod's route",
            req.method, req.path
        );
        out.push(got);
    }
    out
}

fn status_after(c: &mut HttpClient, req: &Request) -> (u16, Duration) {
    let t = Instant::now();
    let status = c.send(req).map_or(0, |r| r.status);
    (status, t.elapsed())
}

#[test]
fn routed_requests_keep_the_mesh_defaults_and_their_rules_policies() {
    let envoy = start();
    std::thread::scope(|s| {
        // No route timeout: a 20 s answer completes on both (the glue of
        // old cut it at Envoy's default of 15 s with a 504).
        let slow: Vec<_> = [CANARY, NATIVE]
            .map(|port| {
                let envoy = &envoy;
                s.spawn(move || {
                    let mut c = client(envoy, port, Duration::from_secs(40));
                    status_after(&mut c, &Request::get("/").host("slow"))
                })
            })
            .into();
        // A 1 s timeout on a 3 s answer: 504 after about 1 s on both.
        let limited = s.spawn(|| {
            let req = Request::get("/").host("limited");
            let mut out = Vec::new();
            for port in [CANARY, NATIVE] {
                let mut c = client(&envoy, port, Duration::from_secs(10));
                out.push(status_after(&mut c, &req));
            }
            out
        });

        // A 50 % mirror: the shadow gets about half, the client sees only
        // the primary (one listener after the other: they share the shadow).
        let shadowed = Request::get("/").host("shadowed");
        let gw_mirrored = Request::get("/").host("gwecho").header("x-case", "mirror");
        let mirrors: Vec<_> = [(shadowed, "shadow"), (gw_mirrored, "gwshadow")]
            .map(|(req, shadow)| {
                let envoy = &envoy;
                s.spawn(move || {
                    // One listener after the other: they share the shadow.
                    for (port, what) in [(CANARY, "canary-router"), (NATIVE, "istiod's route")] {
                        let before = shadow_requests(envoy, shadow);
                        let mut c = client(envoy, port, Duration::from_secs(10));
                        let n = 400u64;
                        for _ in 0..n {
                            let resp = c.send(&req).unwrap_or_else(|e| panic!("{what}: {e}"));
                            assert_eq!(seen(&resp, &["x-backend"]), "200 x-backend=echo", "{what}");
                        }
                        let mirrored = settled(|| shadow_requests(envoy, shadow)) - before;
                        check_binomial(n, 0.5, mirrored).unwrap_or_else(|e| {
                            panic!("{what}: requests mirrored to {shadow}: {e}")
                        });
                    }
                })
            })
            .into();
        // Rule `plain` sends to the same subset as `retried` without its
        // retries: half its requests fail, on both.
        let plain: Vec<_> = [(CANARY, "canary-router"), (NATIVE, "istiod's route")]
            .map(|(port, what)| {
                let envoy = &envoy;
                s.spawn(move || {
                    let n = 200u64;
                    let mut c = client(envoy, port, Duration::from_secs(10));
                    let failed = (0..n)
                        .filter(|i| {
                            let req = Request::get(&format!("/{i}"))
                                .host("flaky")
                                .header("x-plain", "1");
                            c.send(&req).map_or(true, |r| r.status == 503)
                        })
                        .count() as u64;
                    check_binomial(n, 0.5, failed)
                        .unwrap_or_else(|e| panic!("{what}: 503s of rule plain: {e}"));
                })
            })
            .into();

        // Istio's default retries: a dead endpoint beside a live one never
        // shows (half the requests would get 503 without them).
        let churn: Vec<(Request, &str)> = (0..40)
            .map(|i| (Request::get(&format!("/{i}")).host("churn"), "all"))
            .collect();
        for o in same_outcomes(&envoy, &churn, &["x-backend"]) {
            assert_eq!(o, "200 x-backend=echo");
        }

        // `retries` on 5xx hide the failing endpoint for rule `retried`.
        let retried: Vec<(Request, &str)> = (0..40)
            .map(|i| (Request::get(&format!("/{i}")).host("flaky"), "retried"))
            .collect();
        for o in same_outcomes(&envoy, &retried, &["x-backend"]) {
            assert_eq!(o, "200 x-backend=echo");
        }
        // Header operations (the rule's and its destination's), per rule;
        // a URI rewrite relative to each match entry; CORS.
        let echo = |path: &str| Request::get(path).host("echo").header("x-b", "client");
        let cases = vec![
            (echo("/"), "decorated"),
            (echo("/x?q=1").header("x-a", "client"), "decorated"),
            (echo("/").header("x-other", "1"), "other"),
            (echo("/api/v1/users"), "rewritten"),
            (echo("/old/v1"), "rewritten"),
            (echo("/oldies"), "rewritten"),
            (echo("/cors"), "cors"),
        ];
        let out = same_outcomes(
            &envoy,
            &cases,
            &["x-path", "x-seen-a", "x-seen-b", "x-r", "x-d"],
        );
        assert_eq!(
            out[0],
            "200 x-path=/ x-seen-a=decorated x-seen-b=- x-r=1 x-d=v1"
        );
        assert_eq!(
            out[2],
            "200 x-path=/ x-seen-a=other x-seen-b=client x-r=- x-d=-"
        );
        assert_eq!(
            out[3],
            "200 x-path=/v2/v1/users x-seen-a=- x-seen-b=client x-r=- x-d=-"
        );
        assert_eq!(
            out[4],
            "200 x-path=/v2//v1 x-seen-a=- x-seen-b=client x-r=- x-d=-"
        );
        assert_eq!(
            out[5],
            "200 x-path=/v2/ies x-seen-a=- x-seen-b=client x-r=- x-d=-"
        );
        let preflight = |origin: &str| {
            Request {
                method: "OPTIONS".into(),
                ..Request::get("/cors")
            }
            .host("echo")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
        };
        let cors = vec![
            (preflight("https://shop.example"), "cors"),
            (preflight("https://other.example"), "cors"),
            (
                echo("/cors").header("origin", "https://shop.example"),
                "cors",
            ),
        ];
        let out = same_outcomes(
            &envoy,
            &cors,
            &[
                "access-control-allow-origin",
                "access-control-allow-methods",
                "access-control-max-age",
            ],
        );
        assert_eq!(
            out[0],
            "200 access-control-allow-origin=https://shop.example access-control-allow-methods=GET,POST access-control-max-age=86400"
        );

        // A fault abort for the header-matched rule only.
        let broken = vec![
            (
                Request::get("/").host("broken").header("x-break", "yes"),
                "broken",
            ),
            (
                Request::get("/").host("broken").header("x-break", "no"),
                "fine",
            ),
            (Request::get("/").host("broken"), "fine"),
        ];
        let out = same_outcomes(&envoy, &broken, &["x-backend"]);
        assert_eq!(
            out,
            [
                "418 x-backend=-",
                "200 x-backend=echo",
                "200 x-backend=echo"
            ]
        );

        // The HTTPRoute's filters and timeouts, as istiod converts them.
        let gw = |path: &str| Request::get(path).host("gwecho").header("x-b", "client");
        let cases = vec![
            (gw("/api/x"), "rewrite"),
            (gw("/api"), "rewrite"),
            (gw("/strip/x/y"), "strip"),
            (gw("/strip"), "strip"),
            (gw("/strip/"), "strip"),
            (gw("/full/a?b=c"), "full"),
            (gw("/").header("x-case", "headers"), "headers"),
        ];
        let out = same_outcomes(&envoy, &cases, &["x-path", "x-seen-a", "x-seen-b", "x-r"]);
        assert_eq!(out[0], "200 x-path=/v2/x x-seen-a=- x-seen-b=client x-r=-");
        assert_eq!(out[2], "200 x-path=/x/y x-seen-a=- x-seen-b=client x-r=-");
        assert_eq!(out[3], "200 x-path=/ x-seen-a=- x-seen-b=client x-r=-");
        assert_eq!(out[6], "200 x-path=/ x-seen-a=gw x-seen-b=- x-r=gw");
        for port in [CANARY, NATIVE] {
            let mut c = client(&envoy, port, Duration::from_secs(10));
            let (status, took) = status_after(&mut c, &gw("/").header("x-case", "timeout"));
            assert_eq!(status, 504, "{port}: timeouts.request");
            assert!(took < Duration::from_millis(2900), "{port}: {took:?}");
        }
        for t in mirrors {
            t.join().unwrap();
        }
        for t in plain {
            t.join().unwrap();
        }
        for (what, (status, took)) in ["canary-router", "istiod's route"]
            .iter()
            .zip(slow.into_iter().map(|t| t.join().unwrap()))
        {
            assert_eq!(status, 200, "{what}: a 20 s answer completes");
            assert!(took >= Duration::from_secs(19), "{what}: {took:?}");
        }
        for (what, (status, took)) in ["canary-router", "istiod's route"]
            .iter()
            .zip(limited.join().unwrap())
        {
            assert_eq!(status, 504, "{what}: the rule's 1 s timeout");
            assert!(
                took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
                "{what}: {took:?}"
            );
        }
    });
    // The glue, not Envoy's default routes, served canary-router's requests.
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.get("wasmcustom.canary_router.passthrough"), 0);
}

/// Requests a shadow backend received.
fn shadow_requests(envoy: &Envoy, shadow: &str) -> u64 {
    envoy
        .stats()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(&format!("http.{shadow}.downstream_rq_total"))
}

/// A counter once it stops moving (mirrored requests are sent in the
/// background).
fn settled(read: impl Fn() -> u64) -> u64 {
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
}
