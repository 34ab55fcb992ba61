//! End to end, in a real Envoy: the sticky cookie the filter issues
//! (`sticky.setCookie`), for browsers that arrive with no identity.
//!
//! Two deployments, each over HTTP/1.1 and HTTP/2 (h2c, prior knowledge,
//! with `nghttp`):
//! - the sidecar: `examples/sticky/envoy.yaml` (an outbound listener of a
//!   `frontend` sidecar) with `examples/sticky/rules-cookie.json`;
//! - the ingress gateway: `examples/gateway-cookie/envoy.yaml` (a node
//!   `router~...`, the listener `0.0.0.0_8080` with route configuration
//!   `http.8080`), whose backends send a `Set-Cookie` of their own.
//!
//! 200 simulated browsers at 80/20: each first request (carrying another
//! cookie, not `canary-id`) gets exactly one `Set-Cookie: canary-id=<key>`
//! with the configured attributes, beside the upstream's own; each browser
//! then sends 4 more requests with the cookie among other cookies (in one
//! `cookie` header over HTTP/1.1, in separate `cookie` fields over HTTP/2,
//! as browsers send them) and gets no new cookie. No browser sees two
//! versions, and the share of browsers on v2 is within the binomial bound.
//! Then a new rule set ramps to 50/50: no browser on v2 is moved back, and
//! the v2 share is within the bound of one half. The gateway manifests
//! (`wasmplugin/gateway-*.yaml`) run the same, in the gateway example.

use std::collections::BTreeMap;
use std::process::Command;

use envoy_runner::{check_binomial, example_dir, Envoy, EnvoyConfig, EnvoyOptions, Request};

const BROWSERS: u64 = 200;
const LATER_REQUESTS: usize = 4;
const CLUSTERS: [&str; 2] = [
    "outbound|80|v1|backend.default.svc.cluster.local",
    "outbound|80|v2|backend.default.svc.cluster.local",
];

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Where the filter runs, and what its cookie looks like there.
struct Deployment {
    example: &'static str,
    /// The rules file replacing the example's inline rules, if any.
    rules: Option<&'static str>,
    /// The rule set of the ramp to 50/50.
    ramp: &'static str,
    host: &'static str,
    /// The listener's port as written in the example.
    port: u16,
    /// The cookie's attributes as configured.
    attributes: &'static str,
    /// The backends send `Set-Cookie: cart=backend-<version>; ...` too.
    upstream_cookie: bool,
}

const SIDECAR: Deployment = Deployment {
    example: "sticky",
    rules: Some("rules-cookie.json"),
    ramp: "rules-cookie-50-50.json",
    host: "backend",
    port: 10000,
    attributes: "; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax",
    upstream_cookie: false,
};

