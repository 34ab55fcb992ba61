//! Envoy is the oracle of every match semantic. One real Envoy serves two
//! listeners: one runs canary-router on the rules, the other Envoy's own
//! routes for the same rules, translated as istiod translates a
//! VirtualService (`envoy_runner::native`). Every request is
//! sent to both and must reach the same rule through both, or neither.
//!
//! Each rule has one destination, a cluster named after the rule, so the
//! destination names the rule: canary-router's listener answers with the
//! route header the filter wrote (and its debug header must agree), the
//! native listener with the name of the route that matched; `none` when
//! nothing matched (canary-router passes the request through).
//!
//! The rule sets are a fixed table, one per semantic, and seeded random
//! sets over the same pools of values (`ORACLE_SEED` repeats a run; the seed
//! is printed on failure).

use canary_router::domain::pick::Rng;
use envoy_runner::{native, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request};
use serde_json::{json, Value};

const CANARY: u16 = 10000;
const NATIVE: u16 = 10990;
const ROUTE_HEADER: &str = "x-canary-upstream";
const DEBUG_HEADER: &str = "x-canary-route";

/// A rule set and the requests sent for it (to host `set<N>.test`).
struct Set {
    http: Value,
    requests: Vec<Request>,
}

/// The filter's own seeded generator, so a failure repeats.
struct Gen(Rng);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.0.next_u64() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Header names rules and requests use; requests send them in any case.
const HEADER_NAMES: &[&str] = &["x-ver", "x-user", "X-Tag"];
/// Header names only rules use: pseudo-headers and `host`, which Envoy
/// keeps as `:authority`.
const RULE_ONLY_NAMES: &[&str] = &[":path", ":method", ":authority", "host"];
/// Header values requests send (bytes: non-UTF-8 and obs-text included).
const HEADER_VALUES: &[&[u8]] = &[
    b"",
    b"v1",
    b"v2",
    b"V1",
    b"v10",
    b"v1,v2",
    b"a b",
    "ü".as_bytes(),
    "日本".as_bytes(),
    b"\xff",
    b"v\xe9",
    b"*",
    b"zz",
];
/// StringMatches rules use on headers.
fn header_matches() -> Vec<Value> {
    vec![
        json!({}),
        json!({"exact": "v1"}),
        json!({"exact": "v2"}),
        json!({"exact": ""}),
        json!({"exact": "V1"}),
        json!({"exact": "ü"}),
        json!({"exact": "v1,v2"}),
        json!({"exact": "*"}),
        json!({"prefix": "v"}),
        json!({"prefix": "v1"}),
        json!({"prefix": "日"}),
        json!({"regex": "v[0-9]+"}),
        json!({"regex": ".*"}),
        json!({"regex": ".+"}),
        json!({"regex": "(?i)v1"}),
        json!({"regex": "[^,]*"}),
        json!({"regex": "\\w+"}),
        json!({"regex": "."}),
        json!({"regex": ".."}),
    ]
}
const PATHS: &[&str] = &[
    "/",
    "/api",
    "/api/",
    "/api/v1",
    "/API/V1",
    "/Api",
    "/apix",
    "/api?x=1",
    "/api/v1?user=alice&user=bob",
    "/api#frag",
    "/api/v1#f?user=alice",
    "/a%20b",
    "/api/%76%31",
    "/p?q",
    "/users/Bob",
    "/users/bob/",
    "/login",
    "/LOGIN",
    "/api/v1/",
    "/api/v1x",
    "/api/v1/x?y=/",
    "/api//x",
    "/Api/V1/x",
];
fn uri_matches() -> Vec<Value> {
    vec![
        json!({"exact": "/api"}),
        json!({"exact": "/API/V1"}),
        json!({"exact": "/login"}),
        json!({"prefix": "/api"}),
        json!({"prefix": "/API"}),
        json!({"prefix": "/api/"}),
        json!({"prefix": "/"}),
        json!({"prefix": "/p?q"}),
        json!({"prefix": ""}),
        json!({"regex": "/api(/.*)?"}),
        json!({"regex": "/[a-z]+"}),
        json!({"regex": "/API.*"}),
        json!({"regex": "/users/[a-z]+/?"}),
        json!({"regex": ".*"}),
        // Gateway API's PathPrefix: Envoy's own path_separated_prefix.
        json!({"pathPrefix": "/api"}),
        json!({"pathPrefix": "/API"}),
        json!({"pathPrefix": "/api/v1"}),
        json!({"pathPrefix": "/users/bob"}),
        json!({"pathPrefix": "/a%20b"}),
    ]
}
const METHODS: &[&str] = &["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS"];
fn method_matches() -> Vec<Value> {
    vec![
        json!({"exact": "GET"}),
        json!({"exact": "POST"}),
        json!({"exact": "get"}),
        json!({"prefix": "P"}),
        json!({"regex": "P(UT|OST)"}),
        json!({"regex": "(?i)get"}),
    ]
}
fn scheme_matches() -> Vec<Value> {
    vec![
        json!({"exact": "http"}),
        json!({"exact": "https"}),
        json!({"prefix": "http"}),
        json!({"regex": "https?"}),
    ]
}
/// Authorities for set `n` (all of them select its service).
fn authorities(n: usize) -> Vec<String> {
    vec![
        format!("set{n}.test"),
        format!("SET{n}.Test"),
        format!("set{n}.test:8080"),
        format!("set{n}.test:80"),
    ]
}
fn authority_matches(n: usize) -> Vec<Value> {
    vec![
        json!({"exact": format!("set{n}.test")}),
        json!({"exact": format!("set{n}.test:8080")}),
        json!({"prefix": format!("set{n}")}),
        json!({"prefix": format!("SET{n}")}),
        json!({"regex": ".*:[0-9]+"}),
        json!({"regex": format!("(?i)set{n}\\.test")}),
    ]
}
const QUERY_KEYS: &[&str] = &["user", "x", "User"];
const QUERY_VALUES: &[&str] = &["alice", "ALICE", "", "al%69ce", "bob", "a+b"];
fn query_matches() -> Vec<Value> {
    vec![
        json!({}),
        json!({"exact": "alice"}),
        json!({"exact": ""}),
        json!({"prefix": "al"}),
        json!({"regex": "[a-z]+"}),
        json!({"regex": ".*"}),
    ]
}

