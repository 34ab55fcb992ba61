//! Rule sets for tests and benchmarks.
//!
//! [`rules_at_limits`] builds a plugin configuration that sits *at* the
//! documented bounds of `canary_router::schema::limits` (see `docs/limits.md`): the
//! most services, the most rules, a service with the most hosts, a rule with
//! the most match entries, a match entry with the most conditions, a route
//! with the most destinations, the largest weight, regexes of the longest
//! length, names of the longest length, thousands of wildcard hosts, and a
//! file padded close to the largest size. One more of anything is rejected.
//!
//! [`request_walking_every_rule`] is the request that costs it the most: it is
//! for the service with the most rules, fails every rule but the last (each
//! failing rule reads a header and compares it), and lands on the route with
//! the most destinations by a sticky cookie at the end of a large `cookie`
//! header. [`request_for_unknown_host`] walks every wildcard host and matches
//! none.
//!
//! This module depends on nothing but `serde_json`, so that the filter's own
//! tests include it by path (`filter/tests/limits.rs`) and check it against
//! the parser without depending on this crate.

use serde_json::{json, Value};

/// The bounds this fixture is built at. They mirror `canary_router::schema::limits`
/// (the filter's `tests/limits.rs` checks that they agree).
pub mod bounds {
    /// `MAX_CONFIG_BYTES`.
    pub const CONFIG_BYTES: usize = 1024 * 1024;
    /// `MAX_SERVICES`.
    pub const SERVICES: usize = 1000;
    /// `MAX_HOSTS_PER_SERVICE`.
    pub const HOSTS_PER_SERVICE: usize = 100;
    /// `MAX_RULES`.
    pub const RULES: usize = 5000;
    /// `MAX_MATCHES_PER_RULE`.
    pub const MATCHES_PER_RULE: usize = 64;
    /// `MAX_CONDITIONS_PER_MATCH`.
    pub const CONDITIONS_PER_MATCH: usize = 64;
    /// `MAX_DESTINATIONS`.
    pub const DESTINATIONS: usize = 64;
    /// `MAX_WEIGHT`.
    pub const WEIGHT: i64 = 1_000_000;
    /// `MAX_REGEX_LEN`.
    pub const REGEX_LEN: usize = 1024;
    /// `MAX_NAME_LEN`.
    pub const NAME_LEN: usize = 256;
}

/// The host of the service with the most rules (short name; namespace `default`).
pub const HOT_HOST: &str = "hot";
/// The cluster prefix of the last rule's destinations: `at-limits-<i>`.
pub const WIDE_CLUSTER_PREFIX: &str = "at-limits-";
/// The sticky cookie of the last rule.
pub const STICKY_COOKIE: &str = "canary-user";
/// How many regex rules the hot service holds (each pattern exactly
/// `MAX_REGEX_LEN` bytes long).
pub const REGEX_RULES: usize = 8;
/// Leave this much room under `MAX_CONFIG_BYTES`.
const SLACK_BYTES: usize = 4096;

fn filler_service(i: usize) -> Value {
    json!({
        "hosts": [format!("f{i:04}"), format!("*.f{i:04}.example")],
        "http": [{ "route": [{ "destination": { "cluster": format!("filler-{i}") } }] }]
    })
}

/// A regex of exactly `len` bytes: an alternation of literal path prefixes
/// followed by a character class; cheap to compile, and it never matches the
/// values of [`request_walking_every_rule`].
fn long_regex(seed: usize, len: usize) -> String {
    const TAIL: &str = ")/[a-z]+";
    let mut re = String::from("/(?:");
    let mut i = 0;
    loop {
        let alt = format!("{}r{seed}p{i}", if i > 0 { "|" } else { "" });
        if re.len() + alt.len() + TAIL.len() > len {
            break;
        }
        re.push_str(&alt);
        i += 1;
    }
    re.push_str(TAIL);
    while re.len() < len {
        re.push('x');
    }
    re
}

fn name(prefix: &str, i: usize, len: usize) -> String {
    let mut n = format!("{prefix}{i:04}-");
    while n.len() < len {
        n.push('n');
    }
    n.truncate(len.max(prefix.len() + 5));
    n
}

