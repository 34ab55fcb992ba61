//! ServiceEntry hosts as destinations, wildcard hosts included
//! (cli/tests/fixtures/istio-samples/wildcard-service-entry.yaml: a
//! ServiceEntry `*.example.org`, resolution NONE, and a VirtualService that
//! moves part of its calls to an in-mesh service), imported with `canaryctl
//! import`, glued with `canaryctl render --glue`, and routed in a real Envoy
//! laid out like the client's sidecar as istiod lays it out:
//!
//! - the outbound route configuration `80` with the virtual host
//!   `*.example.org:80` (domains `*.example.org`), the glue's routes first,
//!   then Istio's route for the host;
//! - the clusters named as istiod names them (`model.BuildSubsetKey`):
//!   `outbound|80||*.example.org`, of type `ORIGINAL_DST` with the
//!   `CLUSTER_PROVIDED` policy as istiod builds it for resolution NONE
//!   (`convertResolution`: `Passthrough`), and
//!   `outbound|8080||api-v2.shop.svc.cluster.local`.
//!
//! An `ORIGINAL_DST` cluster sends a request to the address the
//! application dialled, which iptables keeps on the connection in a pod.
//! Here there is no iptables: the cluster reads that address from the
//! request header `x-envoy-original-dst-host` instead
//! (`original_dst_lb_config.use_http_header`), which the client sets to the
//! "external" server's address. That is the only difference from istiod's
//! cluster.

mod common;

use common::{canaryctl, fixture, Run, TempFile};
use envoy_runner::{
    check_binomial, count_split, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request, SplitKey,
    FILTER_WASM_RELATIVE,
};
use serde_json::{json, Value};

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HOST: &str = "*.example.org";
const EXTERNAL_CLUSTER: &str = "outbound|80||*.example.org";
const API_V2_CLUSTER: &str = "outbound|8080||api-v2.shop.svc.cluster.local";
/// The sidecar's outbound listener for port 80 (remapped by the runner).
const OUTBOUND: u16 = 10480;
/// The external server under example.org, and the in-mesh api-v2.
const EXTERNAL: u16 = 10481;
const API_V2_PORT: u16 = 10482;

fn import() -> (Value, Run) {
    let run = canaryctl(
        &[
            "import",
            &fixture("istio-samples/wildcard-service-entry.yaml"),
        ],
        None,
    )
    .expect_code(0);
    (run.json(), run)
}

/// The routes `canaryctl render --glue` inserts first in the virtual host
/// `*.example.org:80`, and the rendered pluginConfig.
fn rendered(imported: &Value) -> (Value, Vec<Value>) {
    let file = TempFile::new("rules.json", &imported.to_string());
    let path = file.path();
    let run = canaryctl(
        &[
            "render",
            "--image",
            "file:///m.wasm",
            "--namespace",
            "shop",
            "--selector",
            "app=client",
            "--glue",
            "--port",
            "80",
            "--debug-header",
            "x-canary-route",
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
    let plugin = docs[0]["spec"]["pluginConfig"].clone();
    let glue = docs
        .iter()
        .find(|d| d["kind"] == "EnvoyFilter")
        .expect("the glue")["spec"]["configPatches"]
        .as_array()
        .expect("patches")
        .iter()
        .map(|p| {
            assert_eq!(
                p["match"]["routeConfiguration"],
                json!({"portNumber": 80, "vhost": {"name": "*.example.org:80"}}),
                "{}",
                run.stdout
            );
            p["patch"]["value"].clone()
        })
        .collect();
    (plugin, glue)
}

fn server(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": name,
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": name}},
                "response_headers_to_add": [
                    {"header": {"key": "x-served-by", "value": name}},
                    {"header": {"key": "x-host", "value": "%REQ(:AUTHORITY)%"}}]
            }]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]
        }}]}]
    })
}

