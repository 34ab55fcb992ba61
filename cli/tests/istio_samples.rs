//! VirtualServices shaped like Istio's own samples
//! (cli/tests/fixtures/istio-samples/README.md), imported with `canaryctl
//! import` and routed in a real Envoy laid out like an Istio sidecar: one
//! outbound listener per service port (9080 and 9081 bind at exactly those
//! ports, so Envoy's `destination.port` is what an application dialling
//! `reviews:9080` would see), a virtual host per service, the routing glue
//! (`cluster_header`, as wasmplugin/route-envoyfilter.yaml) and Istio's
//! cluster names `outbound|<port>|<subset>|<host>`. Each response says which
//! subset served it; the debug header says the filter routed it (the
//! default routes also go to v1, so v1 alone would prove nothing).

mod common;

use std::collections::BTreeMap;

use common::{canaryctl, fixture, Run};
use envoy_runner::{
    check_binomial, count_split, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request, Response,
    SplitKey, FILTER_WASM_RELATIVE,
};
use serde_json::{json, Value};

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const SUBSETS: [&str; 3] = ["v1", "v2", "v3"];
/// Written port of each backend (remapped by the runner), by subset.
const BACKENDS: [u16; 3] = [10201, 10202, 10203];
/// A listener for the walkthrough's port-80 service (remapped: its rules name ports).
const WALKTHROUGH_LISTENER: u16 = 10080;
const SERVICES: [&str; 4] = ["reviews", "ratings", "productpage", "backend"];

fn sample(name: &str) -> String {
    fixture(&format!("istio-samples/{name}"))
}

fn fqdn(service: &str) -> String {
    format!("{service}.default.svc.cluster.local")
}

/// `canaryctl import` of a sample, which must succeed.
fn import(name: &str) -> (Value, Run) {
    let run = canaryctl(&["import", &sample(name)], None).expect_code(0);
    (run.json(), run)
}

/// The warnings of a run, one per line, without the `warning: ` prefix.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect()
}

fn backend(subset: &str, port: u16) -> Value {
    json!({
        "name": format!("backend_{subset}"),
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": format!("backend_{subset}"),
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": subset}},
                "response_headers_to_add": [{"header": {"key": "x-version", "value": subset}}]
            }]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]
        }}]}]
    })
}

/// Istio's domains of a service's virtual host, with the port of this
/// route configuration (`port`). The other ports of the sidecar are
/// accepted too, so that a `Host` naming another port reaches the route
/// (Istio answers 404 there; here the filter's decision is what is seen).
fn domains(service: &str, port: u16) -> Vec<String> {
    let names = [
        service.to_string(),
        format!("{service}.default"),
        format!("{service}.default.svc"),
        fqdn(service),
    ];
    let mut ports = vec![port];
    ports.extend([80, 9080, 9081].into_iter().filter(|p| *p != port));
    names
        .iter()
        .flat_map(|n| {
            std::iter::once(n.clone()).chain(ports.iter().map(move |p| format!("{n}:{p}")))
        })
        .collect()
}

/// The route configuration of an outbound listener whose services are on
/// `service_port`: per service, the glue route (a cluster name the filter
/// wrote, of this service) and the default route to v1.
fn route_config(service_port: u16) -> Value {
    route_config_with(service_port, &[])
}

/// [`route_config`] with `glue`, the routes `canaryctl render --glue`
/// inserts first in each virtual host (by name), instead of the glue route.
fn route_config_with(service_port: u16, glue: &[(String, Value)]) -> Value {
    let hosts: Vec<Value> = SERVICES
        .iter()
        .map(|s| {
            let escaped = fqdn(s).replace('.', r"\.");
            let name = format!("{}:{service_port}", fqdn(s));
            // Istio applies the patches in turn, each INSERT_FIRST.
            let mut routes: Vec<Value> = glue
                .iter()
                .filter(|(vhost, _)| *vhost == name)
                .map(|(_, r)| r.clone())
                .rev()
                .collect();
            if glue.is_empty() {
                routes.push(json!({"name": "canary-router", "match": {"prefix": "/", "headers": [{
                    "name": "x-canary-upstream",
                    "string_match": {"safe_regex": {"regex": format!(r"outbound\|[0-9]+\|v[123]\|{escaped}")}}}]},
                 "route": {"cluster_header": "x-canary-upstream"}}));
            }
            routes.push(json!({"name": "default", "match": {"prefix": "/"},
                 "route": {"cluster": format!("outbound|{service_port}|v1|{}", fqdn(s))}}));
            json!({"name": name, "domains": domains(s, service_port), "routes": routes})
        })
        .collect();
    json!({"name": service_port.to_string(), "virtual_hosts": hosts})
}

