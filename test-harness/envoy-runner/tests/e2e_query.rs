//! `queryParams` in a real Envoy, beside Envoy's own `query_parameters`
//! matcher: for every query string, canary-router's rule matches exactly
//! when Envoy's native route does. Neither percent-decodes names or values,
//! and both look at the first occurrence of a repeated parameter
//! (docs/rules.md); this test pins that to what Envoy itself does, so a
//! VirtualService moved into canary-router matches the same requests.

use envoy_runner::{Envoy, EnvoyConfig, EnvoyOptions, Request};
use serde_json::json;

/// A listener on `port` whose only virtual host answers `matched` when the
/// query has `user=alice` by Envoy's own matcher, `unmatched` otherwise.
fn native_listener(port: u16) -> serde_json::Value {
    let answer = |body: &str| json!({"status": 200, "body": {"inline_string": body}});
    json!({
        "name": "native_query",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "native_query",
                "route_config": {"virtual_hosts": [{
                    "name": "native", "domains": ["*"],
                    "routes": [
                        {"match": {"prefix": "/", "query_parameters": [
                            {"name": "user", "string_match": {"exact": "alice"}}]},
                         "direct_response": answer("matched")},
                        {"match": {"prefix": "/"}, "direct_response": answer("unmatched")}
                    ]
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

#[test]
fn query_params_match_exactly_where_envoys_own_matcher_does() {
    let rules = json!({
        "debugHeader": "x-canary-route",
        "namespace": "default",
        "services": [{"hosts": ["backend"], "http": [
            {"name": "alice", "match": [{"queryParams": {"user": {"exact": "alice"}}}],
             "route": [{"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}}]},
            {"name": "rest",
             "route": [{"destination": {"host": "backend", "subset": "v1", "port": {"number": 80}}}]}
        ]}]
    });
    let mut config = EnvoyConfig::from_example("header-override").expect("the example");
    config
        .set_wasm_configuration(&rules.to_string())
        .expect("rules");
    const NATIVE: u16 = 10990;
    config.value_mut()["static_resources"]["listeners"]
        .as_array_mut()
        .expect("listeners")
        .push(native_listener(NATIVE));
    let envoy = Envoy::start(config, &EnvoyOptions::default()).expect("Envoy starts");
    let mut canary = envoy.client(10000).expect("client");
    let mut native = envoy.client(NATIVE).expect("client");

    let queries = [
        "user=alice",
        "user=al%69ce",
        "us%65r=alice",
        "user=alice&user=bob",
        "user=bob&user=alice",
        "x=1&user=alice",
        "user=ALICE",
        "user=alice%20",
        "user=alice+",
        "user",
        "user=",
        "&&user=alice&",
        "user=alice=x",
        "USER=alice",
        "",
    ];
    let mut matched = Vec::new();
    for q in queries {
        let path = format!("/?{q}");
        let n = native
            .send(&Request::get(&path).host("backend"))
            .unwrap_or_else(|e| panic!("{path}: native: {e}"));
        let c = canary
            .send(&Request::get(&path).host("backend"))
            .unwrap_or_else(|e| panic!("{path}: canary-router: {e}"));
        assert_eq!((n.status, c.status), (200, 200), "{path}");
        let native_matched = match n.text().trim() {
            "matched" => true,
            "unmatched" => false,
            other => panic!("{path}: native answered {other:?}"),
        };
        let route = c.header("x-canary-route").unwrap_or_default();
        let canary_matched = route.split('/').nth(1) == Some("alice");
        assert_eq!(
            canary_matched, native_matched,
            "{path}: canary-router routed by {route:?}, Envoy's matcher said {native_matched}"
        );
        assert_eq!(
            c.header("x-version").as_deref(),
            Some(if canary_matched { "v2" } else { "v1" }),
            "{path}"
        );
        if native_matched {
            matched.push(q);
        }
    }
    // Both answers occur, so the agreement is not trivial; and these are the
    // ones Envoy matches: no decoding, first occurrence, case-sensitive.
    assert_eq!(
        matched,
        [
            "user=alice",
            "user=alice&user=bob",
            "x=1&user=alice",
            "&&user=alice&"
        ]
    );
}
