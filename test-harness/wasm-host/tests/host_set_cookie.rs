//! The sticky cookie the filter issues (`sticky.setCookie`), in the
//! in-process host on examples/sticky/rules-cookie.json (80/20 by cookie
//! `canary-id`): a first request gets a fresh key and one `Set-Cookie`
//! beside the upstream's own, later requests bring it back and stay, any
//! other value is just a key, and nothing is issued outside the rule.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use canary_router::{Outcome, Plugin, RequestView, Workload};
use envoy_runner::{check_binomial, example_dir};
use wasm_host::{Module, Vm, VmOptions};

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
const ATTRIBUTES: &str = "; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax";

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::load(test_tools::filter_wasm()).expect("filter loads"))
}

fn rules(file: &str) -> Vec<u8> {
    std::fs::read(example_dir("sticky").join(file)).expect("rules file")
}

fn vm(file: &str, seed: u64) -> Vm {
    let mut vm = Vm::new(
        module(),
        VmOptions {
            random_seed: seed,
            ..VmOptions::default()
        },
    )
    .expect("vm");
    assert!(vm.configure(&rules(file)).unwrap(), "{:#?}", vm.logs());
    vm
}

/// One request and its response (the upstream sends `upstream_cookies`):
/// the cluster chosen and the `Set-Cookie` values of the response.
fn exchange(
    vm: &mut Vm,
    host: &str,
    cookie: Option<&str>,
    upstream_cookies: &[&str],
) -> (Option<String>, Vec<String>) {
    let mut headers = vec![(":authority", host), (":path", "/"), (":method", "GET")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    let r = vm.request(&headers).unwrap();
    let cluster = r.header("x-canary-upstream").map(str::to_string);
    let mut response = vec![(":status", "200")];
    response.extend(upstream_cookies.iter().map(|c| ("set-cookie", *c)));
    let resp = vm.respond(&r, &response).unwrap();
    (cluster, resp.headers.get_all("set-cookie"))
}

/// The key of a `Set-Cookie` value the filter issued, after checking its
/// form and attributes.
fn issued_key(value: &str) -> String {
    let rest = value
        .strip_prefix("canary-id=")
        .unwrap_or_else(|| panic!("{value}"));
    let (key, attributes) = rest.split_at(22);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{value}"
    );
    assert_eq!(attributes, ATTRIBUTES);
    key.to_string()
}

/// A request with one cookie header, for the native decision.
struct Req(String);

impl RequestView for Req {
    fn header(&self, name: &str) -> Option<&[u8]> {
        match name {
            ":authority" => Some(b"backend"),
            "cookie" => Some(self.0.as_bytes()),
            _ => None,
        }
    }
}

