//! Grammars for the structure-aware fuzz targets: rule sets and requests
//! built with `arbitrary` from small pools of names, so that most inputs
//! reach the validator's and the decision's deeper branches.

pub mod differential;
pub mod json_case;
pub mod regex_case;
pub mod schema_doc;

use arbitrary::Arbitrary;
use canary_router::{Plugin, RuleSet, Workload};
use serde_json::{json, Map, Value};

/// Hosts services claim, as written in rules.
pub const HOSTS: [&str; 8] = [
    "backend",
    "reviews",
    "ratings.prod",
    "api.example.com",
    "*.example.com",
    "*.svc.cluster.local",
    "web.default.svc.cluster.local",
    "*",
];
/// Authorities requests use (some reach the hosts above, some do not).
pub const AUTHORITIES: [&str; 10] = [
    "backend",
    "backend.default.svc.cluster.local",
    "reviews.default",
    "ratings.prod.svc.cluster.local",
    "api.example.com",
    "x.example.com",
    "web.default.svc",
    "unknown",
    "[::1]",
    "127.0.0.1",
];
/// Header names.
pub const HEADERS: [&str; 8] = [
    "x-user",
    "x-group",
    "cookie",
    "user-agent",
    "x-canary-upstream",
    ":path",
    ":method",
    "x-b3-traceid",
];
/// Values.
pub const VALUES: [&str; 8] = ["", "a", "ab", "v1", "canary", "/api", "GET", "Mozilla/5.0"];
/// Regexes known to be valid.
pub const REGEXES: [&str; 8] = [
    "[a-z]+",
    ".*",
    "v[0-9]+",
    "(a|b)*c",
    "/api/.*",
    "[^/]*",
    "(?i)canary",
    r"\d{1,3}",
];

/// A value from the pool or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum Val {
    /// From [`VALUES`].
    Pool(u8),
    /// Anything.
    Any(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Pool(i) => VALUES[*i as usize % VALUES.len()].to_string(),
            Val::Any(s) => s.clone(),
        }
    }
}

/// An Istio `StringMatch`, usually well-formed.
#[derive(Arbitrary, Debug, Clone)]
pub enum Sm {
    Exact(Val),
    Prefix(Val),
    Regex(u8),
    /// Any pattern: often invalid (rejected), sometimes expensive.
    AnyRegex(String),
    Present,
    /// More than one kind (rejected).
    Two(Val, Val),
}

impl Sm {
    fn json(&self) -> Value {
        match self {
            Sm::Exact(v) => json!({ "exact": v.text() }),
            Sm::Prefix(v) => json!({ "prefix": v.text() }),
            Sm::Regex(i) => json!({ "regex": REGEXES[*i as usize % REGEXES.len()] }),
            Sm::AnyRegex(s) => json!({ "regex": s }),
            Sm::Present => json!({}),
            Sm::Two(a, b) => json!({ "exact": a.text(), "prefix": b.text() }),
        }
    }
}

/// A header name from the pool or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    Pool(u8),
    Any(String),
}

impl Name {
    /// The name.
    pub fn text(&self) -> String {
        match self {
            Name::Pool(i) => HEADERS[*i as usize % HEADERS.len()].to_string(),
            Name::Any(s) => s.clone(),
        }
    }
}

/// A match entry.
#[derive(Arbitrary, Debug, Clone)]
pub struct MatchG {
    uri: Option<Sm>,
    method: Option<Sm>,
    scheme: Option<Sm>,
    authority: Option<Sm>,
    headers: Vec<(Name, Sm)>,
    without_headers: Vec<(Name, Sm)>,
    query: Vec<(Val, Sm)>,
    port: Option<i64>,
    ignore_uri_case: Option<bool>,
    source_labels: Vec<(u8, u8)>,
    source_namespace: Option<u8>,
}

/// A destination.
#[derive(Arbitrary, Debug, Clone)]
pub enum DestG {
    Cluster(u8),
    Host {
        host: u8,
        subset: Option<u8>,
        port: i64,
    },
    /// Anything (often rejected).
    Raw {
        host: Option<String>,
        cluster: Option<String>,
        subset: Option<String>,
        port: Option<i64>,
    },
}

