//! The Istio manifests' Envoy-level parts, in a real Envoy: the route that
//! `wasmplugin/route-envoyfilter.yaml` inserts first in backend's outbound
//! virtual host, and the `pluginConfig` of `wasmplugin/wasmplugin.yaml`, put
//! into the `weighted` example in place of its own route and rules (Istio
//! would do the same: the route as written, the pluginConfig as JSON).

use envoy_runner::{
    check_binomial, count_split, repo_root, Envoy, EnvoyConfig, EnvoyOptions, Request, SplitKey,
};
use serde::Deserialize;
use serde_json::Value;

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn manifest(file: &str) -> Value {
    let text = or_panic(std::fs::read_to_string(
        repo_root().join("wasmplugin").join(file),
    ));
    let doc = serde_yaml_ng::Deserializer::from_str(&text)
        .next()
        .unwrap_or_else(|| panic!("{file}: empty"));
    or_panic(Value::deserialize(doc))
}

/// The weighted example with the EnvoyFilter's route in place of its own
/// `canary` route, and with the WasmPlugin's pluginConfig as the filter's
/// configuration; or, without the filter, no wasm filter at all (as when
/// FAIL_OPEN skips it, or the WasmPlugin is deleted).
fn config(with_filter: bool) -> EnvoyConfig {
    let mut config = or_panic(EnvoyConfig::from_example("weighted"));
    let route =
        manifest("route-envoyfilter.yaml")["spec"]["configPatches"][0]["patch"]["value"].clone();
    let plugin_config = manifest("wasmplugin.yaml")["spec"]["pluginConfig"].to_string();
    let listeners = config.value_mut()["static_resources"]["listeners"]
        .as_array_mut()
        .expect("listeners");
    let outbound = listeners
        .iter_mut()
        .find(|l| l["name"] == "outbound_80")
        .expect("the outbound listener");
    let hcm = &mut outbound["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes");
    assert_eq!(
        routes[0]["name"], "canary",
        "the example's own canary route comes first"
    );
    routes[0] = route;
    if !with_filter {
        hcm["http_filters"]
            .as_array_mut()
            .expect("http_filters")
            .retain(|f| f["name"] != "envoy.filters.http.wasm");
    }
    if with_filter {
        or_panic(config.set_wasm_configuration(&plugin_config));
    }
    config
}

fn backend() -> Request {
    Request::get("/").host("backend")
}

#[test]
fn the_wasmplugins_rules_and_the_envoyfilters_route_split_90_10() {
    let envoy = or_panic(Envoy::start(config(true), &EnvoyOptions::default()));
    let mut client = or_panic(envoy.client(10000));
    let split = or_panic(count_split(
        &mut client,
        2000,
        &backend(),
        &SplitKey::version(),
    ));
    assert_eq!(split.count("v1") + split.count("v2"), 2000, "{split}");
    or_panic(check_binomial(2000, 0.1, split.count("v2")));
    // Routed by the inserted route (the example logs the route's name).
    let r = or_panic(client.send(&backend()));
    assert!(r
        .header("x-canary-route")
        .is_some_and(|h| h.starts_with("backend.default.svc.cluster.local/split/")));
    drop(client);
    let stats = or_panic(envoy.stats());
    assert_eq!(
        stats.sum_prefix("wasmcustom.canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;"),
        2001
    );
    let log = or_panic(std::fs::read_to_string(envoy.stdout_path()));
    assert!(
        log.contains("route=canary-router cluster=outbound|80|v"),
        "the EnvoyFilter's route served:\n{log}"
    );
}

#[test]
fn without_the_filter_the_route_follows_only_backends_subset_clusters() {
    let envoy = or_panic(Envoy::start(config(false), &EnvoyOptions::default()));
    let mut client = or_panic(envoy.client(10000));
    let mut version = |value: Option<&str>| {
        let mut req = backend();
        if let Some(v) = value {
            req = req.header("x-canary-upstream", v);
        }
        let r = or_panic(client.send(&req));
        assert_eq!(r.status, 200, "{value:?}: {}", r.text());
        r.header("x-version").unwrap_or_default()
    };
    // No header: Istio's own route (here the example's default, v1).
    assert_eq!(version(None), "v1");
    // A subset cluster of backend: followed (a client can at most pick v1 or v2).
    assert_eq!(version(Some(V2)), "v2");
    assert_eq!(version(Some(V1)), "v1");
    // Anything else: not this route's business; the default route serves.
    for other in [
        "outbound|80|v3|backend.default.svc.cluster.local",
        "outbound|80|v2|backend.default.svc.cluster.local.evil",
        "xoutbound|80|v2|backend.default.svc.cluster.local",
        "outbound|80||backend.default.svc.cluster.local",
        "backend_v2",
    ] {
        assert_eq!(version(Some(other)), "v1", "{other}");
    }
}