/// A random match entry for set `n`: a few of the fields, each from its pool.
fn random_entry(g: &mut Gen, n: usize) -> Value {
    let mut m = serde_json::Map::new();
    loop {
        if g.chance(35) {
            m.insert("uri".into(), g.pick(&uri_matches()).clone());
            if g.chance(40) {
                m.insert("ignoreUriCase".into(), json!(true));
            }
        }
        if g.chance(20) {
            m.insert("method".into(), g.pick(&method_matches()).clone());
        }
        if g.chance(8) {
            m.insert("scheme".into(), g.pick(&scheme_matches()).clone());
        }
        if g.chance(15) {
            m.insert("authority".into(), g.pick(&authority_matches(n)).clone());
        }
        for (field, percent) in [("headers", 45), ("withoutHeaders", 30)] {
            if g.chance(percent) {
                let mut h = serde_json::Map::new();
                for _ in 0..1 + g.below(2) {
                    let mut sm = g.pick(&header_matches()).clone();
                    if field == "withoutHeaders" && g.chance(10) {
                        sm = json!({"regex": "*"});
                    }
                    let name = if g.chance(10) {
                        g.pick(RULE_ONLY_NAMES)
                    } else {
                        g.pick(HEADER_NAMES)
                    };
                    h.insert(name.to_string(), sm);
                }
                m.insert(field.into(), Value::Object(h));
            }
        }
        if g.chance(25) {
            let mut q = serde_json::Map::new();
            for _ in 0..1 + g.below(2) {
                q.insert(
                    g.pick(QUERY_KEYS).to_string(),
                    g.pick(&query_matches()).clone(),
                );
            }
            m.insert("queryParams".into(), Value::Object(q));
        }
        if !m.is_empty() {
            return Value::Object(m);
        }
    }
}

fn random_rules(g: &mut Gen, n: usize) -> Value {
    let count = 1 + g.below(6);
    let rules: Vec<Value> = (0..count)
        .map(|i| {
            if i + 1 == count && g.chance(15) {
                json!({})
            } else {
                let entries: Vec<Value> = (0..1 + g.below(2)).map(|_| random_entry(g, n)).collect();
                json!({ "match": entries })
            }
        })
        .collect();
    Value::Array(rules)
}