fn build(header_rule_name_len: usize) -> Value {
    let fillers = bounds::SERVICES - 1;
    let mut services: Vec<Value> = (0..fillers).map(filler_service).collect();

    let mut hosts = vec![HOT_HOST.to_string()];
    hosts.extend((1..bounds::HOSTS_PER_SERVICE).map(|i| format!("hot-alias-{i:02}")));

    let hot_rules = bounds::RULES - fillers;
    // Rules of the hot service: many header rules, the regex rules, the rule
    // with the most match entries, and the wide, sticky catch-all.
    let header_rules = hot_rules - REGEX_RULES - 2;
    let mut http: Vec<Value> = (0..header_rules)
        .map(|i| {
            json!({
                "name": name("h", i, header_rule_name_len),
                "match": [{ "headers": { "x-k": { "exact": format!("n{i:04}") } } }],
                "route": [{ "destination": { "cluster": format!("hdr-{i}") } }]
            })
        })
        .collect();
    http.extend((0..REGEX_RULES).map(|i| {
        json!({
            "name": format!("regex-{i}"),
            "match": [{ "uri": { "regex": long_regex(i, bounds::REGEX_LEN) } }],
            "route": [{ "destination": { "cluster": format!("re-{i}") } }]
        })
    }));
    // The rule with the most match entries; the first holds the most conditions.
    let mut wide_entry = serde_json::Map::new();
    let headers: serde_json::Map<String, Value> = (0..bounds::CONDITIONS_PER_MATCH / 2)
        .map(|i| (format!("x-c{i:02}"), json!({ "prefix": format!("c{i}") })))
        .collect();
    let query: serde_json::Map<String, Value> = (0..bounds::CONDITIONS_PER_MATCH
        - bounds::CONDITIONS_PER_MATCH / 2)
        .map(|i| (format!("q{i:02}"), json!({ "exact": format!("v{i}") })))
        .collect();
    wide_entry.insert("headers".into(), Value::Object(headers));
    wide_entry.insert("queryParams".into(), Value::Object(query));
    let mut entries = vec![Value::Object(wide_entry)];
    entries.extend((1..bounds::MATCHES_PER_RULE).map(|i| {
        json!({
            "method": { "exact": "PATCH" },
            "headers": { format!("x-m{i:02}"): { "exact": "on" } }
        })
    }));
    http.push(json!({
        "name": "most-matches",
        "match": entries,
        "route": [{ "destination": { "cluster": "most-matches" } }]
    }));
    // The catch-all: the most destinations, the largest weight, a weight of
    // 0, sticky by cookie, the longest rule name.
    let route: Vec<Value> = (0..bounds::DESTINATIONS)
        .map(|i| {
            let weight = match i {
                0 => bounds::WEIGHT,
                1 => 0,
                _ => 1000,
            };
            json!({ "destination": { "cluster": format!("{WIDE_CLUSTER_PREFIX}{i}") }, "weight": weight })
        })
        .collect();
    http.push(json!({
        "name": name("wide", 0, bounds::NAME_LEN),
        "route": route,
        "sticky": { "cookie": STICKY_COOKIE }
    }));
    services.push(json!({ "hosts": hosts, "http": http }));

    json!({
        "routeHeader": "x-canary-upstream",
        "namespace": "default",
        "version": 1,
        "services": services
    })
}

/// A plugin configuration at the documented bounds (see the module docs),
/// as JSON text just under `MAX_CONFIG_BYTES`. Deterministic.
pub fn rules_at_limits() -> String {
    // Pad the header rules' names so that the file comes close to the size
    // bound without passing it.
    let base = serde_json::to_string(&build(6)).unwrap_or_default();
    let header_rules = bounds::RULES - (bounds::SERVICES - 1) - REGEX_RULES - 2;
    let room = bounds::CONFIG_BYTES.saturating_sub(SLACK_BYTES + base.len());
    let name_len = (6 + room / header_rules).min(bounds::NAME_LEN);
    serde_json::to_string(&build(name_len)).unwrap_or_default()
}

/// The same rules as a polled rule file (`{"version", "namespace", "services"}`).
pub fn rule_file_at_limits() -> String {
    let mut v: Value = serde_json::from_str(&rules_at_limits()).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("routeHeader");
    }
    serde_json::to_string(&v).unwrap_or_default()
}

/// The headers of the request that costs [`rules_at_limits`] the most (see
/// the module docs); it goes to one of the `at-limits-<i>` clusters, the
/// same one every time.
pub fn request_walking_every_rule() -> Vec<(String, Vec<u8>)> {
    let mut cookie = String::new();
    for i in 0..200 {
        cookie.push_str(&format!("c{i}=value-{i}; "));
    }
    cookie.push_str(&format!("{STICKY_COOKIE}=user-42"));
    let mut headers = vec![
        (":authority".to_string(), HOT_HOST.as_bytes().to_vec()),
        (":path".to_string(), b"/r0p0/UPPER?q00=v0&q01=nope".to_vec()),
        (":method".to_string(), b"GET".to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        ("x-k".to_string(), b"no-such-value".to_vec()),
        ("cookie".to_string(), cookie.into_bytes()),
    ];
    headers.extend(
        (0..bounds::CONDITIONS_PER_MATCH / 2 - 1)
            .map(|i| (format!("x-c{i:02}"), format!("c{i}-matches").into_bytes())),
    );
    headers
}

/// A request for a host no service names: it is looked up among every exact
/// and wildcard host and goes nowhere.
pub fn request_for_unknown_host() -> Vec<(String, Vec<u8>)> {
    vec![
        (":authority".to_string(), b"nobody.nowhere.example".to_vec()),
        (":path".to_string(), b"/".to_vec()),
        (":method".to_string(), b"GET".to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
    ]
}
