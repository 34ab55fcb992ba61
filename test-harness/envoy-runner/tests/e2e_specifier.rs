//! The dynamic module's second placement, a route's cluster specifier, in
//! a real Envoy, side by side with Envoy's own routes built as istiod
//! builds them.
//!
//! One Envoy serves two listeners with the same virtual host (the
//! service's names and its cluster IP, as istiod writes a sidecar's):
//! - `native`: istiod's routes for a VirtualService with the walkthrough's
//!   rules (`canary: canary-tester` to v2, a failing subset behind
//!   `x-fail: 1`, the 90/10 split for requests without `x-stable`, and
//!   the default route to v1), every route with the VirtualService's retry
//!   policy (3 attempts on 503);
//! - `specifier`: istiod's route for a VirtualService whose only rule is
//!   the default route to v1 (the same retry policy), with the route's
//!   cluster replaced by canary-router's cluster specifier holding the
//!   same rules and v1 as `defaultDestination`, as an EnvoyFilter's MERGE
//!   leaves it. Its route configuration comes by file-based RDS.
//!
//! The cases: the same requests reach the same versions through both (the
//! tester, the split, what no rule routes, the cluster IP as authority);
//! a 503 from the upstream is retried as the native route retries it;
//! sticky users by header and by a cookie the client has; a source-label
//! rule of this sidecar's labels; hostile requests never get a 5xx; every refusal
//! of the extension point rejects the configuration, naming the field in
//! Envoy's log (at start-up, and over RDS, where the last good rules keep
//! serving); and an RDS update swaps the rules. These run against the
//! module whatever `CANARY_ROUTER_BUILD` says.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use envoy_runner::{
    build_filter_module, check_binomial, route_policy, Build, Envoy, EnvoyConfig, EnvoyOptions,
    HttpClient, Request, Response, Stats,
};
use serde_json::{json, Value};
use support::stats::wait_stats;

const SPECIFIER: u16 = 10000;
const NATIVE: u16 = 10990;
const FQDN: &str = "backend.default.svc.cluster.local";
/// The service's cluster IP: a virtual-host domain no rule host names.
const CLUSTER_IP: &str = "10.96.0.12";
/// Backends: each answers with its version; `fail` answers 503.
const BACKENDS: [(&str, u16); 3] = [("v1", 10101), ("v2", 10102), ("fail", 10103)];
/// The VirtualService's retry policy, on every route of both listeners.
const RETRIES: &str = r#"{"attempts": 3, "retryOn": "503"}"#;
/// The route configuration's name (a sidecar's, for port 80).
const ROUTE_CONFIG: &str = "80";
const SPECIFIER_TYPE: &str = "type.googleapis.com/envoy.extensions.router.cluster_specifiers.dynamic_modules.v3.DynamicModuleClusterSpecifier";

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn cluster(subset: &str) -> String {
    format!("outbound|80|{subset}|{FQDN}")
}

fn destination(subset: &str) -> Value {
    json!({ "host": FQDN, "subset": subset, "port": { "number": 80 } })
}

/// The walkthrough's rules: the VirtualService's `http` list but its
/// default route.
fn canary_rules() -> Value {
    json!([
        { "name": "testers",
          "match": [{ "headers": { "canary": { "exact": "canary-tester" } } }],
          "route": [{ "destination": destination("v2") }] },
        { "name": "failing",
          "match": [{ "headers": { "x-fail": { "exact": "1" } } }],
          "route": [{ "destination": destination("fail") }] },
        { "name": "split",
          "match": [{ "withoutHeaders": { "x-stable": {} } }],
          "route": [
            { "destination": destination("v1"), "weight": 90 },
            { "destination": destination("v2"), "weight": 10 } ] }
    ])
}

/// The cluster specifier's rule JSON: `http` for the route's one service,
/// v1 as its `defaultDestination`.
fn specifier_rules(http: &Value) -> Value {
    json!({ "services": [{ "hosts": [FQDN], "defaultDestination": destination("v1"), "http": http }] })
}