/// A random request for set `n`.
fn random_request(g: &mut Gen, n: usize) -> Request {
    let mut path = g.pick(PATHS).to_string();
    if g.chance(40) {
        let pairs: Vec<String> = (0..1 + g.below(3))
            .map(|_| {
                let key = g.pick(QUERY_KEYS);
                if g.chance(15) {
                    key.to_string()
                } else {
                    format!("{key}={}", g.pick(QUERY_VALUES))
                }
            })
            .collect();
        let sep = if path.contains('?') { '&' } else { '?' };
        if !path.contains('#') {
            path = format!("{path}{sep}{}", pairs.join("&"));
        }
    }
    let host = g.pick(&authorities(n)).clone();
    let mut req = Request::get(&path).host(&host);
    req.method = g.pick(METHODS).to_string();
    for _ in 0..g.below(4) {
        let name = g.pick(HEADER_NAMES);
        let name = match g.below(3) {
            0 => name.to_ascii_lowercase(),
            1 => name.to_ascii_uppercase(),
            _ => name.to_string(),
        };
        req = req.header(name, g.pick(HEADER_VALUES));
    }
    req
}

/// The fixed table: one rule set per semantic, with the requests that
/// tell its cases apart (random requests are added to each as well).
fn fixed_sets() -> Vec<(Value, Vec<Request>)> {
    let get = |path: &str| Request::get(path);
    let with = |headers: &[(&str, &[u8])]| {
        headers
            .iter()
            .fold(Request::get("/"), |r, (n, v)| r.header(n, v))
    };
    let header_requests = || {
        vec![
            with(&[]),
            with(&[("x-ver", b"")]),
            with(&[("x-ver", b"v1")]),
            with(&[("X-VER", b"v1")]),
            with(&[("x-ver", b"v2"), ("x-ver", b"v1")]),
            with(&[("x-ver", b"v1"), ("x-ver", b"v2")]),
            with(&[("x-ver", b"zz"), ("x-ver", b"v33")]),
            with(&[("x-ver", b""), ("x-ver", b"v1")]),
            with(&[("x-ver", b"v1"), ("x-ver", b"")]),
            with(&[("x-ver", b"v1,v2")]),
            with(&[("x-ver", "ü".as_bytes())]),
            with(&[("x-ver", b"\xff")]),
        ]
    };
    let kinds = |field: &str| {
        let rules: Vec<Value> = [
            json!({"exact": "v1"}),
            json!({"exact": ""}),
            json!({"prefix": "v"}),
            json!({"regex": "v[0-9]+"}),
            json!({"regex": ".*"}),
            json!({"regex": "*"}),
            json!({}),
        ]
        .into_iter()
        .filter(|sm| field == "withoutHeaders" || sm != &json!({"regex": "*"}))
        .map(|sm| json!({"match": [{ field: { "x-ver": sm } }]}))
        .collect();
        Value::Array(rules)
    };
    // One rule per kind would shadow the later ones: a set per kind.
    let mut sets = Vec::new();
    for field in ["headers", "withoutHeaders"] {
        let Value::Array(rules) = kinds(field) else {
            unreachable!()
        };
        for rule in rules {
            sets.push((json!([rule]), header_requests()));
        }
    }
    // Enough exact-header rules for the filter's rule index
    // (INDEX_MIN_RULES), which must find what a scan finds.
    let indexed: Vec<Value> = ["v1", "v2", "V1", "v10", "ü", "", "zz"]
        .iter()
        .flat_map(|v| {
            ["x-ver", "x-user"].map(|name| json!({"match": [{"headers": {name: {"exact": v}}}]}))
        })
        .collect();
    let mut indexed_requests = header_requests();
    indexed_requests.extend([
        with(&[("x-user", b"nobody"), ("x-user", b"zz")]),
        with(&[("x-ver", b"nobody"), ("x-user", b"v2"), ("x-ver", b"V1")]),
        with(&[("x-user", b"v1"), ("x-user", "\u{fc}".as_bytes())]),
    ]);
    sets.push((Value::Array(indexed), indexed_requests));
    let uri_requests = || PATHS.iter().map(|p| get(p)).collect::<Vec<_>>();
    for uri in uri_matches() {
        for ignore in [false, true] {
            sets.push((
                json!([{"match": [{"uri": uri, "ignoreUriCase": ignore}]}]),
                uri_requests(),
            ));
        }
    }
    let query_requests = || {
        [
            "/?user=alice",
            "/?user=al%69ce",
            "/?us%65r=alice",
            "/?user=alice&user=bob",
            "/?user=bob&user=alice",
            "/?user",
            "/?user=",
            "/?user&user=alice",
            "/?&&user=alice&",
            "/?user=alice=x",
            "/?USER=alice",
            "/?user=alice#frag",
            "/?x=1;user=alice",
            "/",
        ]
        .iter()
        .map(|p| get(p))
        .collect::<Vec<_>>()
    };
    for sm in query_matches() {
        sets.push((
            json!([{"match": [{"queryParams": {"user": sm}}]}]),
            query_requests(),
        ));
    }
    let method_requests = || {
        METHODS
            .iter()
            .chain(&["get", "Get"])
            .map(|m| Request {
                method: m.to_string(),
                ..get("/")
            })
            .collect::<Vec<_>>()
    };
    for sm in method_matches() {
        sets.push((json!([{"match": [{"method": sm}]}]), method_requests()));
    }
    for sm in scheme_matches() {
        sets.push((
            json!([{"match": [{"scheme": sm}]}]),
            vec![get("/"), get("/").header("x-forwarded-proto", "https")],
        ));
    }
    sets
}

