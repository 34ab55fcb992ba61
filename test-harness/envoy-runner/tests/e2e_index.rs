//! A large rule set in a real Envoy: every request goes where the rules say.
//!
//! The rule set is big enough for the per-service rule index: exact-header
//! rules on several names (one of them a pseudo-header), two-header rules,
//! uri prefix and exact rules, and unindexed rules (a regex, a method rule)
//! between them, then a split. Requests mix those headers, some repeated
//! (any one value may match, as in Envoy 1.40), some in upper case on the wire. The
//! filter's debug header names the rule that routed each request; it must
//! be the first rule whose conditions hold, as an oracle written from the
//! VirtualService semantics alone decides (and the native `RuleSet::decide`
//! must agree), and the response must come from that rule's version.

use canary_router::adapters::proxy_wasm::pairs::{serialize, Pairs};
use canary_router::domain::pick::Rng;
use canary_router::{Outcome, Plugin, Workload};
use envoy_runner::{Envoy, EnvoyConfig, EnvoyOptions, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const USERS: usize = 150;
const TENANTS: usize = 30;
const PREFIXES: usize = 20;

fn dest(subset: &str) -> Value {
    json!([{ "destination": { "host": "backend", "subset": subset, "port": { "number": 80 } } }])
}

fn subset(i: usize) -> &'static str {
    if i.is_multiple_of(3) {
        "v2"
    } else {
        "v1"
    }
}

/// The headers a rule can look at, as Envoy hands them to the filter.
struct Seen<'a> {
    method: &'a str,
    path: &'a str,
    /// Lower-case names, in order, repeats included.
    headers: &'a [(String, String)],
}

impl Seen<'_> {
    /// Whether any value of a header satisfies `f`, as Envoy 1.40's header
    /// matcher (and so Istio's translation) matches a repeated header.
    fn any(&self, name: &str, f: impl Fn(&str) -> bool) -> bool {
        self.headers.iter().any(|(n, v)| n == name && f(v))
    }
}