/// The client's sidecar: the filter with `plugin`, the glue, Istio's
/// route for the host, and the clusters as istiod names and builds them.
fn sidecar(plugin: &Value, glue: &[Value]) -> Envoy {
    let mut routes = glue.to_vec();
    // Istio's route for the ServiceEntry host without a VirtualService
    // (`BuildDefaultHTTPOutboundRoute`): what the filter leaves alone.
    routes.push(json!({"name": "default", "match": {"prefix": "/"},
        "route": {"cluster": EXTERNAL_CLUSTER, "timeout": "0s"}}));
    let wasm = json!({"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "canary-router", "root_id": "canary-router",
            "vm_config": {"vm_id": "canary-router", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": FILTER_WASM_RELATIVE}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": plugin.to_string()}
        }
    }});
    let outbound = json!({
        "name": "0.0.0.0_80",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": OUTBOUND}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": "outbound_0.0.0.0_80",
            "route_config": {"name": "80", "ignore_port_in_host_matching": true, "virtual_hosts": [
                {"name": "*.example.org:80", "domains": [HOST], "routes": routes}]},
            "http_filters": [wasm, {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]
        }}]}]
    });
    let api_v2 = json!({
        "name": API_V2_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": API_V2_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": API_V2_PORT}}}}]}]}
    });
    // istiod's cluster for a resolution-NONE ServiceEntry port, but the
    // original destination read from a header (no iptables here).
    let external = json!({
        "name": EXTERNAL_CLUSTER, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
        "connect_timeout": "1s", "original_dst_lb_config": {"use_http_header": true}
    });
    let doc = json!({
        "node": {"id": "sidecar~127.0.0.1~client-0.shop~shop.svc.cluster.local", "cluster": "client.shop",
                 "metadata": {"NAMESPACE": "shop", "LABELS": {"app": "client"}}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
        "static_resources": {
            "listeners": [outbound, server("external", EXTERNAL), server("api-v2", API_V2_PORT)],
            "clusters": [external, api_v2]
        }
    });
    let config = EnvoyConfig::from_yaml_str(&doc.to_string(), "ServiceEntry sidecar")
        .unwrap_or_else(|e| panic!("{e}"));
    Envoy::start(config, &EnvoyOptions::default()).unwrap_or_else(|e| panic!("Envoy starts: {e}"))
}

/// A call of the application to `host` on port 80: it dialled the external
/// server's address, which the sidecar's listener captured.
fn call(envoy: &Envoy, host: &str) -> Request {
    let dialled = envoy.addr(EXTERNAL).unwrap_or_else(|e| panic!("{e}"));
    Request::get("/")
        .host(host)
        .header("x-envoy-original-dst-host", dialled.to_string())
}