/// Gives each rule its name and one destination named after it.
fn name_rules(n: usize, http: &Value) -> Value {
    let rules = http.as_array().expect("a rule list");
    Value::Array(
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r["name"] = json!(format!("r{i}"));
                r["route"] = json!([{ "destination": { "cluster": format!("s{n}-r{i}") } }]);
                r
            })
            .collect(),
    )
}

fn answer(rule: &str) -> Value {
    json!({ "direct_response": { "status": 200 },
            "response_headers_to_add": [{ "header": { "key": "x-rule", "value": rule } }] })
}

fn listener(name: &str, port: u16, virtual_hosts: Value, filters: Vec<Value>) -> Value {
    let mut http_filters = filters;
    http_filters.push(
        json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}),
    );
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                // As an Istio sidecar: RFC 3986 normalization (meshConfig
                // pathNormalization BASE).
                "normalize_path": true,
                "route_config": {
                    "ignore_port_in_host_matching": true,
                    "virtual_hosts": virtual_hosts
                },
                "http_filters": http_filters
            }
        }]}]
    })
}

/// One Envoy with both listeners for these sets.
fn start(sets: &[Set]) -> Envoy {
    let services: Vec<Value> = sets
        .iter()
        .enumerate()
        .map(|(n, s)| json!({ "hosts": [format!("set{n}.test")], "http": name_rules(n, &s.http) }))
        .collect();
    let rules = json!({
        "routeHeader": ROUTE_HEADER,
        "debugHeader": DEBUG_HEADER,
        "namespace": "default",
        "services": services,
    });
    let mut config = EnvoyConfig::from_example("header-override").expect("the example");
    config
        .set_wasm_configuration(&rules.to_string())
        .expect("rules");
    let listeners = config.value()["static_resources"]["listeners"]
        .as_array()
        .expect("listeners")
        .clone();
    let wasm = listeners[0]
        .pointer("/filter_chains/0/filters/0/typed_config/http_filters/0")
        .expect("the wasm filter")
        .clone();
    let mut routed = answer(&format!("%REQ({ROUTE_HEADER})%"));
    routed["match"] =
        json!({ "prefix": "/", "headers": [{ "name": ROUTE_HEADER, "present_match": true }] });
    let mut passed = answer("none");
    passed["match"] = json!({ "prefix": "/" });
    let canary_routes = json!([{ "name": "canary", "domains": ["*"], "routes": [routed, passed] }]);
    let mut native_hosts: Vec<Value> = sets
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let mut routes = native::routes(&name_rules(n, &s.http), |i, _| answer(&format!("s{n}-r{i}")))
                .unwrap_or_else(|e| panic!("set {n}: {e}"));
            let mut none = answer("none");
            none["match"] = json!({ "prefix": "/" });
            routes.push(none);
            json!({ "name": format!("set{n}"), "domains": [format!("set{n}.test")], "routes": routes })
        })
        .collect();
    let mut fallback = answer("none");
    fallback["match"] = json!({ "prefix": "/" });
    native_hosts.push(json!({ "name": "other", "domains": ["*"], "routes": [fallback] }));
    config.value_mut()["static_resources"]["listeners"] = json!([
        listener("canary", CANARY, canary_routes, vec![wasm]),
        listener("native", NATIVE, Value::Array(native_hosts), vec![]),
    ]);
    config.value_mut()["static_resources"]["clusters"] = json!([]);
    Envoy::start(config, &EnvoyOptions::default().without_access_logs()).expect("Envoy starts")
}