/// Sticky keys.
#[derive(Arbitrary, Debug, Clone)]
pub enum StickyG {
    Header(Name),
    Cookie(Val),
    SourceIp(bool),
    Two,
    /// By a cookie the filter issues (`setCookie`): name, `maxAge`, and
    /// bits choosing `sameSite`, `secure`, `httpOnly`, `path`, `domain`,
    /// `partitioned`.
    Issuing(Val, Option<i64>, u8),
}

/// One rule.
#[derive(Arbitrary, Debug, Clone)]
pub struct RuleG {
    name: Option<Val>,
    matches: Vec<MatchG>,
    route: Vec<(DestG, Option<i64>)>,
    sticky: Option<StickyG>,
}

/// One service.
#[derive(Arbitrary, Debug, Clone)]
pub struct ServiceG {
    hosts: Vec<u8>,
    namespace: Option<u8>,
    http: Vec<RuleG>,
}

/// A rule set. With `tidy`, repaired into something the validator accepts
/// most of the time: hosts claimed once, weights within bounds, at least one
/// rule per service.
#[derive(Arbitrary, Debug, Clone)]
pub struct RuleSetG {
    pub services: Vec<ServiceG>,
    pub namespace: Option<u8>,
    pub labels: Vec<(u8, u8)>,
    pub workload_namespace: Option<u8>,
}

const NAMESPACES: [&str; 3] = ["default", "prod", "canary"];
const LABELS: [&str; 3] = ["app", "version", "team"];
const LABEL_VALUES: [&str; 3] = ["frontend", "v1", "blue"];

fn pick<'a>(pool: &[&'a str], i: u8) -> &'a str {
    pool[i as usize % pool.len()]
}

impl RuleSetG {
    /// The workload the rules are compiled for.
    pub fn workload(&self) -> Workload {
        Workload {
            namespace: self.workload_namespace.map(|n| pick(&NAMESPACES, n).into()),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (pick(&LABELS, *k).into(), pick(&LABEL_VALUES, *v).into()))
                .collect(),
            ..Workload::default()
        }
    }

    /// The plugin configuration as JSON; `tidy` repairs what the validator
    /// would reject for reasons the fuzz target is not about.
    pub fn json(&self, tidy: bool) -> String {
        let mut claimed = std::collections::BTreeSet::new();
        let mut services = Vec::new();
        for s in &self.services {
            let mut hosts: Vec<&str> = s.hosts.iter().map(|h| pick(&HOSTS, *h)).collect();
            if tidy {
                hosts.retain(|h| claimed.insert(h.to_string()));
                if hosts.is_empty() {
                    continue;
                }
            }
            let mut http: Vec<Value> = s.http.iter().map(|r| rule_json(r, tidy)).collect();
            if tidy && http.is_empty() {
                http.push(json!({ "route": [{ "destination": { "cluster": "fallback" } }] }));
            }
            let mut svc = json!({ "hosts": hosts, "http": http });
            if let Some(ns) = s.namespace {
                svc["namespace"] = json!(pick(&NAMESPACES, ns));
            }
            services.push(svc);
        }
        let mut cfg = json!({ "services": services, "debugHeader": "x-canary-route" });
        if let Some(ns) = self.namespace {
            cfg["namespace"] = json!(pick(&NAMESPACES, ns));
        }
        cfg.to_string()
    }

    /// The hosts the tidied rule set claims, as written.
    pub fn claimed_hosts(&self) -> Vec<String> {
        let mut claimed = std::collections::BTreeSet::new();
        for s in &self.services {
            for h in &s.hosts {
                claimed.insert(pick(&HOSTS, *h).to_string());
            }
        }
        claimed.into_iter().collect()
    }

    /// Compiles the tidied rule set, if the validator accepts it.
    pub fn compile(&self) -> Option<RuleSet> {
        let json = self.json(true);
        Plugin::from_bytes(json.as_bytes(), &self.workload())
            .ok()
            .and_then(|p| p.rules)
            .map(|r| r.set)
    }
}