type Predicate = Box<dyn Fn(&Seen<'_>) -> bool>;

/// The rule set as JSON, and beside each rule's name a predicate written
/// from the VirtualService semantics alone: the oracle this test checks
/// Envoy against.
fn rules() -> (String, Vec<(String, Predicate)>) {
    let mut http = Vec::new();
    let mut oracle: Vec<(String, Predicate)> = Vec::new();
    for i in 0..USERS {
        if i % 50 == 25 {
            let name = format!("vip-{i}");
            http.push(json!({ "name": name,
                "match": [{ "headers": { "x-user": { "regex": "vip-[0-9]+" } } }],
                "route": dest(subset(i + 1)) }));
            oracle.push((
                name,
                Box::new(|s| {
                    s.any("x-user", |u| {
                        u.strip_prefix("vip-")
                            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    })
                }),
            ));
        }
        let name = format!("user-{i}");
        http.push(json!({ "name": name,
            "match": [{ "headers": { "x-user": { "exact": name } } }],
            "route": dest(subset(i)) }));
        let value = name.clone();
        oracle.push((name, Box::new(move |s| s.any("x-user", |u| u == value))));
    }
    for j in 0..TENANTS {
        let name = format!("tenant-{j}");
        http.push(json!({ "name": name,
            "match": [{ "headers": { "x-tenant": { "exact": format!("t-{j}") },
                                     "x-region": { "exact": "eu" } } }],
            "route": dest(subset(j)) }));
        let tenant = format!("t-{j}");
        oracle.push((
            name,
            Box::new(move |s| {
                s.any("x-tenant", |t| t == tenant) && s.any("x-region", |r| r == "eu")
            }),
        ));
    }
    http.push(json!({ "name": "post-b1",
        "match": [{ "method": { "exact": "POST" }, "headers": { "x-build": { "exact": "b1" } } }],
        "route": dest("v2") }));
    oracle.push((
        "post-b1".into(),
        Box::new(|s| s.method == "POST" && s.any("x-build", |b| b == "b1")),
    ));
    http.push(json!({ "name": "delete",
        "match": [{ "headers": { ":method": { "exact": "DELETE" } } }],
        "route": dest("v2") }));
    oracle.push(("delete".into(), Box::new(|s| s.method == "DELETE")));
    for k in 0..PREFIXES {
        let name = format!("prefix-{k}");
        http.push(json!({ "name": name,
            "match": [{ "uri": { "prefix": format!("/p-{k}/") } }, { "uri": { "exact": format!("/exact-{k}") } }],
            "route": dest(subset(k + 1)) }));
        let (prefix, exact) = (format!("/p-{k}/"), format!("/exact-{k}"));
        oracle.push((
            name,
            Box::new(move |s| s.path.starts_with(&prefix) || s.path == exact),
        ));
    }
    http.push(json!({ "name": "split", "route": [
        { "destination": { "host": "backend", "subset": "v1", "port": { "number": 80 } }, "weight": 50 },
        { "destination": { "host": "backend", "subset": "v2", "port": { "number": 80 } }, "weight": 50 }] }));
    oracle.push(("split".into(), Box::new(|_| true)));
    let json = json!({
        "debugHeader": "x-canary-route",
        "namespace": "default",
        "services": [{ "hosts": ["backend"], "http": http }],
    });
    (json.to_string(), oracle)
}

/// The filter's own seeded generator, so a failure repeats.
struct Gen(Rng);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One request: method, path, and headers as sent (name case included).
fn request(g: &mut Gen) -> (String, String, Vec<(String, String)>) {
    let method = ["GET", "GET", "POST", "DELETE"][g.below(4)].to_string();
    let path = match g.below(5) {
        0 => format!("/p-{}/x", g.below(PREFIXES + 3)),
        1 => format!("/exact-{}", g.below(PREFIXES + 3)),
        2 => format!("/p-{}", g.below(PREFIXES)),
        _ => "/".to_string(),
    };
    let mut headers = Vec::new();
    let user = |g: &mut Gen| match g.below(10) {
        0 => format!("vip-{}", g.below(100)),
        1 => format!("USER-{}", g.below(USERS)),
        _ => format!("user-{}", g.below(USERS + 20)),
    };
    if g.chance(70) {
        let name = if g.chance(20) { "X-User" } else { "x-user" };
        headers.push((name.to_string(), user(g)));
    }
    if g.chance(40) {
        headers.push(("x-tenant".into(), format!("t-{}", g.below(TENANTS + 5))));
    }
    if g.chance(50) {
        headers.push(("x-region".into(), ["eu", "us"][g.below(2)].into()));
    }
    if g.chance(30) {
        headers.push(("x-build".into(), ["b1", "b2"][g.below(2)].into()));
    }
    if g.chance(25) {
        // A second x-user (or x-region): any one value may match.
        let second = if g.chance(50) {
            ("x-user".to_string(), user(g))
        } else {
            ("x-region".to_string(), "eu".to_string())
        };
        headers.push(second);
    }
    (method, path, headers)
}

#[test]
fn a_large_indexed_rule_set_routes_in_envoy_as_the_rules_say() {
    let (rules, oracle) = rules();
    let plugin = Plugin::from_bytes(rules.as_bytes(), &Workload::default()).expect("rules compile");
    let set = plugin.rules.expect("rules").set;
    let service = &set.services()[0];
    assert_eq!(service.rules.len(), oracle.len());

    let mut config = EnvoyConfig::from_example("header-override").expect("the example");
    config.set_wasm_configuration(&rules).expect("rules");
    let envoy = Envoy::start(config, &EnvoyOptions::default()).expect("Envoy starts");
    let mut client = envoy.client(10000).expect("client");

    let mut g = Gen(Rng::new(0x1de5));
    let mut by_kind = BTreeMap::<String, usize>::new();
    for n in 0..800 {
        let (method, path, headers) = request(&mut g);
        let what = format!("request {n}: {method} {path} {headers:?}");
        let mut req = Request::get(&path).host("backend");
        req.method = method.clone();
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        // Envoy lower-cases names and keeps repeats in order.
        let lower: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        let seen = Seen {
            method: &method,
            path: &path,
            headers: &lower,
        };
        let (want, _) = oracle
            .iter()
            .find(|(_, p)| p(&seen))
            .expect("the rule set ends in a split");

        // The native decision agrees with the oracle ...
        let mut view: Vec<(&[u8], &[u8])> = vec![
            (b":authority", b"backend"),
            (b":path", path.as_bytes()),
            (b":method", method.as_bytes()),
            (b":scheme", b"http"),
        ];
        view.extend(lower.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let buf = serialize(view);
        let pairs = Pairs::parse(&buf).expect("pairs");
        let Outcome::Routed(native) = set.decide(&pairs, || 0) else {
            panic!("{what}: not routed natively");
        };
        assert_eq!(&*service.rules[native.rule].name, want, "{what}: natively");

        // ... and so does the filter in Envoy.
        let r = client
            .send(&req)
            .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
        assert_eq!(r.status, 200, "{what}");
        let route = r.header("x-canary-route").unwrap_or_default();
        let mut parts = route.split('/');
        let (svc, rule, label) = (parts.next(), parts.next(), parts.next());
        assert_eq!(svc, Some(&*service.name), "{what}: {route}");
        assert_eq!(rule, Some(want.as_str()), "{what}: {route}");
        let version = r.header("x-version").unwrap_or_default();
        assert_eq!(label, Some(version.as_str()), "{what}: {route}");
        let rule = &service.rules[native.rule];
        if rule.route.destinations.len() == 1 {
            let lone = set.dests(&rule.route).next().expect("a destination");
            assert_eq!(version, lone.label, "{what}");
        }
        let kind = want.split('-').next().unwrap_or_default();
        *by_kind.entry(kind.into()).or_default() += 1;
    }
    // Every kind of rule routed some of the traffic.
    for kind in ["user", "vip", "tenant", "post", "delete", "prefix", "split"] {
        assert!(
            by_kind.get(kind).copied().unwrap_or(0) >= 5,
            "{kind} rules routed too little: {by_kind:?}"
        );
    }
    let stats = envoy.stats().expect("stats");
    assert_eq!(stats.get("wasmcustom.canary_router.host_call_errors"), 0);
}