fn client(envoy: &Envoy) -> HttpClient {
    envoy.client(OUTBOUND).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_wildcard_service_entry_destination_routes_through_istiods_clusters() {
    let (imported, run) = import();
    // The ServiceEntry gave the port-less destination its only port.
    let split = &imported["services"][0]["http"][1]["route"];
    assert_eq!(imported["services"][0]["hosts"], json!([HOST]));
    assert_eq!(
        split[0]["destination"],
        json!({"host": HOST, "port": {"number": 80}}),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "spec.http[1].route[0].destination: no port: port 80, the only port of ServiceEntry shop/example-org"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    canaryctl(&["validate", "-"], Some(&run.stdout)).expect_code(0);

    let (plugin, glue) = rendered(&imported);
    let mut glued: Vec<&str> = glue
        .iter()
        .map(|r| {
            r["match"]["headers"][0]["string_match"]["exact"]
                .as_str()
                .expect("an exact value")
        })
        .collect();
    // Exact values of one virtual host: their order does not matter.
    glued.sort_unstable();
    let mut want = [API_V2_CLUSTER, EXTERNAL_CLUSTER];
    want.sort_unstable();
    assert_eq!(glued, want);
    let envoy = sidecar(&plugin, &glue);
    let mut c = client(&envoy);

    // The testers: always the in-mesh service, whatever the host.
    for host in ["api.example.org", "www.example.org"] {
        let req = call(&envoy, host).header("x-canary", "always");
        let resp = c.send(&req).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            resp.header("x-served-by").as_deref(),
            Some("api-v2"),
            "{resp:?}"
        );
        assert_eq!(
            resp.header("x-canary-route").as_deref(),
            Some("*.example.org/testers/api-v2.shop.svc.cluster.local")
        );
    }
    // 90/10 between the external host, through the ORIGINAL_DST cluster
    // (the request keeps its host), and the in-mesh service.
    let n = 1000;
    let seen = count_split(
        &mut c,
        n,
        &call(&envoy, "www.example.org"),
        &SplitKey::Header("x-served-by".into()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seen.count("external") + seen.count("api-v2"),
        n as u64,
        "{seen}"
    );
    check_binomial(n as u64, 0.1, seen.count("api-v2")).unwrap_or_else(|e| panic!("{e}"));
    let resp = (0..50)
        .map(|_| {
            c.send(&call(&envoy, "www.example.org"))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .find(|r| r.header("x-served-by").as_deref() == Some("external"))
        .expect("an external answer");
    assert_eq!(resp.header("x-host").as_deref(), Some("www.example.org"));
    assert_eq!(
        resp.header("x-canary-route").as_deref(),
        Some("*.example.org/split/*.example.org")
    );

    let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.get("http.outbound_0.0.0.0_80.downstream_rq_5xx"), 0);
    assert!(
        stats.get(&format!("cluster.{EXTERNAL_CLUSTER}.upstream_rq_total")) > 0,
        "the external share went through istiod's cluster"
    );
    let routed: u64 = stats
        .with_prefix("wasmcustom.canary_router.requests.service=*.example.org;.rule=split;.destination=*.example.org;")
        .map(|(_, v)| v)
        .sum();
    assert!(
        routed >= seen.count("external") && routed > 0,
        "the filter's counter: {routed}"
    );
}

/// An HTTPRoute reaches a ServiceEntry's host with Istio's `Hostname`
/// backend (`group: networking.istio.io`), as istiod resolves it
/// (`buildDestination`): the host as written, the port required, no
/// namespace. One that istiod refuses leaves its rule to Envoy's own route.
#[test]
fn an_httproute_reaches_a_service_entry_host_by_an_istio_hostname_backend() {
    let route = |backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: api, namespace: shop}}\n\
             spec:\n  parentRefs: [{{group: \"\", kind: Service, name: api}}]\n  rules:\n\
             \x20 - backendRefs:\n    - {{name: api-v1, port: 8080, weight: 90}}\n    - {backend}\n"
        )
    };
    let run = canaryctl(
        &["import", "-"],
        Some(&route(
            "{group: networking.istio.io, kind: Hostname, name: \"*.example.org\", port: 80, weight: 10}",
        )),
    )
    .expect_code(0);
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    let out = run.json();
    assert_eq!(
        out["services"][0]["http"][0]["route"][1],
        json!({"destination": {"host": HOST, "port": {"number": 80}}, "weight": 10})
    );
    canaryctl(&["validate", "-"], Some(&run.stdout)).expect_code(0);
    for (bad, why) in [
        (
            "{group: networking.istio.io, kind: Hostname, name: \"*.example.org\", weight: 10}",
            "a Hostname backend needs a port and no namespace",
        ),
        (
            "{group: networking.istio.io, kind: Hostname, name: \"*.example.org\", namespace: shop, port: 80, weight: 10}",
            "a Hostname backend needs a port and no namespace",
        ),
    ] {
        let run = canaryctl(&["import", "-"], Some(&route(bad))).expect_code(0);
        assert!(
            run.stderr.contains(&format!("spec.rules[0].backendRefs[1]: {why}")),
            "{bad}: {}",
            run.stderr
        );
        assert_eq!(
            run.json()["services"][0]["http"][0]["route"],
            json!([{"destination": {"cluster": "gateway-api.envoy-route"}}])
        );
    }
}