const GATEWAY: Deployment = Deployment {
    example: "gateway-cookie",
    rules: None,
    ramp: "rules-50-50.json",
    host: "shop.example.com",
    port: 8080,
    attributes: "; Max-Age=86400; Domain=shop.example.com; Path=/; HttpOnly; SameSite=Strict",
    upstream_cookie: true,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proto {
    Http1,
    Http2,
}

/// One response: the version that answered and its `Set-Cookie` values.
#[derive(Debug)]
struct Answer {
    version: String,
    set_cookies: Vec<String>,
}

/// The deployment's example with its rules.
fn config(d: &Deployment) -> EnvoyConfig {
    let mut config = or_panic(EnvoyConfig::from_example(d.example));
    if let Some(file) = d.rules {
        or_panic(config.set_rules_file(example_dir(d.example).join(file)));
    }
    config
}

/// One document of a manifest in `wasmplugin/`.
fn manifest(file: &str) -> serde_json::Value {
    use serde::Deserialize;
    let text = or_panic(std::fs::read_to_string(
        envoy_runner::repo_root().join("wasmplugin").join(file),
    ));
    let doc = serde_yaml_ng::Deserializer::from_str(&text)
        .next()
        .unwrap_or_else(|| panic!("{file}: empty"));
    or_panic(serde_json::Value::deserialize(doc))
}

/// The gateway example with the routing glue of `route_file` (the route
/// its EnvoyFilter inserts first) in place of its own `canary` route, and
/// the `pluginConfig` of `plugin_file` as the filter's configuration, as
/// Istio would deliver them to the gateway.
fn gateway_with_manifests(plugin_file: &str, route_file: &str) -> EnvoyConfig {
    let mut config = config(&GATEWAY);
    let route = manifest(route_file)["spec"]["configPatches"][0]["patch"]["value"].clone();
    let plugin_config = manifest(plugin_file)["spec"]["pluginConfig"].to_string();
    let hcm = &mut config.value_mut()["static_resources"]["listeners"][0]["filter_chains"][0]
        ["filters"][0]["typed_config"];
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes");
    assert_eq!(routes[0]["name"], "canary");
    routes[0] = route;
    or_panic(config.set_wasm_configuration(&plugin_config));
    config
}

/// `n` requests of one browser, each with `cookies` (none: no cookie header).
fn requests(
    envoy: &Envoy,
    d: &Deployment,
    proto: Proto,
    cookies: &[&str],
    n: usize,
) -> Vec<Answer> {
    match proto {
        Proto::Http1 => {
            let mut client = or_panic(envoy.client(d.port));
            let mut req = Request::get("/").host(d.host);
            if !cookies.is_empty() {
                req = req.header("cookie", cookies.join("; "));
            }
            (0..n)
                .map(|_| {
                    let resp = or_panic(client.send(&req));
                    assert_eq!(resp.status, 200, "{:?} {}", resp.headers, resp.text());
                    Answer {
                        version: resp.header("x-version").unwrap_or_default(),
                        set_cookies: resp.header_all("set-cookie"),
                    }
                })
                .collect()
        }
        Proto::Http2 => h2(envoy, d, cookies, n),
    }
}

/// `n` requests over one HTTP/2 connection with nghttp (h2c, prior
/// knowledge), each cookie in a `cookie` field of its own (as browsers
/// send them over HTTP/2).
fn h2(envoy: &Envoy, d: &Deployment, cookies: &[&str], n: usize) -> Vec<Answer> {
    let addr = or_panic(envoy.addr(d.port));
    let mut cmd = Command::new("nghttp");
    cmd.args(["-v", "-n", "-m", &n.to_string(), "-H"])
        .arg(format!(":authority: {}", d.host));
    for c in cookies {
        cmd.arg("-H").arg(format!("cookie: {c}"));
    }
    cmd.arg(format!("http://{addr}/"));
    let out = cmd
        .output()
        .expect("nghttp runs (apt-get install -y nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nghttp: {out:?}");
    // Received header lines: `[  0.001] recv (stream_id=13) x-version: v1`.
    let mut answers: BTreeMap<u32, Answer> = BTreeMap::new();
    let mut sent_cookies = 0;
    for line in text.lines() {
        if line.contains("] send HEADERS frame") {
            sent_cookies = 0;
        }
        if line.trim_start().starts_with("cookie: ") {
            sent_cookies += 1;
        }
        let Some(rest) = line.split_once("] recv (stream_id=").map(|(_, r)| r) else {
            continue;
        };
        let Some((id, header)) = rest.split_once(") ") else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        let a = answers.entry(id).or_insert_with(|| Answer {
            version: String::new(),
            set_cookies: Vec::new(),
        });
        if let Some(status) = header.strip_prefix(":status: ") {
            assert_eq!(status, "200", "{text}");
        } else if let Some(v) = header.strip_prefix("x-version: ") {
            a.version = v.to_string();
        } else if let Some(v) = header.strip_prefix("set-cookie: ") {
            a.set_cookies.push(v.to_string());
        }
    }
    assert_eq!(
        sent_cookies,
        cookies.len(),
        "one cookie field per cookie:\n{text}"
    );
    let answers: Vec<Answer> = answers.into_values().collect();
    assert_eq!(answers.len(), n, "{text}");
    assert!(answers.iter().all(|a| !a.version.is_empty()), "{text}");
    answers
}

/// The key of the one `canary-id` cookie among `set_cookies`, after
/// checking its form and attributes (and the upstream's own cookie).
fn issued(d: &Deployment, a: &Answer) -> String {
    let ours: Vec<&String> = a
        .set_cookies
        .iter()
        .filter(|c| c.starts_with("canary-id="))
        .collect();
    assert_eq!(ours.len(), 1, "one canary-id cookie: {a:?}");
    let (key, attributes) = ours[0]["canary-id=".len()..].split_at(22);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{a:?}"
    );
    assert_eq!(attributes, d.attributes, "{a:?}");
    if d.upstream_cookie {
        let theirs = format!("cart=backend-{}; Path=/; HttpOnly", a.version);
        assert_eq!(
            a.set_cookies,
            [theirs, ours[0].clone()],
            "the upstream's cookie stays"
        );
    } else {
        assert_eq!(a.set_cookies.len(), 1, "{a:?}");
    }
    key.to_string()
}

fn no_canary_cookie(a: &Answer) -> bool {
    !a.set_cookies.iter().any(|c| c.starts_with("canary-id="))
}

fn run(d: &Deployment, proto: Proto) {
    run_config(d, proto, config(d));
}