fn rule_json(r: &RuleG, tidy: bool) -> Value {
    let mut rule = Map::new();
    if let Some(n) = &r.name {
        rule.insert("name".into(), json!(n.text()));
    }
    let matches: Vec<Value> = r.matches.iter().map(match_json).collect();
    if !matches.is_empty() {
        rule.insert("match".into(), json!(matches));
    }
    let mut route: Vec<Value> = r
        .route
        .iter()
        .map(|(d, w)| {
            let mut v = json!({ "destination": dest_json(d, tidy) });
            if let Some(w) = w {
                v["weight"] = json!(if tidy { w.rem_euclid(1001) } else { *w });
            }
            v
        })
        .collect();
    if tidy {
        if route.is_empty() {
            route.push(json!({ "destination": { "cluster": "c0" } }));
        }
        let several = route.len() > 1;
        for (i, d) in route.iter_mut().enumerate() {
            if several && d.get("weight").is_none() {
                d["weight"] = json!(1);
            }
            if i == 0 && several && d["weight"] == json!(0) {
                d["weight"] = json!(1);
            }
        }
        route.truncate(64);
    }
    rule.insert("route".into(), json!(route));
    if let Some(s) = &r.sticky {
        let v = match s {
            StickyG::Header(n) => json!({ "header": n.text() }),
            StickyG::Cookie(c) => json!({ "cookie": c.text() }),
            StickyG::SourceIp(b) => json!({ "sourceIp": b }),
            StickyG::Two => json!({ "header": "x-user", "sourceIp": true }),
            StickyG::Issuing(c, max_age, bits) => {
                let mut set = serde_json::Map::new();
                if let Some(a) = max_age {
                    set.insert("maxAge".into(), json!(a));
                }
                let same_site = ["Strict", "Lax", "None", "lax"][usize::from(bits & 3)];
                set.insert("sameSite".into(), json!(same_site));
                if bits & 4 != 0 {
                    set.insert("secure".into(), json!(true));
                }
                if bits & 8 != 0 {
                    set.insert("httpOnly".into(), json!(false));
                }
                if bits & 16 != 0 {
                    set.insert("path".into(), json!(c.text()));
                }
                if bits & 32 != 0 {
                    set.insert("domain".into(), json!(c.text()));
                }
                if bits & 64 != 0 {
                    set.insert("partitioned".into(), json!(bits & 128 != 0));
                }
                json!({ "cookie": c.text(), "setCookie": set })
            }
        };
        rule.insert("sticky".into(), v);
    }
    Value::Object(rule)
}

fn map_of<K: Fn(&T) -> String, T>(items: &[(T, Sm)], key: K) -> Value {
    Value::Object(items.iter().map(|(k, m)| (key(k), m.json())).collect())
}

fn match_json(m: &MatchG) -> Value {
    let mut v = Map::new();
    for (field, sm) in [
        ("uri", &m.uri),
        ("method", &m.method),
        ("scheme", &m.scheme),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            v.insert(field.into(), sm.json());
        }
    }
    if !m.headers.is_empty() {
        v.insert("headers".into(), map_of(&m.headers, Name::text));
    }
    if !m.without_headers.is_empty() {
        v.insert(
            "withoutHeaders".into(),
            map_of(&m.without_headers, Name::text),
        );
    }
    if !m.query.is_empty() {
        v.insert("queryParams".into(), map_of(&m.query, Val::text));
    }
    if let Some(p) = m.port {
        v.insert("port".into(), json!(p));
    }
    if let Some(b) = m.ignore_uri_case {
        v.insert("ignoreUriCase".into(), json!(b));
    }
    if !m.source_labels.is_empty() {
        let labels: Map<String, Value> = m
            .source_labels
            .iter()
            .map(|(k, val)| (pick(&LABELS, *k).into(), json!(pick(&LABEL_VALUES, *val))))
            .collect();
        v.insert("sourceLabels".into(), Value::Object(labels));
    }
    if let Some(ns) = m.source_namespace {
        v.insert("sourceNamespace".into(), json!(pick(&NAMESPACES, ns)));
    }
    Value::Object(v)
}

fn dest_json(d: &DestG, tidy: bool) -> Value {
    match d {
        DestG::Cluster(c) => json!({ "cluster": format!("c{c}") }),
        DestG::Host { host, subset, port } => {
            let host = pick(&HOSTS, *host).trim_start_matches("*.");
            let host = if host == "*" { "backend" } else { host };
            let port = if tidy {
                1 + port.rem_euclid(65535)
            } else {
                *port
            };
            let mut v = json!({ "host": host, "port": { "number": port } });
            if let Some(s) = subset {
                v["subset"] = json!(format!("v{s}"));
            }
            v
        }
        DestG::Raw {
            host,
            cluster,
            subset,
            port,
        } => {
            let mut v = Map::new();
            if let Some(h) = host {
                v.insert("host".into(), json!(h));
            }
            if let Some(c) = cluster {
                v.insert("cluster".into(), json!(c));
            }
            if let Some(s) = subset {
                v.insert("subset".into(), json!(s));
            }
            if let Some(p) = port {
                v.insert("port".into(), json!({ "number": p }));
            }
            Value::Object(v)
        }
    }
}