/// What a listener did with a request: the status and the rule it reached;
/// and canary-router's debug header.
fn outcome(
    client: &mut HttpClient,
    req: &Request,
) -> (Result<(u16, String), String>, Option<String>) {
    match client.send(req) {
        Ok(resp) => (
            Ok((
                resp.status,
                resp.header("x-rule").unwrap_or_else(|| "-".into()),
            )),
            resp.header(DEBUG_HEADER),
        ),
        Err(e) => (Err(e.to_string()), None),
    }
}

fn describe(req: &Request) -> String {
    let headers: Vec<String> = req
        .headers
        .iter()
        .map(|(n, v)| {
            format!(
                "{}: {:?}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("{} {} [{}]", req.method, req.path, headers.join(", "))
}

/// Sends every request of every set to both listeners; returns the
/// differences and how many requests matched a rule.
fn compare(sets: &[Set]) -> (Vec<String>, usize, usize) {
    let envoy = start(sets);
    let mut canary = envoy.client(CANARY).expect("client");
    let mut native = envoy.client(NATIVE).expect("client");
    let mut differences = Vec::new();
    let (mut sent, mut matched) = (0, 0);
    for (n, set) in sets.iter().enumerate() {
        for req in &set.requests {
            sent += 1;
            let (want, _) = outcome(&mut native, req);
            let (got, debug) = outcome(&mut canary, req);
            match (&want, &got) {
                (Ok(w), Ok(g)) if w == g => {
                    if w.1.starts_with('s') {
                        matched += 1;
                        // The debug header names the same rule.
                        let rule = w.1.split('-').nth(1).unwrap_or_default();
                        if debug.as_deref().and_then(|d| d.split('/').nth(1)) != Some(rule) {
                            differences.push(format!(
                                "set {n}: {}: routed to {} but the debug header says {debug:?}",
                                describe(req),
                                w.1
                            ));
                        }
                    }
                }
                _ => differences.push(format!(
                    "set {n}: {}: Envoy's routes {want:?}, canary-router {got:?}; rules {}",
                    describe(req),
                    set.http
                )),
            }
        }
    }
    (differences, sent, matched)
}

#[test]
fn every_request_reaches_the_rule_envoys_own_routes_choose() {
    let seed = std::env::var("ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut g = Gen(Rng::new(seed));
    let mut sets: Vec<Set> = Vec::new();
    for (http, mut requests) in fixed_sets() {
        let n = sets.len();
        for r in &mut requests {
            if !r
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(b"host"))
            {
                *r = r.clone().host(&format!("set{n}.test"));
            }
        }
        requests.extend((0..8).map(|_| random_request(&mut g, n)));
        sets.push(Set { http, requests });
    }
    for _ in 0..60 {
        let n = sets.len();
        let http = random_rules(&mut g, n);
        let requests = (0..50).map(|_| random_request(&mut g, n)).collect();
        sets.push(Set { http, requests });
    }
    let (differences, sent, matched) = compare(&sets);
    assert!(
        differences.is_empty(),
        "seed {seed} (ORACLE_SEED={seed} repeats it): {} of {sent} requests differ:\n{}",
        differences.len(),
        differences
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Both outcomes occur often, so the agreement is not trivial.
    assert!(
        matched > sent / 5 && matched < sent * 4 / 5,
        "seed {seed}: {matched} of {sent} requests matched a rule"
    );
    eprintln!("seed {seed}: {sent} requests, {matched} matched a rule, no difference");
}