/// What `canaryctl render --glue --port 9080 --port 9081` prints for
/// imported rules: its pluginConfig, and per virtual host name the routes
/// its EnvoyFilter inserts first (each on the port of its patch).
fn rendered(imported: &Value) -> (Value, Vec<(u16, String, Value)>) {
    let file = common::TempFile::new("rules.json", &imported.to_string());
    let path = file.path();
    let run = canaryctl(
        &[
            "render",
            "--image",
            "file:///m.wasm",
            "--glue",
            "--port",
            "9080",
            "--port",
            "9081",
            &path,
        ],
        None,
    )
    .expect_code(0);
    let docs: Vec<Value> = {
        use serde::Deserialize;
        serde_yaml_ng::Deserializer::from_str(&run.stdout)
            .map(|d| Value::deserialize(d).expect("YAML"))
            .collect()
    };
    let doc = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {}", run.stdout))
    };
    let plugin = doc("WasmPlugin")["spec"]["pluginConfig"].clone();
    let glue = doc("EnvoyFilter")["spec"]["configPatches"]
        .as_array()
        .expect("patches")
        .iter()
        .map(|p| {
            let rc = &p["match"]["routeConfiguration"];
            let port = rc["portNumber"].as_u64().expect("a port") as u16;
            let vhost = rc["vhost"]["name"].as_str().expect("a vhost").to_string();
            (port, vhost, p["patch"]["value"].clone())
        })
        .collect();
    (plugin, glue)
}

fn wasm_filter(rules: &str) -> Value {
    json!({"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "canary-router", "root_id": "canary-router",
            "vm_config": {"vm_id": "canary-router", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": FILTER_WASM_RELATIVE}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": rules}
        }
    }})
}

/// A listener written on `port` for services on `service_port`, with the
/// filter (`rules`) or without it (Envoy's own routes, `native`).
fn listener(
    name: &str,
    port: u16,
    service_port: u16,
    rules: Option<&str>,
    native: Option<Value>,
) -> Value {
    let mut filters: Vec<Value> = rules.map(wasm_filter).into_iter().collect();
    filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}));
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": name,
            "route_config": native.unwrap_or_else(|| route_config(service_port)),
            "http_filters": filters
        }}]}]
    })
}

/// Every cluster `outbound|<port>|<subset>|<service>` of the sidecar.
fn clusters() -> Vec<Value> {
    let mut out = Vec::new();
    for port in [80u16, 9080, 9081] {
        for service in SERVICES {
            for (subset, backend) in SUBSETS.iter().zip(BACKENDS) {
                let name = format!("outbound|{port}|{subset}|{}", fqdn(service));
                out.push(json!({
                    "name": name, "type": "STATIC", "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                        "address": {"socket_address": {"address": "127.0.0.1", "port_value": backend}}}}]}]}
                }));
            }
        }
    }
    out
}

/// The plugin configuration for imported rules.
fn plugin_config(imported: &Value) -> String {
    json!({
        "routeHeader": "x-canary-upstream",
        "debugHeader": "x-canary-route",
        "namespace": "default",
        "services": imported["services"],
    })
    .to_string()
}

/// A sidecar: listeners on 9080 and 9081 (bound there), one for the
/// walkthrough's port-80 service, and `extra` listeners.
fn sidecar(imported: &Value, extra: Vec<Value>) -> Envoy {
    let rules = plugin_config(imported);
    let listeners = vec![
        listener("outbound_9080", 9080, 9080, Some(&rules), None),
        listener("outbound_9081", 9081, 9081, Some(&rules), None),
        listener("outbound_80", WALKTHROUGH_LISTENER, 80, Some(&rules), None),
    ];
    start_sidecar(listeners, extra)
}