fn run_config(d: &Deployment, proto: Proto, config: EnvoyConfig) {
    let mut envoy = or_panic(Envoy::start(config, &EnvoyOptions::default().reloadable()));
    let what = format!("{} over {proto:?}", d.example);
    // Sticky visitors: first request, then 4 more with the cookie.
    let mut browsers: Vec<(String, String)> = Vec::new();
    let mut flipped = Vec::new();
    for b in 0..BROWSERS {
        let theme = format!("theme=t{b}");
        let first = requests(&envoy, d, proto, &[theme.as_str()], 1);
        let first = &first[0];
        let key = issued(d, first);
        let cookie = format!("canary-id={key}");
        let later = requests(
            &envoy,
            d,
            proto,
            &[theme.as_str(), cookie.as_str(), "_ga=GA1.2.345.678"],
            LATER_REQUESTS,
        );
        for a in &later {
            assert!(
                no_canary_cookie(a),
                "{what}: a returning browser got a new cookie: {a:?}"
            );
            if a.version != first.version {
                flipped.push((key.clone(), first.version.clone(), a.version.clone()));
            }
        }
        browsers.push((key, first.version.clone()));
    }
    assert!(
        flipped.is_empty(),
        "{what}: browsers that saw two versions: {flipped:?}"
    );
    let on =
        |v: &str, list: &[(String, String)]| list.iter().filter(|(_, x)| x == v).count() as u64;
    assert_eq!(
        on("v1", &browsers) + on("v2", &browsers),
        BROWSERS,
        "{what}"
    );
    let v2 = on("v2", &browsers);
    if let Err(e) = check_binomial(BROWSERS, 0.2, v2) {
        panic!("{what}: browsers on v2 at 80/20: {e}");
    }

    // The ramp: a new rule set at 50/50.
    let ramp = or_panic(std::fs::read_to_string(example_dir(d.example).join(d.ramp)));
    or_panic(envoy.reload_rules(&ramp));
    let mut after = Vec::new();
    let mut moved_back = Vec::new();
    for (key, was) in &browsers {
        let cookie = format!("canary-id={key}");
        let a = requests(&envoy, d, proto, &["theme=x", cookie.as_str()], 1).remove(0);
        assert!(no_canary_cookie(&a), "{what}: {a:?}");
        if was == "v2" && a.version != "v2" {
            moved_back.push(key.clone());
        }
        after.push((key.clone(), a.version));
    }
    assert!(
        moved_back.is_empty(),
        "{what}: moved off v2 by the ramp: {moved_back:?}"
    );
    let v2_after = on("v2", &after);
    assert!(v2_after >= v2, "{what}");
    if let Err(e) = check_binomial(BROWSERS, 0.5, v2_after) {
        panic!("{what}: browsers on v2 at 50/50: {e}");
    }

    // Every request was routed and counted; no 5xx, no failed host call.
    let stats = or_panic(envoy.stats());
    let requests_sent = BROWSERS * (2 + LATER_REQUESTS as u64);
    let served: u64 = CLUSTERS
        .iter()
        .map(|c| stats.get(&format!("cluster.{c}.upstream_rq_200")))
        .sum();
    assert_eq!(served, requests_sent, "{what}");
    let counted: BTreeMap<&str, u64> = ["v1", "v2"]
        .into_iter()
        .map(|v| {
            let service = if d.host == "backend" {
                "backend.default.svc.cluster.local"
            } else {
                d.host
            };
            let name = format!(
                "wasmcustom.canary_router.requests.service={service};.rule=split;.destination={v};"
            );
            (v, stats.get(&name))
        })
        .collect();
    assert_eq!(
        counted.values().sum::<u64>(),
        requests_sent,
        "{what}: {counted:?}"
    );
    assert_eq!(
        stats.get("wasmcustom.canary_router.passthrough"),
        0,
        "{what}"
    );
    assert_eq!(
        stats.get("wasmcustom.canary_router.host_call_errors"),
        0,
        "{what}"
    );
    envoy.stop();
}

#[test]
fn sidecar_browsers_stay_on_one_version_over_http1() {
    run(&SIDECAR, Proto::Http1);
}

#[test]
fn sidecar_browsers_stay_on_one_version_over_http2() {
    run(&SIDECAR, Proto::Http2);
}

#[test]
fn gateway_browsers_stay_on_one_version_over_http1() {
    run(&GATEWAY, Proto::Http1);
}

#[test]
fn gateway_browsers_stay_on_one_version_over_http2() {
    run(&GATEWAY, Proto::Http2);
}