/// `http` with the VirtualService's retry policy on every rule.
fn with_retries(http: &Value) -> Value {
    let retries: Value = or_panic(serde_json::from_str(RETRIES));
    let mut http = http.clone();
    for rule in http.as_array_mut().into_iter().flatten() {
        rule["retries"] = retries.clone();
    }
    http
}

/// istiod's routes for a VirtualService `http` list on port 80.
fn istiod_routes(http: &Value) -> Vec<Value> {
    let cluster = |d: &Value| {
        format!(
            "outbound|{}|{}|{}",
            d["port"]["number"],
            d["subset"].as_str().unwrap_or_default(),
            d["host"].as_str().unwrap_or_default()
        )
    };
    or_panic(route_policy::routes(http, "backend", 80, &cluster))
}

/// The virtual host istiod writes for the service on port 80.
fn virtual_host(routes: Vec<Value>) -> Value {
    let mut domains = Vec::new();
    for name in [
        FQDN,
        "backend.default.svc",
        "backend.default",
        "backend",
        CLUSTER_IP,
    ] {
        domains.push(json!(name));
        domains.push(json!(format!("{name}:80")));
    }
    json!({ "name": format!("{FQDN}:80"), "domains": domains, "routes": routes })
}

/// The specifier's route configuration: istiod's default route (to v1,
/// with the retry policy), its cluster replaced by the cluster specifier
/// holding `rules`, as an EnvoyFilter's MERGE of
/// `route.inline_cluster_specifier_plugin` leaves it.
fn specifier_route_config(rules: &Value) -> Value {
    let default = with_retries(
        &json!([{ "name": "default", "route": [{ "destination": destination("v1") }] }]),
    );
    let mut routes = istiod_routes(&default);
    let action = &mut routes[0]["route"];
    assert_eq!(action["cluster"], json!(cluster("v1")), "{action}");
    if let Some(a) = action.as_object_mut() {
        a.remove("cluster");
    }
    action["inline_cluster_specifier_plugin"] = json!({ "extension": {
        "name": "canary-router",
        "typed_config": {
            "@type": SPECIFIER_TYPE,
            "dynamic_module_config": { "module": { "local": { "filename": or_panic(build_filter_module()) } } },
            "specifier_name": "canary-router",
            "specifier_config": { "@type": envoy_runner::STRING_VALUE_TYPE, "value": rules.to_string() }
        }
    }});
    json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG,
        "virtual_hosts": [virtual_host(routes)]
    })
}

fn hcm(name: &str, routes: Value) -> Value {
    let mut typed = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "normalize_path": true,
        "http_filters": [{ "name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }]
    });
    if let (Some(t), Some(r)) = (typed.as_object_mut(), routes.as_object()) {
        t.extend(r.clone());
    }
    json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": typed })
}

fn listener(name: &str, port: u16, routes: Value) -> Value {
    json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [{ "filters": [hcm(name, routes)] }]
    })
}

/// A backend answering `status` with `x-version: <version>`.
fn backend(version: &str, port: u16, status: u16) -> Value {
    let vhost = json!([{ "name": version, "domains": ["*"], "routes": [{
        "match": { "prefix": "/" },
        "direct_response": { "status": status, "body": { "inline_string": format!("backend {version}\n") } },
        "response_headers_to_add": [{ "header": { "key": "x-version", "value": version } }] }] }]);
    listener(
        &format!("backend_{version}"),
        port,
        json!({ "route_config": { "virtual_hosts": vhost } }),
    )
}

/// A directory of this test's own for the RDS file.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "canary-specifier-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    or_panic(std::fs::create_dir_all(&dir));
    dir
}

