//! Hostile requests against the built filter in a real Envoy.
//!
//! The `header-override` example's Envoy, changed so that a spoofed routing
//! header would be dangerous: every virtual host (including a catch-all `*`
//! for hosts no rule covers) routes on `x-canary-upstream` when present, and
//! there is a `secret` cluster that no rule ever produces. Then spoofed
//! routing headers (plain, other case, repeated, padded, naming a cluster the
//! rules never produce, for a covered host and for an uncovered one),
//! oversized and non-UTF-8 header values, a huge cookie, a thousand query
//! parameters, and HTTP/2 load with h2load. Every request reaches the cluster
//! the rules say, or Envoy's default route; there is no 5xx, the filter's
//! `host_call_errors` stays 0, and Envoy's log has no wasm `panic` or
//! `critical` line.
//!
//! Figures go to `target/reliability/hostile.tsv` for
//! `scripts/reliability-report.sh`.

use std::collections::BTreeMap;
use std::process::Command;

use envoy_runner::{repo_root, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request, Response};
use serde_json::{json, Value};

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
const SECRET: &str = "outbound|80|secret|backend.default.svc.cluster.local";
const OTHER: &str = "outbound|80||other.default.svc.cluster.local";
const HCM: &str = "http.outbound_0.0.0.0_80.";