/// The shipped gateway manifests (wasmplugin/gateway-*.yaml), their
/// pluginConfig and routing glue in the gateway example in place of its
/// own, route and stick the same browsers the same way.
#[test]
fn gateway_manifests_route_and_stick_browsers() {
    for (plugin, route) in [
        ("gateway-wasmplugin.yaml", "gateway-route-envoyfilter.yaml"),
        (
            "gateway-api-wasmplugin.yaml",
            "gateway-api-route-envoyfilter.yaml",
        ),
    ] {
        run_config(
            &GATEWAY,
            Proto::Http1,
            gateway_with_manifests(plugin, route),
        );
    }
}

/// The gateway example is what the tests run: its inline rules are its
/// rules.json, and Envoy runs it as a gateway (node `router~`, the route
/// configuration `http.8080`).
#[test]
fn the_gateway_example_is_shaped_like_a_gateway() {
    let config = or_panic(EnvoyConfig::from_example("gateway-cookie"));
    let inline: serde_json::Value =
        or_panic(serde_json::from_str(&or_panic(config.wasm_configuration())));
    let file: serde_json::Value = or_panic(serde_json::from_str(&or_panic(
        std::fs::read_to_string(example_dir("gateway-cookie").join("rules.json")),
    )));
    assert_eq!(
        inline, file,
        "envoy.yaml's inline rules differ from rules.json"
    );
    let v = config.value();
    assert!(v["node"]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("router~")));
    let listeners: BTreeMap<String, u16> = config.listeners().into_iter().collect();
    assert_eq!(listeners.get("0.0.0.0_8080"), Some(&8080));
    let hcm =
        &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["route_config"]["name"], "http.8080");
}

/// The sidecar's rules with the cookie `Secure`, `SameSite=None` and
/// `Partitioned` (CHIPS).
fn secure_partitioned_rules() -> String {
    let text = or_panic(std::fs::read_to_string(
        example_dir("sticky").join("rules-cookie.json"),
    ));
    let mut v: serde_json::Value = or_panic(serde_json::from_str(&text));
    let set = &mut v["services"][0]["http"][0]["sticky"]["setCookie"];
    set["secure"] = true.into();
    set["sameSite"] = "None".into();
    set["partitioned"] = true.into();
    v.to_string()
}

const LOG_LINE: &str = "Secure sticky cookie issued over http";

/// In a real Envoy: the cookie carries `Secure`, `SameSite=None` and
/// `Partitioned` as configured; each one issued to a plain-HTTP request
/// (`:scheme` http) counts in `secure_cookie_over_http`, and the warning
/// is logged once per worker VM (the dynamic module: once per
/// configuration), not per request; a request Envoy takes as
/// HTTPS (over HTTP/1.1, a downstream's `x-forwarded-proto: https`, which
/// a sidecar trusts) is not counted.
#[test]
fn a_secure_partitioned_cookie_over_http_is_counted_and_warned_once() {
    let build = envoy_runner::Build::from_env();
    let mut config = config(&SIDECAR);
    or_panic(config.set_wasm_configuration(&secure_partitioned_rules()));
    let envoy = or_panic(Envoy::start(config, &EnvoyOptions::default()));
    let over = |proto: Option<&str>, n: usize| {
        let mut client = or_panic(envoy.client(SIDECAR.port));
        for _ in 0..n {
            let mut req = Request::get("/").host(SIDECAR.host);
            if let Some(p) = proto {
                req = req.header("x-forwarded-proto", p);
            }
            let resp = or_panic(client.send(&req));
            assert_eq!(resp.status, 200);
            let cookies = resp.header_all("set-cookie");
            assert_eq!(cookies.len(), 1, "{cookies:?}");
            assert!(
                cookies[0].starts_with("canary-id=")
                    && cookies[0].ends_with(
                        "; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
                    ),
                "{cookies:?}"
            );
        }
    };
    let counted = || {
        or_panic(envoy.stats()).get(&format!(
            "{}canary_router.secure_cookie_over_http",
            build.stat_prefix()
        ))
    };
    over(Some("https"), 4);
    assert_eq!(counted(), 0, "x-forwarded-proto: https is not counted");
    over(None, 6);
    over(Some("http"), 2);
    assert_eq!(counted(), 8, "every Secure cookie issued over http counted");
    // Logged once per worker VM (2 workers; the module: once), not once per request. Envoy
    // flushes its log file every few seconds: wait for the first line (all
    // the lines written before it come with it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let lines = loop {
        let log = or_panic(std::fs::read_to_string(envoy.log_path()));
        let lines = log.lines().filter(|l| l.contains(LOG_LINE)).count();
        if lines > 0 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        (1..=EnvoyOptions::default().concurrency).contains(&lines),
        "{lines} warnings for 8 cookies:\n{}",
        envoy.log_tail(20)
    );
}