/// Where the native rules send a cookie header (the same hash as the .wasm's).
fn native(file: &str, cookie: &str) -> String {
    let plugin = Plugin::from_bytes(&rules(file), &Workload::default()).unwrap();
    let set = plugin.rules.unwrap().set;
    match set.decide(&Req(cookie.into()), || 0) {
        Outcome::Routed(d) => d.cluster.key().to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_first_request_gets_a_fresh_key_and_keeps_its_destination() {
    let mut vm = vm("rules-cookie.json", 11);
    let (cluster, cookies) = exchange(&mut vm, "backend", None, &["session=upstream; Path=/"]);
    // The upstream's own Set-Cookie stays, first; the filter adds one.
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert_eq!(cookies[0], "session=upstream; Path=/");
    let key = issued_key(&cookies[1]);
    let cluster = cluster.expect("routed");
    // The key hashes to the destination the first request took, natively too.
    assert_eq!(
        native("rules-cookie.json", &format!("canary-id={key}")),
        cluster
    );
    for _ in 0..4 {
        let (again, cookies) = exchange(
            &mut vm,
            "backend",
            Some(&format!("theme=dark; canary-id={key}; _ga=GA1.2.3")),
            &[],
        );
        assert_eq!(again.as_deref(), Some(cluster.as_str()));
        assert!(
            cookies.is_empty(),
            "a valid cookie gets no new one: {cookies:?}"
        );
    }
    // Two first requests get two different keys.
    let (_, other) = exchange(&mut vm, "backend", Some("theme=dark"), &[]);
    assert_ne!(issued_key(&other[0]), key);
}

#[test]
fn browsers_split_80_20_and_none_moves_back_on_a_ramp() {
    let mut vm = vm("rules-cookie.json", 5);
    let n = 2000u64;
    let mut keys = Vec::new();
    let mut on = BTreeMap::new();
    for _ in 0..n {
        let (cluster, cookies) = exchange(&mut vm, "backend", None, &[]);
        let cluster = cluster.unwrap();
        *on.entry(cluster.clone()).or_insert(0u64) += 1;
        keys.push((issued_key(&cookies[0]), cluster));
    }
    assert_eq!(on[V1] + on[V2], n, "{on:?}");
    check_binomial(n, 0.2, on[V2]).unwrap();
    // A ramp to 50/50 (a new rule set, reconfigured): nobody on v2 moves.
    assert!(vm.configure(&rules("rules-cookie-50-50.json")).unwrap());
    let mut now_v2 = 0;
    for (key, was) in &keys {
        let (now, cookies) = exchange(&mut vm, "backend", Some(&format!("canary-id={key}")), &[]);
        assert!(cookies.is_empty());
        let now = now.unwrap();
        if was == V2 {
            assert_eq!(now, V2, "key {key} moved off the canary");
        }
        now_v2 += u64::from(now == V2);
    }
    check_binomial(n, 0.5, now_v2).unwrap();
    assert_eq!(vm.metric("canary_router.host_call_errors"), Some(0));
}

#[test]
fn a_value_the_filter_did_not_issue_is_just_a_key() {
    let mut vm = vm("rules-cookie.json", 3);
    let long = format!("canary-id={}", "x".repeat(1025));
    for (cookie, issues) in [
        ("canary-id=hello", false),
        ("canary-id=\"quoted value\"", false),
        ("canary-id=%ff%00", false),
        ("canary-id=", true),
        ("canary-id", true),
        ("other=1", true),
        (long.as_str(), true),
    ] {
        let (cluster, cookies) = exchange(&mut vm, "backend", Some(cookie), &[]);
        let cluster = cluster.unwrap_or_else(|| panic!("{cookie}: not routed"));
        if issues {
            assert_eq!(cookies.len(), 1, "{cookie}: {cookies:?}");
            let key = issued_key(&cookies[0]);
            assert_eq!(
                native("rules-cookie.json", &format!("canary-id={key}")),
                cluster
            );
        } else {
            assert!(cookies.is_empty(), "{cookie}: {cookies:?}");
            assert_eq!(native("rules-cookie.json", cookie), cluster, "{cookie}");
        }
    }
    assert!(vm.failure().is_none());
}

#[test]
fn no_cookie_outside_the_rule_and_no_host_call_without_one() {
    let mut vm = vm("rules-cookie.json", 9);
    // A host no service claims: not routed, no cookie.
    let (cluster, cookies) = exchange(&mut vm, "elsewhere", None, &["a=1"]);
    assert_eq!(cluster, None);
    assert_eq!(cookies, ["a=1"]);
    // A request that brought its cookie: the response path calls nothing.
    let before = vm.host_call_count("proxy_add_header_map_value");
    let randoms = vm.host_call_count("random_get");
    exchange(&mut vm, "backend", Some("canary-id=abc"), &[]);
    assert_eq!(vm.host_call_count("proxy_add_header_map_value"), before);
    assert_eq!(vm.host_call_count("random_get"), randoms);
    // Rules that issue no cookie (the sticky example, by header): a first
    // request draws no key and its response gets no header.
    let mut plain = Vm::new(module(), VmOptions::default()).unwrap();
    assert!(plain.configure(&rules("rules.json")).unwrap());
    // (The first random split seeds the VM's generator from random_get.)
    exchange(&mut plain, "backend", None, &[]);
    let randoms = plain.host_call_count("random_get");
    let (cluster, cookies) = exchange(&mut plain, "backend", None, &[]);
    assert!(cluster.is_some());
    assert!(cookies.is_empty());
    assert_eq!(plain.host_call_count("random_get"), randoms);
    assert_eq!(plain.host_call_count("proxy_add_header_map_value"), 0);
}

#[test]
fn a_bad_set_cookie_is_refused_by_path_and_the_last_good_rules_serve() {
    let mut vm = vm("rules-cookie.json", 1);
    let good = String::from_utf8(rules("rules-cookie.json")).unwrap();
    for (from, to, message) in [
        (
            "\"sameSite\": \"Lax\"",
            "\"sameSite\": \"None\"",
            "services[0].http[0].sticky.setCookie.sameSite: `sameSite: None` needs `secure: true`",
        ),
        (
            "\"maxAge\": 604800",
            "\"maxAge\": 0",
            "services[0].http[0].sticky.setCookie.maxAge: maxAge 0 is outside 1..=34560000",
        ),
        (
            "\"cookie\": \"canary-id\"",
            "\"cookie\": \"canary/id\"",
            "services[0].http[0].sticky.cookie: `canary/id` is not a cookie name browsers accept",
        ),
    ] {
        let bad = good.replace(from, to);
        assert_ne!(bad, good, "{from}");
        vm.clear_logs();
        assert!(!vm.configure(bad.as_bytes()).unwrap(), "{to}");
        assert_eq!(vm.logs_containing(message).len(), 1, "{:#?}", vm.logs());
        let (cluster, cookies) = exchange(&mut vm, "backend", None, &[]);
        assert!(cluster.is_some());
        issued_key(&cookies[0]);
    }
}

/// examples/sticky/rules-cookie.json with `setCookie` made `Secure`,
/// `SameSite=None` and `Partitioned` (CHIPS).
fn secure_rules() -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&rules("rules-cookie.json")).expect("json");
    let set = &mut v["services"][0]["http"][0]["sticky"]["setCookie"];
    set["secure"] = true.into();
    set["sameSite"] = "None".into();
    set["partitioned"] = true.into();
    v.to_string().into_bytes()
}