/// The running Envoy and its RDS file.
struct Setup {
    envoy: Envoy,
    dir: PathBuf,
    version: u64,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes the RDS file (atomically: Envoy watches the directory).
fn write_rds(dir: &std::path::Path, version: u64, route_config: &Value) {
    let doc = json!({ "version_info": version.to_string(), "resources": [route_config] });
    let tmp = dir.join("rds.tmp");
    or_panic(std::fs::write(&tmp, doc.to_string()));
    or_panic(std::fs::rename(&tmp, dir.join("rds.json")));
}

fn bootstrap(dir: &std::path::Path) -> EnvoyConfig {
    let native = virtual_host(istiod_routes(&with_retries(&{
        let mut http = canary_rules();
        if let Some(list) = http.as_array_mut() {
            list.push(
                json!({ "name": "default", "route": [{ "destination": destination("v1") }] }),
            );
        }
        http
    })));
    let rds = json!({ "rds": {
        "route_config_name": ROUTE_CONFIG,
        "config_source": { "resource_api_version": "V3", "path_config_source": {
            "path": dir.join("rds.json"), "watched_directory": { "path": dir } } } } });
    let mut listeners = vec![
        listener("specifier", SPECIFIER, rds),
        listener(
            "native",
            NATIVE,
            json!({ "route_config": { "name": ROUTE_CONFIG, "virtual_hosts": [native] } }),
        ),
    ];
    let mut clusters = Vec::new();
    for (version, port) in BACKENDS {
        listeners.push(backend(
            version,
            port,
            if version == "fail" { 503 } else { 200 },
        ));
        clusters.push(json!({
            "name": cluster(version), "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": { "cluster_name": cluster(version), "endpoints": [{ "lb_endpoints": [{
                "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } } } }] }] }
        }));
    }
    let doc = json!({
        // The module reads the workload from the environment, which the
        // runner sets from this metadata (Build::Module).
        "node": { "id": "sidecar~127.0.0.1~frontend-v2.default~default.svc.cluster.local", "cluster": "frontend.default",
                  "metadata": { "NAMESPACE": "default", "LABELS": { "app": "frontend", "version": "v2" } } },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 9901 } } },
        "static_resources": { "listeners": listeners, "clusters": clusters }
    });
    or_panic(EnvoyConfig::from_yaml_str(
        &doc.to_string(),
        "e2e_specifier",
    ))
}

fn options() -> EnvoyOptions {
    EnvoyOptions {
        ready_timeout: Duration::from_secs(30),
        ..EnvoyOptions::default()
    }
    .build(Build::Module)
    .without_access_logs()
    .args(["--file-flush-interval-msec", "50"])
}

/// Starts the Envoy with `rules` at the specifier.
fn start(rules: &Value) -> Setup {
    let dir = scratch();
    write_rds(&dir, 1, &specifier_route_config(rules));
    let envoy = or_panic(Envoy::start(bootstrap(&dir), &options()));
    let setup = Setup {
        envoy,
        dir,
        version: 1,
    };
    wait_stats(
        &setup.envoy,
        "the first RDS update",
        Duration::from_secs(20),
        |s| s.get(&rds_stat("update_success")) >= 1,
    );
    setup
}

fn rds_stat(which: &str) -> String {
    format!("http.specifier.rds.{ROUTE_CONFIG}.{which}")
}

impl Setup {
    /// Pushes `rules` by RDS; whether Envoy took them (false: rejected).
    fn push(&mut self, rules: &Value) -> bool {
        let before = or_panic(self.envoy.stats());
        self.version += 1;
        write_rds(&self.dir, self.version, &specifier_route_config(rules));
        let (ok, rejected) = (rds_stat("update_success"), rds_stat("update_rejected"));
        let after = wait_stats(
            &self.envoy,
            "the RDS update",
            Duration::from_secs(30),
            |s| s.get(&ok) > before.get(&ok) || s.get(&rejected) > before.get(&rejected),
        );
        after.get(&ok) > before.get(&ok)
    }

    fn client(&self, port: u16) -> HttpClient {
        or_panic(self.envoy.client(port))
    }

    fn log(&self) -> String {
        or_panic(std::fs::read_to_string(self.envoy.log_path()))
    }

    /// Waits (at most 5 s) for Envoy's log to hold `line`.
    fn wait_log(&self, line: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.log().contains(line) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

fn get(host: &str) -> Request {
    Request::get("/").host(host)
}

/// The version that answered (`x-version`), or `<status>` when none did.
fn version(r: &Response) -> String {
    match r.header("x-version") {
        Some(v) if r.status == 200 => v,
        _ => format!("<{}>", r.status),
    }
}

/// Sends `req` `n` times; the versions that answered.
fn split(c: &mut HttpClient, req: &Request, n: usize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        *out.entry(version(&or_panic(c.send(req)))).or_default() += 1;
    }
    out
}

fn assert_share(counts: &BTreeMap<String, u64>, v2: f64, what: &str) {
    let n: u64 = counts.values().sum();
    let others: u64 = counts
        .iter()
        .filter(|(k, _)| *k != "v1" && *k != "v2")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(others, 0, "{what}: {counts:?}");
    if let Err(e) = check_binomial(n, v2, counts.get("v2").copied().unwrap_or(0)) {
        panic!("{what}: {counts:?}: {e}");
    }
}

fn delta(before: &Stats, after: &Stats, name: &str) -> u64 {
    after.get(name).saturating_sub(before.get(name))
}

/// The specifier's counter of one destination.
fn counter(rule: &str, dest: &str) -> String {
    format!("dynamicmodulescustom.canary_router.requests.service={FQDN};.rule={rule};.destination={dest};")
}

const PASSTHROUGH: &str = "dynamicmodulescustom.canary_router.passthrough";

#[test]
fn the_same_requests_reach_the_same_versions_as_istiods_routes() {
    let s = start(&specifier_rules(&canary_rules()));
    let (mut spec, mut native) = (s.client(SPECIFIER), s.client(NATIVE));
    let before = or_panic(s.envoy.stats());
    let mut cases: Vec<(String, Request, Option<&str>)> = Vec::new();
    for host in ["backend", FQDN, "backend:80", CLUSTER_IP, "10.96.0.12:80"] {
        cases.push((
            format!("{host}: tester"),
            get(host).header("canary", "canary-tester"),
            Some("v2"),
        ));
        cases.push((
            format!("{host}: no rule (x-stable)"),
            get(host).header("x-stable", "1"),
            Some("v1"),
        ));
        cases.push((format!("{host}: the split"), get(host), None));
    }
    const N: usize = 1000;
    for (what, req, only) in &cases {
        let n = if only.is_some() { 50 } else { N };
        let (a, b) = (split(&mut spec, req, n), split(&mut native, req, n));
        match only {
            Some(v) => {
                let want = BTreeMap::from([(v.to_string(), n as u64)]);
                assert_eq!(a, want, "specifier, {what}");
                assert_eq!(b, want, "native, {what}");
            }
            None => {
                assert_share(&a, 0.1, &format!("specifier, {what}"));
                assert_share(&b, 0.1, &format!("native, {what}"));
            }
        }
    }
    // Counted as the HTTP filter counts: by destination, and what no rule
    // routed as passthrough (it went to the defaultDestination).
    let after = or_panic(s.envoy.stats());
    assert_eq!(delta(&before, &after, &counter("testers", "v2")), 5 * 50);
    assert_eq!(delta(&before, &after, PASSTHROUGH), 5 * 50);
    let split_counted = delta(&before, &after, &counter("split", "v1"))
        + delta(&before, &after, &counter("split", "v2"));
    assert_eq!(split_counted, 5 * N as u64);
    assert_eq!(after.get("dynamicmodulescustom.canary_router.weight.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;"), 1000);
    assert_eq!(after.get("http.specifier.no_cluster"), 0);
    assert_eq!(after.get("http.specifier.downstream_rq_5xx"), 0);
}

#[test]
fn a_503_from_the_upstream_is_retried_as_the_native_route_retries_it() {
    let s = start(&specifier_rules(&canary_rules()));
    let attempts = "http.backend_fail.downstream_rq_total";
    const N: u64 = 20;
    let mut per_request = Vec::new();
    for port in [NATIVE, SPECIFIER] {
        let mut c = s.client(port);
        let before = or_panic(s.envoy.stats());
        for _ in 0..N {
            let r = or_panic(c.send(&get("backend").header("x-fail", "1")));
            assert_eq!(
                (r.status, r.header("x-version").as_deref()),
                (503, Some("fail"))
            );
        }
        let after = wait_stats(
            &s.envoy,
            "the failing backend's count",
            Duration::from_secs(5),
            |st| st.get(attempts) >= before.get(attempts) + N,
        );
        per_request.push(delta(&before, &after, attempts) as f64 / N as f64);
    }
    // The VirtualService's 3 attempts on 503: 4 tries a request, through both.
    assert_eq!(
        per_request,
        [4.0, 4.0],
        "tries per request, native then specifier"
    );
}

/// Sends each of `users` users' request (`request(u)`) `tries` times,
/// asserts that every user sees one version, and counts users per version.
fn users_per_version(
    c: &mut HttpClient,
    users: usize,
    tries: usize,
    request: impl Fn(usize) -> Request,
) -> BTreeMap<String, u64> {
    let mut per_version = BTreeMap::new();
    for u in 0..users {
        let req = request(u);
        let seen: BTreeSet<String> = (0..tries)
            .map(|_| version(&or_panic(c.send(&req))))
            .collect();
        assert_eq!(seen.len(), 1, "user {u} saw {seen:?}");
        *per_version
            .entry(seen.into_iter().next().unwrap_or_default())
            .or_insert(0) += 1;
    }
    per_version
}

#[test]
fn sticky_users_keep_one_version_and_split_ninety_ten() {
    let mut http = canary_rules();
    http[2]["sticky"] = json!({ "header": "x-user-id" });
    let s = start(&specifier_rules(&http));
    let mut c = s.client(SPECIFIER);
    let users = users_per_version(&mut c, 400, 4, |u| {
        get("backend").header("x-user-id", format!("user-{u}"))
    });
    assert_share(&users, 0.1, "users per version");
    // The tester rule comes first, whoever the user is.
    let tester = get("backend")
        .header("x-user-id", "user-1")
        .header("canary", "canary-tester");
    assert_eq!(
        split(&mut c, &tester, 20),
        BTreeMap::from([("v2".to_string(), 20)])
    );
}

#[test]
fn sticky_by_a_cookie_the_client_has_and_source_labels_work() {
    let mut http = canary_rules();
    http[2]["sticky"] = json!({ "cookie": "user" });
    // This sidecar is app=frontend, version=v2: the first rule is not its,
    // the second is.
    let mut all = vec![
        json!({ "name": "from-v1", "match": [{ "sourceLabels": { "version": "v1" } }],
                "route": [{ "destination": destination("v1") }] }),
        json!({ "name": "from-v2", "match": [{ "sourceLabels": { "app": "frontend", "version": "v2" }, "headers": { "x-from": { "exact": "1" } } }],
                "route": [{ "destination": destination("v2") }] }),
    ];
    all.extend(http.as_array().cloned().unwrap_or_default());
    let s = start(&specifier_rules(&Value::Array(all)));
    let mut c = s.client(SPECIFIER);
    let users = users_per_version(&mut c, 300, 3, |u| {
        get("backend").header("cookie", format!("a=1; user=u-{u}; b=2"))
    });
    assert_share(&users, 0.1, "cookie users per version");
    assert_eq!(
        split(&mut c, &get("backend").header("x-from", "1"), 50),
        BTreeMap::from([("v2".to_string(), 50)]),
        "the rule of this sidecar's labels"
    );
    let stats = or_panic(s.envoy.stats());
    assert_eq!(stats.get(&counter("from-v1", "v1")), 0);
    assert_eq!(stats.get(&counter("from-v2", "v2")), 50);
}

#[test]
fn hostile_requests_never_get_a_5xx() {
    let s = start(&specifier_rules(&canary_rules()));
    let mut c = s.client(SPECIFIER);
    let mut many = get("backend");
    // Envoy's limit is 100 headers; the module lists 32 in place, more on the heap.
    for i in 0..90 {
        many = many.header(format!("x-h-{i}"), format!("value-{i}"));
    }
    let many_tester = many.clone().header("canary", "canary-tester");
    let cases: Vec<(&str, Request, Option<&str>)> = vec![
        (
            "a 50 KiB header",
            get("backend").header("x-big", "a".repeat(50 * 1024)),
            None,
        ),
        (
            "a 50 KiB tester",
            get("backend")
                .header("canary", "canary-tester")
                .header("x-big", "b".repeat(50 * 1024)),
            Some("v2"),
        ),
        ("90 headers", many, None),
        ("90 headers, the tester last", many_tester, Some("v2")),
        (
            "non-UTF-8 value",
            get("backend").header("canary", b"canary-tester\xff"),
            None,
        ),
        (
            "a non-UTF-8 header",
            get("backend").header("x-u", b"\xc3\x28"),
            None,
        ),
        (
            "a spoofed route header",
            get("backend").header("x-canary-upstream", cluster("fail")),
            None,
        ),
        (
            "an upper-case authority",
            get("BACKEND.Default.SVC.cluster.local"),
            None,
        ),
        (
            "a repeated tester header",
            get("backend")
                .header("canary", "x")
                .header("canary", "canary-tester"),
            Some("v2"),
        ),
        (
            "a long path",
            Request::get(&format!("/{}", "p/".repeat(2000))).host("backend"),
            None,
        ),
        (
            "a thousand query parameters",
            Request::get(&format!(
                "/?{}",
                (0..1000)
                    .map(|i| format!("q{i}=v"))
                    .collect::<Vec<_>>()
                    .join("&")
            ))
            .host("backend"),
            None,
        ),
    ];
    for (what, req, only) in &cases {
        for _ in 0..20 {
            let r = or_panic(c.send(req));
            let v = version(&r);
            match only {
                Some(want) => assert_eq!(v, *want, "{what}"),
                None => assert!(v == "v1" || v == "v2", "{what}: {v} (status {})", r.status),
            }
        }
    }
    let stats = or_panic(s.envoy.stats());
    assert_eq!(stats.get("http.specifier.downstream_rq_5xx"), 0);
    assert_eq!(
        stats.get("dynamicmodulescustom.canary_router.host_call_errors"),
        0
    );
    let log = s.log();
    assert!(!log.contains("panic"), "a panic in Envoy's log");
}

/// Rule sets the extension point cannot serve, and the line each refusal
/// logs.
fn refused() -> Vec<(Value, &'static str)> {
    let with = |i: usize, field: &str, v: Value| {
        let mut http = canary_rules();
        http[i][field] = v;
        specifier_rules(&http)
    };
    let mut guard = canary_rules();
    guard[2]["route"][1]["guard"] =
        json!({ "maxErrorRate": 0.5, "minRequests": 20, "interval": "10s" });
    let mut no_default = specifier_rules(&canary_rules());
    if let Some(s) = no_default["services"][0].as_object_mut() {
        s.remove("defaultDestination");
    }
    let mut two = specifier_rules(&canary_rules());
    if let Some(services) = two["services"].as_array_mut() {
        services.push(json!({ "hosts": ["other"], "http": [{ "route": [{ "destination": { "host": "other" } }] }] }));
    }
    let mut debug = specifier_rules(&canary_rules());
    debug["debugHeader"] = json!("x-canary-route");
    vec![
        (
            two,
            "services: the cluster specifier takes exactly one service, the route's (found 2)",
        ),
        (
            no_default,
            "services[0].defaultDestination: required at the cluster specifier",
        ),
        (
            with(2, "sticky", json!({ "cookie": "user", "setCookie": {} })),
            "services[0].http[2].sticky.setCookie: not at the cluster specifier",
        ),
        (
            specifier_rules(&guard),
            "services[0].http[2].route[1].guard: not at the cluster specifier",
        ),
        (debug, "debugHeader: not at the cluster specifier"),
        (
            with(
                2,
                "ramp",
                json!({ "canary": "v2", "start": "2026-01-01T00:00:00Z", "steps": [{ "setWeight": 50 }] }),
            ),
            "services[0].http[2].ramp: not at the cluster specifier",
        ),
        (
            json!({ "ruleSource": { "cluster": "rules", "path": "/rules.json" } }),
            "ruleSource: not at the cluster specifier",
        ),
        (
            with(0, "timeout", json!("5s")),
            "services[0].http[0].timeout: not at the cluster specifier",
        ),
        (
            with(2, "route", json!([])),
            "services[0].http[2].route: must not be empty",
        ),
    ]
}

#[test]
fn a_refused_rule_set_names_its_field_and_the_last_good_one_keeps_serving() {
    // At start-up: Envoy refuses the configuration and exits 1.
    let (rules, line) = &refused()[1];
    let dir = scratch();
    write_rds(&dir, 1, &specifier_route_config(rules));
    let mut config = bootstrap(&dir);
    // Inline, as a static route: the bootstrap itself is refused.
    let mut inline = specifier_route_config(rules);
    if let Some(r) = inline.as_object_mut() {
        r.remove("@type");
    }
    let hcm = &mut config.value_mut()["static_resources"]["listeners"][0]["filter_chains"][0]
        ["filters"][0]["typed_config"];
    if let Some(t) = hcm.as_object_mut() {
        t.remove("rds");
        t.insert("route_config".into(), inline);
    }
    let err = match Envoy::start(config, &options()) {
        Ok(_) => panic!("Envoy started with {rules}"),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.contains("Envoy exited early: exit status: 1"), "{err}");
    assert!(
        err.contains(&format!(
            "canary-router: cluster specifier configuration rejected: {line}"
        )),
        "{err}"
    );

    // Over RDS: each refused update names its field, and the rules in
    // force keep routing (the tester to v2, the split, no 503).
    let mut s = start(&specifier_rules(&canary_rules()));
    for (rules, line) in refused() {
        assert!(!s.push(&rules), "Envoy took {rules}");
        let want = format!("canary-router: cluster specifier configuration rejected: {line}");
        assert!(
            s.wait_log(&want),
            "no {want:?} in Envoy's log:\n{}",
            s.envoy.log_tail(20)
        );
        let mut c = s.client(SPECIFIER);
        assert_eq!(
            split(
                &mut c,
                &get("backend").header("canary", "canary-tester"),
                10
            ),
            BTreeMap::from([("v2".to_string(), 10)])
        );
        let rest = split(&mut c, &get("backend"), 100);
        assert!(
            rest.keys().all(|k| k == "v1" || k == "v2"),
            "{line}: {rest:?}"
        );
    }
    // Envoy's own line for each: the update rejected, the cause.
    let envoys = s
        .log()
        .matches("config update rejected: Failed to create cluster specifier config")
        .count();
    assert_eq!(envoys, refused().len(), "{}", s.envoy.log_tail(20));
}

#[test]
fn a_route_configuration_update_swaps_the_rules() {
    let mut s = start(&specifier_rules(&canary_rules()));
    let mut c = s.client(SPECIFIER);
    assert_share(&split(&mut c, &get("backend"), 1000), 0.1, "90/10");
    // The split to 0/100, the tester rule gone: every request to v2.
    let mut http = canary_rules();
    http[2]["route"][0]["weight"] = json!(0);
    http[2]["route"][1]["weight"] = json!(100);
    let http = json!([http[2].clone()]);
    assert!(s.push(&specifier_rules(&http)));
    let mut c = s.client(SPECIFIER);
    assert_eq!(
        split(&mut c, &get("backend"), 200),
        BTreeMap::from([("v2".to_string(), 200)])
    );
    // What no rule routes still goes to the defaultDestination.
    assert_eq!(
        split(&mut c, &get("backend").header("x-stable", "1"), 50),
        BTreeMap::from([("v1".to_string(), 50)])
    );
    assert_eq!(
        split(
            &mut c,
            &get("backend").header("canary", "canary-tester"),
            50
        ),
        BTreeMap::from([("v2".to_string(), 50)])
    );
}