/// An authority.
#[derive(Arbitrary, Debug, Clone)]
pub enum AuthG {
    Pool {
        index: u8,
        port: Option<u16>,
        upper: bool,
        trailing_dot: bool,
    },
    /// A host the rule set claims (wildcards filled in), by index.
    Claimed(u8),
    Raw(Vec<u8>),
}

/// One request.
#[derive(Arbitrary, Debug, Clone)]
pub struct RequestG {
    pub authority: Option<AuthG>,
    pub path: Vec<u8>,
    pub query: Vec<(Val, Vec<u8>)>,
    pub method: Option<Val>,
    pub scheme: Option<Val>,
    pub headers: Vec<(Name, Vec<u8>)>,
    pub cookie: Option<Vec<u8>>,
    pub source: Option<Vec<u8>>,
    pub random: u64,
}

impl RequestG {
    /// Header name/value pairs (pseudo-headers first, as Envoy sends them);
    /// `claimed` are the hosts of the rule set, for [`AuthG::Claimed`].
    pub fn headers(&self, claimed: &[String]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(a) = &self.authority {
            let value = match a {
                AuthG::Pool {
                    index,
                    port,
                    upper,
                    trailing_dot,
                } => {
                    let mut s = AUTHORITIES[*index as usize % AUTHORITIES.len()].to_string();
                    if *upper {
                        s = s.to_ascii_uppercase();
                    }
                    if *trailing_dot {
                        s.push('.');
                    }
                    if let Some(p) = port {
                        s.push_str(&format!(":{p}"));
                    }
                    s.into_bytes()
                }
                AuthG::Claimed(i) if !claimed.is_empty() => {
                    let host = &claimed[*i as usize % claimed.len()];
                    match host.strip_prefix('*') {
                        Some("") => "anything.example.org".to_string(),
                        Some(suffix) => format!("x{suffix}"),
                        None => host.clone(),
                    }
                    .into_bytes()
                }
                AuthG::Claimed(_) => Vec::new(),
                AuthG::Raw(b) => b.clone(),
            };
            out.push((":authority".to_string(), value));
        }
        let mut path = self.path.clone();
        for (i, (k, v)) in self.query.iter().enumerate() {
            path.push(if i == 0 { b'?' } else { b'&' });
            path.extend_from_slice(k.text().as_bytes());
            path.push(b'=');
            path.extend_from_slice(v);
        }
        out.push((":path".to_string(), path));
        if let Some(m) = &self.method {
            out.push((":method".to_string(), m.text().into_bytes()));
        }
        if let Some(s) = &self.scheme {
            out.push((":scheme".to_string(), s.text().into_bytes()));
        }
        for (n, v) in &self.headers {
            out.push((n.text().to_ascii_lowercase(), v.clone()));
        }
        if let Some(c) = &self.cookie {
            out.push(("cookie".to_string(), c.clone()));
        }
        out
    }
}

/// A fixed rule set touching every kind of match, for targets whose input is
/// the request only.
pub fn sample_rules() -> RuleSet {
    const RULES: &str = r#"{"services":[
      {"hosts":["backend","*.example.com"],"http":[
        {"name":"testers","match":[{"headers":{"x-user":{"exact":"canary"}}},{"queryParams":{"canary":{}}}],
         "route":[{"destination":{"cluster":"v2"}}]},
        {"name":"api","match":[{"uri":{"regex":"/api/v[0-9]+/.*"},"method":{"exact":"GET"},"port":80}],
         "route":[{"destination":{"cluster":"v1"},"weight":50},{"destination":{"cluster":"v2"},"weight":50}],
         "sticky":{"cookie":"user"}},
        {"name":"split","route":[{"destination":{"cluster":"v1"},"weight":90},{"destination":{"cluster":"v2"},"weight":10},{"destination":{"cluster":"v3"},"weight":0}],
         "sticky":{"header":"x-user"}}
      ]}
    ]}"#;
    match Plugin::from_bytes(RULES.as_bytes(), &Workload::default()) {
        Ok(Plugin { rules: Some(r), .. }) => r.set,
        _ => RuleSet::default(),
    }
}