/// A `Secure` cookie issued to an `http` request is counted each time and
/// warned about once per configuration; over `https` neither; the cookie
/// carries `Secure` and `Partitioned` either way.
#[test]
fn a_secure_cookie_over_http_is_counted_and_warned_once_per_configuration() {
    const STAT: &str = "canary_router.secure_cookie_over_http";
    let mut vm = Vm::new(module(), VmOptions::default()).expect("vm");
    assert!(vm.configure(&secure_rules()).unwrap(), "{:#?}", vm.logs());
    let issue = |vm: &mut Vm, scheme: &str| {
        let headers = [
            (":authority", "backend"),
            (":path", "/"),
            (":method", "GET"),
            (":scheme", scheme),
        ];
        let r = vm.request(&headers).unwrap();
        let resp = vm.respond(&r, &[(":status", "200")]).unwrap();
        let cookies = resp.headers.get_all("set-cookie");
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        assert!(
            cookies[0].ends_with(
                "; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
            ),
            "{cookies:?}"
        );
    };
    let warnings = |vm: &Vm| {
        vm.logs_containing("Secure sticky cookie issued over http")
            .len()
    };
    for _ in 0..3 {
        issue(&mut vm, "https");
    }
    assert_eq!(vm.metric(STAT), Some(0));
    assert_eq!(warnings(&vm), 0);
    for _ in 0..5 {
        issue(&mut vm, "http");
    }
    assert_eq!(vm.metric(STAT), Some(5), "every one counted");
    assert_eq!(warnings(&vm), 1, "warned once: {:#?}", vm.logs());
    // A new configuration warns again, once.
    assert!(vm.configure(&secure_rules()).unwrap());
    for _ in 0..2 {
        issue(&mut vm, "http");
    }
    assert_eq!(vm.metric(STAT), Some(7));
    assert_eq!(warnings(&vm), 2);
    // Not Secure: nothing to count.
    let mut vm = vm_plain();
    issue_plain(&mut vm);
    assert_eq!(vm.metric(STAT), Some(0));
}

fn vm_plain() -> Vm {
    vm("rules-cookie.json", 5)
}

fn issue_plain(vm: &mut Vm) {
    let headers = [
        (":authority", "backend"),
        (":path", "/"),
        (":method", "GET"),
        (":scheme", "http"),
    ];
    let r = vm.request(&headers).unwrap();
    let resp = vm.respond(&r, &[(":status", "200")]).unwrap();
    assert_eq!(resp.headers.get_all("set-cookie").len(), 1);
}