fn start_sidecar(mut listeners: Vec<Value>, extra: Vec<Value>) -> Envoy {
    listeners.extend(extra);
    listeners.extend(SUBSETS.iter().zip(BACKENDS).map(|(s, p)| backend(s, p)));
    let doc = json!({
        "node": {"id": "sidecar~127.0.0.1~productpage-v1-0.default~default.svc.cluster.local",
                 "cluster": "productpage.default",
                 "metadata": {"NAMESPACE": "default", "LABELS": {"app": "productpage", "version": "v1"}}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
        "static_resources": {"listeners": listeners, "clusters": clusters()}
    });
    let config = EnvoyConfig::from_yaml_str(&doc.to_string(), "istio-samples sidecar")
        .unwrap_or_else(|e| panic!("{e}"));
    let opts = EnvoyOptions::default()
        .bind_port(9080, 9080)
        .bind_port(9081, 9081);
    Envoy::start(config, &opts).unwrap_or_else(|e| panic!("Envoy starts: {e}"))
}

fn client(envoy: &Envoy, port: u16) -> HttpClient {
    envoy.client(port).unwrap_or_else(|e| panic!("{e}"))
}

fn send(client: &mut HttpClient, req: &Request) -> Response {
    let resp = client.send(req).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp
}

/// The subset that served a request, and the rule the filter routed it by
/// (`service/rule/destination`), which must be there.
fn served(client: &mut HttpClient, req: &Request) -> (String, String) {
    let resp = send(client, req);
    let version = resp.header("x-version").unwrap_or_default();
    let route = resp
        .header("x-canary-route")
        .unwrap_or_else(|| panic!("the filter did not route {req:?} (no debug header)"));
    (version, route)
}

#[test]
fn bookinfo_port_less_virtualservices_route_on_the_9080_listener_with_no_5xx() {
    // All to v1, with the DestinationRules of the same file noted and skipped.
    let (all, run) = import("all-v1.yaml");
    assert!(
        run.stderr.contains(
            "DestinationRule reviews (networking.istio.io/v1) is not a VirtualService; skipped"
        ) && run.stderr.contains(
            "DestinationRule ratings (networking.istio.io/v1) is not a VirtualService; skipped"
        ),
        "{}",
        run.stderr
    );
    assert!(warnings(&run.stderr).is_empty(), "{}", run.stderr);
    assert!(all["services"][1]["http"][0]["route"][0]["destination"]
        .get("port")
        .is_none());
    let envoy = sidecar(&all, Vec::new());
    let mut c = client(&envoy, 9080);
    for service in ["reviews", "ratings", "productpage"] {
        for host in [
            service.to_string(),
            format!("{service}:9080"),
            fqdn(service),
        ] {
            let (v, route) = served(&mut c, &Request::get("/").host(&host));
            assert_eq!(v, "v1", "{host}");
            assert_eq!(route, format!("{}/http-0/v1", fqdn(service)), "{host}");
        }
    }
    // The filter wrote the cluster of the port the request arrived on.
    let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
    let to = |c: &str| stats.get(&format!("cluster.{c}.upstream_rq_total"));
    assert_eq!(to(&format!("outbound|9080|v1|{}", fqdn("reviews"))), 3);
    assert_eq!(to(&format!("outbound|80|v1|{}", fqdn("reviews"))), 0);
    drop(envoy);

    // jason to v2, the rest to v1.
    let (routing, _) = import("request-routing.yaml");
    let envoy = sidecar(&routing, Vec::new());
    let mut c = client(&envoy, 9080);
    let jason = Request::get("/")
        .host("reviews:9080")
        .header("end-user", "jason");
    assert_eq!(served(&mut c, &jason).0, "v2");
    assert_eq!(served(&mut c, &Request::get("/").host("reviews")).0, "v1");
    // The same rules on the other port: the cluster of 9081.
    let mut c81 = client(&envoy, 9081);
    assert_eq!(served(&mut c81, &jason.clone().host("reviews")).0, "v2");
    let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
    let to = |c: &str| stats.get(&format!("cluster.{c}.upstream_rq_total"));
    assert_eq!(to(&format!("outbound|9081|v2|{}", fqdn("reviews"))), 1);
    assert_eq!(to(&format!("outbound|9080|v2|{}", fqdn("reviews"))), 1);
    drop(envoy);

    // Half to v3: the split, and not one 5xx.
    let (shift, _) = import("traffic-shifting.yaml");
    let envoy = sidecar(&shift, Vec::new());
    let mut c = client(&envoy, 9080);
    let n = 400;
    let split = count_split(
        &mut c,
        n,
        &Request::get("/").host("reviews"),
        &SplitKey::version(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(split.count("v1") + split.count("v3"), n as u64, "{split}");
    check_binomial(n as u64, 0.5, split.count("v3")).unwrap_or_else(|e| panic!("{e}"));
    let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.get("http.outbound_9080.downstream_rq_5xx"), 0);
}

#[test]
fn with_the_rendered_glue_port_less_destinations_route_with_no_port_read() {
    // `render --glue` writes the rules port-less (`portlessDestinations:
    // glue`) and, per port, routes mapping each port-less value to that
    // port's cluster: the same routing as the request's port, on both
    // ports, without the filter reading the port.
    for (sample, jason_to, rest) in [
        ("request-routing.yaml", &["v2"][..], &["v1"][..]),
        (
            "traffic-shifting.yaml",
            &["v1", "v3"][..],
            &["v1", "v3"][..],
        ),
    ] {
        let (imported, _) = import(sample);
        let (plugin, glue) = rendered(&imported);
        assert_eq!(
            plugin["portlessDestinations"], "glue",
            "{sample}: {plugin:#}"
        );
        for (port, vhost, route) in &glue {
            assert!(vhost.ends_with(&format!(":{port}")), "{vhost}");
            let value = route["match"]["headers"][0]["string_match"]["exact"]
                .as_str()
                .unwrap_or_default();
            // `outbound||v2|reviews...` goes to `outbound|<port>|v2|reviews...`.
            assert_eq!(
                route["route"]["cluster"].as_str().map(str::to_string),
                Some(value.replacen("outbound||", &format!("outbound|{port}|"), 1)),
                "{sample}: {route:#}"
            );
        }
        let rules = json!({"debugHeader": "x-canary-route", "routeHeader": plugin["routeHeader"],
            "namespace": plugin["namespace"], "portlessDestinations": plugin["portlessDestinations"],
            "services": plugin["services"]})
        .to_string();
        let on = |port: u16| -> Vec<(String, Value)> {
            glue.iter()
                .filter(|(p, _, _)| *p == port)
                .map(|(_, v, r)| (v.clone(), r.clone()))
                .collect()
        };
        let listeners = [9080u16, 9081]
            .iter()
            .map(|&p| {
                listener(
                    &format!("outbound_{p}"),
                    p,
                    p,
                    Some(&rules),
                    Some(route_config_with(p, &on(p))),
                )
            })
            .collect();
        let envoy = start_sidecar(listeners, Vec::new());
        let n = 200;
        for port in [9080u16, 9081] {
            let mut c = client(&envoy, port);
            let jason = Request::get("/")
                .host("reviews")
                .header("end-user", "jason");
            let (v, _) = served(&mut c, &jason);
            assert!(jason_to.contains(&v.as_str()), "{sample} on {port}: {v}");
            for _ in 0..n {
                let (v, _) = served(&mut c, &Request::get("/").host("reviews:9080"));
                assert!(rest.contains(&v.as_str()), "{sample} on {port}: {v}");
            }
        }
        let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
        let to = |c: String| stats.get(&format!("cluster.{c}.upstream_rq_total"));
        for port in [9080u16, 9081] {
            let sent: u64 = SUBSETS
                .iter()
                .map(|s| to(format!("outbound|{port}|{s}|{}", fqdn("reviews"))))
                .sum();
            assert_eq!(
                sent,
                n as u64 + 1,
                "{sample}: every request on {port} to {port}'s clusters"
            );
            assert_eq!(
                stats.get(&format!("http.outbound_{port}.downstream_rq_5xx")),
                0
            );
        }
        if rest.len() == 2 {
            let v3 = to(format!("outbound|9080|v3|{}", fqdn("reviews")));
            check_binomial(n as u64, 0.5, v3).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn route_policies_are_carried_and_requests_reach_them_through_the_glue() {
    // fault, timeout and mirror: imported without a warning (`--strict`
    // passes), written into the rules, and each rule's requests reach the
    // glue route that carries its policy (value `<cluster>;<rule>`); the
    // requests route as before. cli/tests/route_policies.rs shows the
    // policies at work beside istiod's own routes.
    // (sample, (rule, carried field)s, the subset its requests reach)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            "fault-injection.yaml",
            &[("http-0", "fault"), ("http-1", "fault")],
            "v1",
        ),
        ("request-timeout.yaml", &[("http-0", "timeout")], "v2"),
        (
            "mirroring.yaml",
            &[("http-0", "mirror"), ("http-0", "mirrorPercentage")],
            "v1",
        ),
    ];
    for (file, carried, subset) in cases {
        let (imported, run) = import(file);
        assert!(warnings(&run.stderr).is_empty(), "{file}:\n{}", run.stderr);
        canaryctl(&["import", "--strict", &sample(file)], None).expect_code(0);
        let rules = imported["services"][0]["http"].as_array().unwrap();
        for (rule, field) in carried {
            let i: usize = rule.trim_start_matches("http-").parse().unwrap();
            assert!(rules[i].get(*field).is_some(), "{file}: {rule}.{field}");
        }
        let service = imported["services"][0]["hosts"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (plugin, glue) = rendered(&imported);
        for (rule, _) in carried {
            assert!(
                glue.iter().any(
                    |(_, _, r)| r["match"]["headers"][0]["string_match"]["exact"]
                        .as_str()
                        .is_some_and(|v| v.ends_with(&format!("|{service};{rule}")))
                ),
                "{file}: no glue route for rule {rule}"
            );
        }
        let rules = json!({"debugHeader": "x-canary-route", "routeHeader": plugin["routeHeader"],
            "namespace": plugin["namespace"], "portlessDestinations": plugin["portlessDestinations"],
            "services": plugin["services"]})
        .to_string();
        let on = |port: u16| -> Vec<(String, Value)> {
            glue.iter()
                .filter(|(p, _, _)| *p == port)
                .map(|(_, v, r)| (v.clone(), r.clone()))
                .collect()
        };
        let listeners = [9080u16, 9081]
            .iter()
            .map(|&p| {
                listener(
                    &format!("outbound_{p}"),
                    p,
                    p,
                    Some(&rules),
                    Some(route_config_with(p, &on(p))),
                )
            })
            .collect();
        let envoy = start_sidecar(listeners, Vec::new());
        let mut c = client(&envoy, 9080);
        let jason = Request::get("/").host(&service).header("end-user", "jason");
        for req in [jason, Request::get("/").host(&service)] {
            assert_eq!(served(&mut c, &req).0, subset, "{file}");
        }
        // Both reached the subset; with the mirror at 100 %, v2 got a copy
        // of each (the client saw v1 only).
        let to = |s: &str| {
            settled(|| {
                envoy
                    .stats()
                    .map(|st| {
                        st.get(&format!(
                            "cluster.outbound|9080|{s}|{service}.upstream_rq_total"
                        ))
                    })
                    .unwrap_or_default()
            })
        };
        let (v1, v2) = (to("v1"), to("v2"));
        match file {
            "mirroring.yaml" => assert_eq!((v1, v2), (2, 2), "{file}"),
            _ => assert_eq!(v1 + v2, 2, "{file}"),
        }
    }
}

#[test]
fn gateway_bindings_are_carried_as_istio_reads_them() {
    // Bound to a gateway only: never a sidecar's; the Gateway itself noted.
    let run = canaryctl(&["import", &sample("ingress-gateway.yaml")], None).expect_code(1);
    assert!(
        run.stderr.contains("Gateway shop-gateway (networking.istio.io/v1) is not a VirtualService; skipped")
            && run.stderr.contains("spec.gateways: bound to gateways only (no `mesh`), so it never applies to sidecars; skipped")
            && run.stderr.contains("no VirtualService could be imported"),
        "{}",
        run.stderr
    );
    // Mesh and egress gateway: the mesh entry is kept, the gateway's dropped.
    let (egress, run) = import("egress-gateway.yaml");
    let w = warnings(&run.stderr);
    for path in [
        "spec.gateways",
        "spec.http[1].match[0].gateways",
        "spec.http[1].match",
    ] {
        assert!(
            w.iter().any(|l| l.contains(&format!("): {path}: "))),
            "{path}:\n{}",
            run.stderr
        );
    }
    // `gateways: [mesh]` alone is the sidecars': nothing to say.
    assert!(
        !run.stderr.contains("spec.http[0].match[0].gateways"),
        "{}",
        run.stderr
    );
    assert_eq!(w.len(), 3, "{}", run.stderr);
    assert!(run.stderr.contains("ServiceEntry news"), "{}", run.stderr);
    let http = &egress["services"][0]["http"];
    assert_eq!(http.as_array().map(Vec::len), Some(1), "{egress:#}");
    assert_eq!(http[0]["match"], json!([{"port": 80}]));

    // The walkthrough's `gateways: []`: the sidecars.
    let (walk, run) = import("walkthrough.yaml");
    assert!(warnings(&run.stderr).is_empty(), "{}", run.stderr);
    assert!(
        run.stderr.contains("DestinationRule backend"),
        "{}",
        run.stderr
    );
    let envoy = sidecar(&walk, Vec::new());
    let mut c = client(&envoy, WALKTHROUGH_LISTENER);
    let tester = Request::get("/")
        .host("backend")
        .header("canary", "canary-tester");
    assert_eq!(
        served(&mut c, &tester),
        ("v2".into(), format!("{}/testers/v2", fqdn("backend")))
    );
    let n = 600;
    let split = count_split(
        &mut c,
        n,
        &Request::get("/").host("backend"),
        &SplitKey::version(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(split.count("v1") + split.count("v2"), n as u64, "{split}");
    check_binomial(n as u64, 0.1, split.count("v2")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn match_port_is_the_port_the_request_was_sent_to_as_in_envoys_own_routes() {
    let (imported, _) = import("match-port.yaml");
    // What istiod makes of it: the `port: 9081` route only in the route
    // configuration of port 9081, the catch-all in both. These listeners
    // are remapped; they stand for ports 9080 and 9081.
    let native = |port: u16, with_port_rule: bool| {
        let mut routes = Vec::new();
        if with_port_rule {
            routes.push(json!({"match": {"prefix": "/"}, "route": {"cluster": format!("outbound|9081|v3|{}", fqdn("reviews"))}}));
        }
        routes.push(json!({"match": {"prefix": "/"}, "route": {"cluster": format!("outbound|{port}|v1|{}", fqdn("reviews"))}}));
        json!({"name": port.to_string(), "virtual_hosts": [{"name": "reviews", "domains": domains("reviews", port), "routes": routes}]})
    };
    let extra = vec![
        listener("native_9080", 10990, 9080, None, Some(native(9080, false))),
        listener("native_9081", 10991, 9081, None, Some(native(9081, true))),
    ];
    let envoy = sidecar(&imported, extra);
    let pairs = [(9080u16, 10990u16), (9081, 10991)];
    let mut compared = BTreeMap::new();
    for (canary_port, native_port) in pairs {
        let mut canary = client(&envoy, canary_port);
        let mut native = client(&envoy, native_port);
        // Host headers naming either port, or none: only the listener counts.
        for host in [
            "reviews",
            "reviews:9080",
            "reviews:9081",
            "reviews.default.svc.cluster.local:9081",
        ] {
            let req = Request::get("/").host(host);
            let n = send(&mut native, &req)
                .header("x-version")
                .unwrap_or_default();
            let (c, _) = served(&mut canary, &req);
            assert_eq!(c, n, "{host} on the {canary_port} listener");
            compared.insert((canary_port, host), c);
        }
    }
    // Both answers occur: v3 exactly on port 9081.
    assert!(
        compared
            .iter()
            .all(|((port, _), v)| (*port == 9081) == (v == "v3")),
        "{compared:?}"
    );
}

/// A counter once it stops moving (mirrored requests are sent in the
/// background).
fn settled(read: impl Fn() -> u64) -> u64 {
    let mut last = read();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
}