const RULES: &str = r#"{
  "routeHeader": "x-canary-upstream",
  "debugHeader": "x-canary-route",
  "namespace": "default",
  "services": [{
    "hosts": ["backend.default.svc.cluster.local"],
    "http": [
      {"name": "testers", "match": [{"headers": {"canary": {"exact": "canary-tester"}}}],
       "route": [{"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}}]},
      {"name": "query", "match": [{"queryParams": {"canary": {"exact": "1"}}}],
       "route": [{"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}}]},
      {"name": "regex", "match": [{"headers": {"x-user": {"regex": "tester-[0-9]+"}}}],
       "route": [{"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}}]},
      {"name": "sticky", "match": [{"uri": {"prefix": "/sticky"}}],
       "route": [
         {"destination": {"host": "backend", "subset": "v1", "port": {"number": 80}}, "weight": 50},
         {"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}, "weight": 50}],
       "sticky": {"cookie": "user"}},
      {"name": "split", "route": [
         {"destination": {"host": "backend", "subset": "v1", "port": {"number": 80}}, "weight": 90},
         {"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}, "weight": 10}]}
    ]
  }]
}"#;

/// A listener answering 200 with `x-version: <version>`.
fn answering_listener(name: &str, port: u16, version: &str) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"virtual_hosts": [{
                    "name": name, "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": format!("{version}\n")}},
                        "response_headers_to_add": [{"header": {"key": "x-version", "value": version}}]}]
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
    })
}

/// The example's Envoy with a catch-all virtual host that also routes on the
/// header, and the `secret` and `other` backends.
fn hostile_config() -> EnvoyConfig {
    let mut config = EnvoyConfig::from_example("header-override").expect("the example");
    config.set_wasm_configuration(RULES).expect("rules");
    let doc = config.value_mut();
    let resources = &mut doc["static_resources"];
    let listeners = resources["listeners"].as_array_mut().expect("listeners");
    let outbound = listeners
        .iter_mut()
        .find(|l| l["name"] == "outbound_80")
        .expect("the outbound listener");
    let hcm = &mut outbound["filter_chains"][0]["filters"][0]["typed_config"];
    let vhosts = hcm["route_config"]["virtual_hosts"]
        .as_array_mut()
        .expect("virtual hosts");
    let mut catch_all = vhosts[0].clone();
    catch_all["name"] = json!("catch-all");
    catch_all["domains"] = json!(["*"]);
    let routes = catch_all["routes"].as_array_mut().expect("routes");
    let default = routes.last_mut().expect("a default route");
    default["route"] = json!({"cluster": OTHER});
    vhosts.push(catch_all);
    listeners.push(answering_listener("backend_secret", 10103, "secret"));
    listeners.push(answering_listener("other", 10104, "other"));
    let clusters = resources["clusters"].as_array_mut().expect("clusters");
    clusters.push(static_cluster(SECRET, 10103));
    clusters.push(static_cluster(OTHER, 10104));
    config
}

/// What every response is checked against, and the figures.
#[derive(Default)]
struct Tally {
    sent: u64,
    by_version: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
}

impl Tally {
    fn record(&mut self, what: &str, r: &Response) -> String {
        self.sent += 1;
        *self.statuses.entry(r.status).or_default() += 1;
        assert!(
            r.status < 500,
            "{what}: {} {:?}\n{}",
            r.status,
            r.headers,
            r.text()
        );
        let version = r.header("x-version").unwrap_or_default();
        assert_ne!(version, "secret", "{what}: steered to the secret cluster");
        *self.by_version.entry(version.clone()).or_default() += 1;
        version
    }
}

fn backend() -> Request {
    Request::get("/").host("backend")
}

fn send(c: &mut HttpClient, t: &mut Tally, what: &str, req: &Request) -> String {
    let r = c
        .send(req)
        .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
    t.record(what, &r)
}

fn send_full(c: &mut HttpClient, t: &mut Tally, what: &str, req: &Request) -> Response {
    let r = c
        .send(req)
        .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
    t.record(what, &r);
    r
}

#[test]
fn hostile_requests_go_where_the_rules_say_and_nowhere_else() {
    let envoy = Envoy::start(hostile_config(), &EnvoyOptions::default()).expect("Envoy starts");
    let mut c = envoy.client(10000).expect("client");
    let mut t = Tally::default();

    // Spoofed routing headers, in every spelling, for a host the rules cover
    // and for one they do not.
    type Headers = Vec<(&'static [u8], Vec<u8>)>;
    let spoofs: Vec<(&str, Headers)> = vec![
        ("plain", vec![(b"x-canary-upstream", SECRET.into())]),
        ("other case", vec![(b"X-Canary-Upstream", SECRET.into())]),
        (
            "repeated",
            vec![
                (b"x-canary-upstream", SECRET.into()),
                (b"x-canary-upstream", SECRET.into()),
            ],
        ),
        (
            "padded",
            vec![(
                b"x-canary-upstream",
                format!("  \t{SECRET} \t").into_bytes(),
            )],
        ),
        (
            "a cluster the rules produce",
            vec![(b"x-canary-upstream", V2.into())],
        ),
        ("empty", vec![(b"x-canary-upstream", Vec::new())]),
        (
            "non-UTF-8",
            vec![(
                b"x-canary-upstream",
                b"outbound|80|\xff\xfe|backend".to_vec(),
            )],
        ),
    ];
    for (what, headers) in &spoofs {
        for (host, testers) in [("backend", true), ("backend", false), ("other", false)] {
            for _ in 0..25 {
                let mut req = Request::get("/").host(host);
                for (n, v) in headers {
                    req = req.header(n, v);
                }
                if testers {
                    req = req.header("canary", "canary-tester");
                }
                let r = send_full(&mut c, &mut t, what, &req);
                let version = r.header("x-version").unwrap_or_default();
                match (host, testers) {
                    ("backend", true) => {
                        assert_eq!(version, "v2", "{what}: the testers rule");
                        assert_eq!(
                            r.header("x-canary-route").as_deref(),
                            Some("backend.default.svc.cluster.local/testers/v2")
                        );
                    }
                    ("backend", false) => {
                        assert!(version == "v1" || version == "v2", "{what}: {version}");
                        let route = r.header("x-canary-route").unwrap_or_default();
                        assert!(route.contains("/split/"), "{what}: {route}");
                    }
                    _ => {
                        assert_eq!(version, "other", "{what}: Envoy's default route");
                        assert_eq!(r.header("x-canary-route"), None);
                    }
                }
            }
        }
    }

    // Oversized values: within Envoy's 60 KiB limit they route; beyond it
    // Envoy itself answers 431 (not the filter, and not a 5xx).
    for size in [1024, 16 * 1024, 50 * 1024] {
        let req = backend()
            .header("canary", "canary-tester")
            .header("x-big", "a".repeat(size))
            .header("x-canary-upstream", SECRET);
        assert_eq!(send(&mut c, &mut t, "large header", &req), "v2");
    }
    for size in [61 * 1024, 100 * 1024] {
        let mut fresh = envoy.client(10000).expect("client");
        let req = backend().header("x-big", "a".repeat(size));
        match fresh.send(&req) {
            Ok(r) => {
                t.record("header over Envoy's limit", &r);
                assert_eq!(r.status, 431, "header over Envoy's limit");
            }
            // Envoy may reset the connection instead of answering: no 5xx either.
            Err(e) => eprintln!("header of {size} bytes: connection closed by Envoy: {e}"),
        }
    }

    // Non-UTF-8 values where the rules look: never a match of a regex or an
    // exact value, never a failure.
    for (what, req, expected) in [
        (
            "non-UTF-8 regex header",
            backend().header("x-user", b"tester-\xff1"),
            None,
        ),
        (
            "non-UTF-8 exact header",
            backend().header("canary", b"canary-tester\x80"),
            None,
        ),
        (
            "non-UTF-8 cookie",
            Request::get("/sticky")
                .host("backend")
                .header("cookie", b"user=\xc3\x28; a=\xff"),
            None,
        ),
        (
            "regex header",
            backend().header("x-user", "tester-42"),
            Some("v2"),
        ),
    ] {
        for _ in 0..10 {
            let v = send(&mut c, &mut t, what, &req);
            match expected {
                Some(e) => assert_eq!(v, e, "{what}"),
                None => assert!(v == "v1" || v == "v2", "{what}: {v}"),
            }
        }
    }

    // A huge cookie: the sticky key at its end still decides, and the same as
    // in a small cookie.
    let small = Request::get("/sticky")
        .host("backend")
        .header("cookie", "user=u-4242");
    let lone = send(&mut c, &mut t, "small cookie", &small);
    let mut crumbs: Vec<String> = (0..2000).map(|i| format!("c{i}=v{i}")).collect();
    crumbs.push("user=u-4242".into());
    let huge = Request::get("/sticky")
        .host("backend")
        .header("cookie", crumbs.join("; "))
        .header("x-canary-upstream", SECRET);
    for _ in 0..10 {
        assert_eq!(send(&mut c, &mut t, "huge cookie", &huge), lone);
    }

    // A thousand query parameters, the one the rules look at last.
    let mut query: Vec<String> = (0..1000).map(|i| format!("p{i}={i}")).collect();
    query.push("canary=1".into());
    let many = Request::get(&format!("/?{}", query.join("&")))
        .host("backend")
        .header("x-canary-upstream", SECRET);
    for _ in 0..10 {
        assert_eq!(send(&mut c, &mut t, "1000 query parameters", &many), "v2");
    }
    let r = send_full(&mut c, &mut t, "1000 query parameters", &many);
    assert_eq!(
        r.header("x-canary-route").as_deref(),
        Some("backend.default.svc.cluster.local/query/v2")
    );

    // HTTP/2 (prior-knowledge h2c) with h2load, spoofed header included.
    let addr = envoy.addr(10000).expect("listener address");
    let h2_requests: u64 = 4000;
    let before = envoy.stats().expect("stats");
    let out = Command::new("h2load")
        .args(["-n", &h2_requests.to_string(), "-c", "4", "-m", "8"])
        .args(["-H", ":authority: backend"])
        .args(["-H", &format!("x-canary-upstream: {SECRET}")])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("h2load runs (apt-get install -y nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "h2load failed:\n{text}");
    assert!(
        text.contains(&format!("{h2_requests} succeeded")),
        "h2load:\n{text}"
    );
    let after = envoy.stats().expect("stats");
    let delta = |name: &str| after.get(name) - before.get(name);
    assert_eq!(
        delta(&format!("{HCM}downstream_rq_http2_total")),
        h2_requests
    );
    let v1 = delta(&format!("cluster.{V1}.upstream_rq_total"));
    let v2 = delta(&format!("cluster.{V2}.upstream_rq_total"));
    assert_eq!(
        v1 + v2,
        h2_requests,
        "every HTTP/2 request reached v1 or v2"
    );
    assert!(v2 > 0 && v1 > v2, "a 90/10 split: v1 {v1}, v2 {v2}");
    t.sent += h2_requests;
    *t.by_version.entry("v1 (h2)".into()).or_default() += v1;
    *t.by_version.entry("v2 (h2)".into()).or_default() += v2;

    // Zero 5xx anywhere, nothing to the secret cluster, no host-call errors,
    // no panic in the log.
    let stats = envoy.stats().expect("stats");
    assert_eq!(stats.get(&format!("{HCM}downstream_rq_5xx")), 0);
    assert_eq!(stats.get(&format!("cluster.{SECRET}.upstream_rq_total")), 0);
    assert_eq!(stats.get("wasmcustom.canary_router.host_call_errors"), 0);
    let spoofed = stats.get("wasmcustom.canary_router.spoofed_header_removed");
    assert!(spoofed > 0, "spoofed headers were seen and removed");
    let http1 = stats.get(&format!("{HCM}downstream_rq_http1_total"));
    let log = std::fs::read_to_string(envoy.log_path()).unwrap_or_default();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("wasm") && (l.contains("panic") || l.contains("critical")))
        .collect();
    assert!(
        bad.is_empty(),
        "wasm panic/critical lines:\n{}",
        bad.join("\n")
    );

    let dir = repo_root().join("target/reliability");
    std::fs::create_dir_all(&dir).expect("target/reliability");
    let mut tsv = String::from("what\tvalue\n");
    tsv.push_str(&format!("requests_sent\t{}\n", t.sent));
    tsv.push_str(&format!("http1_requests\t{http1}\n"));
    tsv.push_str(&format!("http2_requests\t{h2_requests}\n"));
    tsv.push_str(&format!("spoofed_headers_removed\t{spoofed}\n"));
    tsv.push_str(&format!(
        "downstream_5xx\t{}\n",
        stats.get(&format!("{HCM}downstream_rq_5xx"))
    ));
    tsv.push_str(&format!(
        "secret_cluster_requests\t{}\n",
        stats.get(&format!("cluster.{SECRET}.upstream_rq_total"))
    ));
    tsv.push_str(&format!(
        "host_call_errors\t{}\n",
        stats.get("wasmcustom.canary_router.host_call_errors")
    ));
    for (status, n) in &t.statuses {
        tsv.push_str(&format!("status_{status}\t{n}\n"));
    }
    for (version, n) in &t.by_version {
        let version = if version.is_empty() { "none" } else { version };
        tsv.push_str(&format!("reached_{}\t{n}\n", version.replace(' ', "_")));
    }
    std::fs::write(dir.join("hostile.tsv"), tsv).expect("hostile.tsv");
}