/// Fields of the declarations (`filter/src/config.rs`) that the rule-set
/// grammar above does not write, as `Type.field`: the settings and
/// canary-router's own additions, which the `decode` target (every
/// declared field, generated from the schema) and `parse_config` cover.
/// Every other declared field must come out of the grammar: a test holds
/// the two to the declarations.
pub const NOT_IN_GRAMMAR: &[&str] = &[
    "PluginConfig.routeHeader",
    "PluginConfig.clusterDomain",
    "PluginConfig.version",
    "PluginConfig.portlessDestinations",
    "PluginConfig.ruleSource",
    "Service.defaultDestination",
    "Service.destinationPort",
    "MatchRequest.name",
    "StringMatch.pathPrefix",
    "RouteDestination.guard",
    "HttpRoute.ramp",
    // Istio's route policies: any JSON value the filter checks and does not
    // keep (it only suffixes the rule's cluster with its name, which
    // filter/tests/policy.rs covers); `decode` writes them.
    "HttpRoute.timeout",
    "HttpRoute.retries",
    "HttpRoute.headers",
    "HttpRoute.rewrite",
    "HttpRoute.mirror",
    "HttpRoute.mirrors",
    "HttpRoute.mirrorPercentage",
    "HttpRoute.fault",
    "HttpRoute.corsPolicy",
    "RouteDestination.headers",
];

#[cfg(test)]
mod tests {
    use super::*;
    use canary_router::schema::config::PluginConfig;
    use canary_router::schema::decode::{Schema, Shape};
    use std::collections::BTreeSet;

    fn walk(v: &Value, schema: &Schema, seen: &mut BTreeSet<String>) {
        let Value::Object(map) = v else { return };
        for (k, val) in map {
            if let Some(f) = schema.field(k) {
                seen.insert(format!("{}.{k}", schema.name));
                walk_shape(val, f.shape, seen);
            }
        }
    }

    fn walk_shape(v: &Value, shape: Shape, seen: &mut BTreeSet<String>) {
        match (shape, v) {
            (Shape::Option(s), _) => walk_shape(v, s(), seen),
            (Shape::Seq(s), Value::Array(items)) => {
                items.iter().for_each(|i| walk_shape(i, s(), seen))
            }
            (Shape::Map(s), Value::Object(m)) => m.values().for_each(|i| walk_shape(i, s(), seen)),
            (Shape::Struct(s), _) => walk(v, s(), seen),
            _ => {}
        }
    }

    /// The fields reachable from `schema`, but not through a field the
    /// grammar leaves out.
    fn declared(schema: &'static Schema, out: &mut BTreeSet<String>) {
        for f in schema.fields {
            let name = format!("{}.{}", schema.name, f.json);
            if out.insert(name.clone()) && !NOT_IN_GRAMMAR.contains(&name.as_str()) {
                let mut s = f.shape;
                while let Shape::Option(i) | Shape::Seq(i) | Shape::Map(i) = s {
                    s = i();
                }
                if let Shape::Struct(i) = s {
                    declared(i(), out);
                }
            }
        }
    }

    /// The grammar writes every field of the declarations but those it
    /// lists as left to other targets, and lists no field that is not
    /// declared or that it writes after all.
    #[test]
    fn the_grammar_writes_every_declared_field() {
        let mut seen = BTreeSet::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let bytes: Vec<u8> = (0..512)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let mut u = arbitrary::Unstructured::new(&bytes);
            let Ok(set) = RuleSetG::arbitrary(&mut u) else {
                continue;
            };
            for tidy in [false, true] {
                let v: Value = serde_json::from_str(&set.json(tidy)).unwrap();
                walk(&v, PluginConfig::schema(), &mut seen);
            }
        }
        let mut all = BTreeSet::new();
        declared(PluginConfig::schema(), &mut all);
        let listed: BTreeSet<String> = NOT_IN_GRAMMAR.iter().map(|s| s.to_string()).collect();
        let missing: Vec<_> = all
            .difference(&seen)
            .filter(|f| !listed.contains(*f))
            .collect();
        assert!(missing.is_empty(), "declared fields the grammar never writes (write them, or list them in NOT_IN_GRAMMAR): {missing:?}");
        let stale: Vec<_> = listed
            .iter()
            .filter(|f| !all.contains(*f) || seen.contains(*f))
            .collect();
        assert!(
            stale.is_empty(),
            "NOT_IN_GRAMMAR lists fields that are not declared or are written: {stale:?}"
        );
    }
}
