//! The module's second placement: a route's cluster specifier
//! (`DynamicModuleClusterSpecifier` in `inline_cluster_specifier_plugin`).
//! Envoy asks it for the cluster while it resolves the route, so the route
//! keeps every field istiod set on it (timeout, retries, hash policy,
//! decorator), and there is no header to write, no route to select again
//! and no per-stream object.
//!
//! A cluster specifier replaces the route's cluster outright: a request it
//! gives no cluster gets Envoy's 503 (`no_cluster`). So the rules name
//! exactly one service, the route's, with a `defaultDestination` (the
//! route's own destination as istiod built it), and every request no rule
//! routes goes there. Every request on the route is the service's, whatever
//! its authority (Envoy chose the virtual host: a short name, the service's
//! cluster IP), so the service's rules decide all of them, as istiod's
//! routes apply to every request of their virtual host.
//!
//! What this extension point cannot do is refused at configure, naming the
//! field ([`refusal`]): it sees no response (`sticky.setCookie`, `guard`,
//! `debugHeader`), has no timer or callout (`ruleSource`, `ramp`: rules
//! change with the route configuration instead, RDS or an EnvoyFilter), and
//! is the route, so a rule cannot take a route of its own (a rule's route
//! policies, `portlessDestinations: glue`).

use canary_router::domain::cluster::{Built, ClusterName, PortlessMode};
use canary_router::domain::plugin::{self, Plugin, Rules};
use canary_router::domain::rules::{default_cluster, Outcome, RequestView};
use canary_router::domain::stats;
use canary_router::schema::config::{HttpRoute, PluginConfig};
use canary_router::schema::error::{field_path, index_path};
use canary_router::{ConfigError, Workload};

use crate::abi::HeaderList;
use crate::metrics::{Kind, Metric};
use crate::stream::{any_header_value, for_each_header_of_len, header, random, Header};

/// The only `specifier_name` this module answers to.
pub const SPECIFIER_NAME: &[u8] = b"canary-router";

/// What the cluster specifier's context offers (the ABI's, or a fake).
pub trait SelectHost {
    /// Lists every request header into `list`; false if Envoy cannot.
    fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool;
    /// The client's address.
    fn source_address(&self) -> Option<&[u8]>;
    /// The port the request arrived on.
    fn local_port(&self) -> Option<u16>;
    /// Sets the cluster the request goes to.
    fn set_cluster(&mut self, name: &[u8]);
    /// Adds one to a counter of the configuration.
    fn bump(&self, metric: Option<&Metric>);
}

/// Why a cluster-specifier configuration is refused.
#[derive(Debug)]
pub enum Refusal {
    /// The `specifier_name` is not this module's.
    UnknownSpecifier(String),
    /// The rules are invalid (the core's error, with its JSON path).
    Invalid(ConfigError),
    /// The rules name another number of services than one.
    ServiceCount(usize),
    /// A field this placement cannot serve: its JSON path and why.
    Unsupported {
        /// The field's JSON path.
        path: String,
        /// Why.
        why: &'static str,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownSpecifier(name) => write!(
                f,
                "specifier_name {name:?}: this module has one cluster specifier, \"canary-router\""
            ),
            Refusal::Invalid(e) => write!(f, "{e}"),
            Refusal::ServiceCount(n) => write!(
                f,
                "services: the cluster specifier takes exactly one service, the route's (found {n})"
            ),
            Refusal::Unsupported { path, why } => write!(f, "{path}: {why}"),
        }
    }
}

const NO_RULE_SOURCE: &str = "not at the cluster specifier, which has no timer or callout to poll \
     with: its rules come with the route configuration (RDS, an EnvoyFilter); the HTTP filter polls";
const NO_DEBUG_HEADER: &str =
    "not at the cluster specifier, which sees no response to add the header to";
const NO_GLUE: &str = "not at the cluster specifier, which sets the cluster itself and has no \
     glue routes (leave it out: a destination without a port takes the request's)";
const NO_DEFAULT: &str = "required at the cluster specifier: the route's own destination as \
     istiod built it, where requests no rule routes go (the specifier replaces the route's \
     cluster; a request it gives none gets a 503)";
const NO_SET_COOKIE: &str = "not at the cluster specifier, which has no response path to add \
     Set-Cookie to (sticky.cookie reads a cookie the client has; the HTTP filter issues it)";
const NO_GUARD: &str = "not at the cluster specifier, which sees no response to count";
const NO_RAMP: &str = "not at the cluster specifier, which has no ticker to walk the steps \
     (change the weights with the route configuration, or use the HTTP filter)";
const NO_POLICY: &str = "not at the cluster specifier: a rule's own route policy needs the HTTP \
     filter's glue routes; here the route's own (istiod's) policies apply to every request";

/// The first field of `cfg` this placement cannot serve, if any (the rules
/// are checked by the core afterwards).
pub fn refusal(cfg: &PluginConfig) -> Option<Refusal> {
    let unsupported = |path: String, why| Some(Refusal::Unsupported { path, why });
    if cfg.rule_source.is_some() {
        return unsupported("ruleSource".into(), NO_RULE_SOURCE);
    }
    if cfg.debug_header.is_some() {
        return unsupported("debugHeader".into(), NO_DEBUG_HEADER);
    }
    if cfg.portless_destinations.as_deref() == Some("glue") {
        return unsupported("portlessDestinations".into(), NO_GLUE);
    }
    let services = cfg.services.as_deref().unwrap_or_default();
    let [svc] = services else {
        return Some(Refusal::ServiceCount(services.len()));
    };
    if svc.default_destination.is_none() {
        return unsupported("services[0].defaultDestination".into(), NO_DEFAULT);
    }
    for (ri, rule) in svc.http.0.iter().enumerate() {
        if let Some(r) = rule_refusal(rule, &index_path("services[0].http", ri)) {
            return Some(r);
        }
    }
    None
}

/// What a rule (at JSON path `path`) asks that this placement cannot do.
fn rule_refusal(rule: &HttpRoute, path: &str) -> Option<Refusal> {
    let unsupported = |path: String, why| Some(Refusal::Unsupported { path, why });
    if rule.sticky.as_ref().is_some_and(|s| s.set_cookie.is_some()) {
        return unsupported(field_path(path, "sticky.setCookie"), NO_SET_COOKIE);
    }
    if rule.ramp.is_some() {
        return unsupported(field_path(path, "ramp"), NO_RAMP);
    }
    let policies = [
        ("timeout", rule.timeout.0),
        ("retries", rule.retries.0),
        ("headers", rule.headers.0),
        ("rewrite", rule.rewrite.0),
        ("mirror", rule.mirror.0),
        ("mirrors", rule.mirrors.0),
        ("mirrorPercentage", rule.mirror_percentage.0),
        ("fault", rule.fault.0),
        ("corsPolicy", rule.cors_policy.0),
    ];
    if let Some((field, _)) = policies.iter().find(|(_, given)| *given) {
        return unsupported(field_path(path, field), NO_POLICY);
    }
    for (di, d) in rule.route.iter().enumerate() {
        let dpath = index_path(&field_path(path, "route"), di);
        if d.guard.is_some() {
            return unsupported(field_path(&dpath, "guard"), NO_GUARD);
        }
        if d.headers.0 {
            return unsupported(field_path(&dpath, "headers"), NO_POLICY);
        }
    }
    None
}

/// A cluster-specifier configuration: the compiled rules, the cluster of
/// the requests they do not route, and the counters.
pub struct SpecifierConfig {
    rules: Rules,
    default: ClusterName,
    dest_metrics: Box<[Option<Metric>]>,
    passthrough: Option<Metric>,
    host_call_errors: Option<Metric>,
}

/// The request as the rules see it.
struct View<'s, H> {
    headers: &'s [Header<'s>],
    host: &'s H,
}

impl<H: SelectHost> RequestView for View<'_, H> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        header(self.headers, name)
    }

    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        any_header_value(self.headers, name, f)
    }

    fn for_each_header_of_len(&self, lengths: u64, f: impl FnMut(&[u8], &[u8])) -> bool {
        for_each_header_of_len(self.headers, lengths, f);
        true
    }

    fn source_address(&self) -> Option<&[u8]> {
        self.host.source_address()
    }

    fn local_port(&self) -> Option<u16> {
        self.host.local_port()
    }
}

/// Parses and compiles a cluster specifier's configuration: the pure part
/// of [`SpecifierConfig::new`].
pub fn compile(
    name: &[u8],
    bytes: &[u8],
    workload: &Workload,
) -> Result<(Rules, ClusterName), Refusal> {
    if name != SPECIFIER_NAME {
        return Err(Refusal::UnknownSpecifier(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let cfg: PluginConfig = plugin::parse(bytes).map_err(Refusal::Invalid)?;
    if let Some(r) = refusal(&cfg) {
        return Err(r);
    }
    let Plugin { settings, rules } =
        Plugin::from_config(&cfg, bytes, workload).map_err(Refusal::Invalid)?;
    let opts = settings.compile_options(workload);
    let svc = cfg.services.as_deref().and_then(<[_]>::first);
    let default = svc
        .map(|s| default_cluster(s, "services[0]", &opts))
        .transpose()
        .map_err(Refusal::Invalid)?
        .flatten();
    match (rules, default) {
        (Some(rules), Some(default)) if settings.portless == PortlessMode::RequestPort => {
            Ok((rules, default))
        }
        // `refusal` let none of these through.
        _ => Err(Refusal::Unsupported {
            path: "services[0].defaultDestination".into(),
            why: NO_DEFAULT,
        }),
    }
}

impl SpecifierConfig {
    /// A configuration from the specifier's name and `specifier_config`
    /// bytes: its stats defined through `define`, its gauges (rules version,
    /// revision, weights) set through `set`.
    pub fn new(
        name: &[u8],
        bytes: &[u8],
        workload: &Workload,
        mut define: impl FnMut(Kind, &str) -> Option<usize>,
        mut set: impl FnMut(&Metric, u64),
    ) -> Result<Self, Refusal> {
        let (rules, default) = compile(name, bytes, workload)?;
        let counter = |define: &mut dyn FnMut(Kind, &str) -> Option<usize>, n: &str| {
            define(Kind::Counter, n).map(Metric::plain)
        };
        let dest_metrics = crate::metrics::destinations(&rules.set, "requests", None, |n| {
            define(Kind::Counter, n)
        });
        let weights =
            crate::metrics::destinations(&rules.set, "weight", None, |n| define(Kind::Gauge, n));
        let mut gauge = |n: &str, v: u64| {
            if let Some(id) = define(Kind::Gauge, n) {
                set(&Metric::plain(id), v);
            }
        };
        gauge("canary_router.rules_version", rules.version);
        gauge("canary_router.config_revision", rules.revision);
        stats::show_weights(
            &rules.set,
            |_| false,
            |stat, bp| {
                if let Some(Some(m)) = weights.get(stat as usize) {
                    set(m, bp);
                }
            },
            |_, _| {},
        );
        Ok(SpecifierConfig {
            passthrough: counter(&mut define, "canary_router.passthrough"),
            host_call_errors: counter(&mut define, "canary_router.host_call_errors"),
            rules,
            default,
            dest_metrics,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Selects the cluster of a request: the rules' destination, or the
    /// `defaultDestination` when they route it nowhere. False only when
    /// no cluster could be named (a port-less default and no port).
    pub fn select(&self, host: &mut impl SelectHost) -> bool {
        let mut built = Built::default();
        let (chosen, counter) = {
            let mut list = HeaderList::default();
            let listed = host.request_headers(&mut list);
            let view = View {
                headers: &list,
                host: &*host,
            };
            let routed = match listed {
                true => match self.rules.set.decide_service(0, &view, random) {
                    Outcome::Routed(d) => Some(d),
                    Outcome::NoRule { .. } | Outcome::NoService => None,
                },
                false => {
                    host.bump(self.host_call_errors.as_ref());
                    None
                }
            };
            let port = || view.local_port();
            match routed {
                Some(d) => (
                    d.cluster.resolve(port, &mut built),
                    self.dest_metrics
                        .get(d.target.stat_index as usize)
                        .and_then(Option::as_ref),
                ),
                None => (
                    self.default.resolve(port, &mut built),
                    self.passthrough.as_ref(),
                ),
            }
        };
        match chosen {
            Some(name) => {
                host.set_cluster(name);
                host.bump(counter);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
    const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";

    /// The walkthrough's rules at the cluster specifier: `extra` goes into
    /// the split rule, `top` into the configuration.
    fn rules(top: &str, extra: &str) -> String {
        format!(
            r#"{{ {top} "services": [{{ "hosts": ["backend"],
              "defaultDestination": {{ "host": "backend", "subset": "v1", "port": {{ "number": 80 }} }},
              "http": [
                {{ "name": "testers", "match": [{{ "headers": {{ "canary": {{ "exact": "canary-tester" }} }} }}],
                   "route": [{{ "destination": {{ "host": "backend", "subset": "v2", "port": {{ "number": 80 }} }} }}] }},
                {{ "name": "split", "match": [{{ "uri": {{ "prefix": "/api" }} }}], {extra}
                   "route": [
                     {{ "destination": {{ "host": "backend", "subset": "v1", "port": {{ "number": 80 }} }}, "weight": 90 }},
                     {{ "destination": {{ "host": "backend", "subset": "v2", "port": {{ "number": 80 }} }}, "weight": 10 }} ] }}
              ] }}] }}"#
        )
    }

    fn refused(json: &str) -> String {
        match SpecifierConfig::new(
            SPECIFIER_NAME,
            json.as_bytes(),
            &Workload::default(),
            |_, _| Some(0),
            |_, _| {},
        ) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn what_the_extension_point_cannot_do_is_refused_by_field() {
        let one = rules("", "");
        let (head, _) = one.rsplit_once("}] }").unwrap();
        let two = format!(
            r#"{head}}}, {{ "hosts": ["other"], "http": [{{ "route": [{{ "destination": {{ "host": "other" }} }}] }}] }}] }}"#
        );
        let cases = [
            (two, "services: the cluster specifier takes exactly one service, the route's (found 2)".to_string()),
            (r#"{"services": []}"#.to_string(), "services: the cluster specifier takes exactly one service, the route's (found 0)".into()),
            (
                rules("", "").replace(r#""defaultDestination": { "host": "backend", "subset": "v1", "port": { "number": 80 } },"#, ""),
                format!("services[0].defaultDestination: {NO_DEFAULT}"),
            ),
            (
                rules("", r#""sticky": { "cookie": "u", "setCookie": {} },"#),
                format!("services[0].http[1].sticky.setCookie: {NO_SET_COOKIE}"),
            ),
            (
                rules("", "").replace(r#""weight": 10 }"#, r#""weight": 10, "guard": { "maxErrorRate": 0.5, "minRequests": 20, "interval": "10s" } }"#),
                format!("services[0].http[1].route[1].guard: {NO_GUARD}"),
            ),
            (
                rules(r#""debugHeader": "x-canary-route","#, ""),
                format!("debugHeader: {NO_DEBUG_HEADER}"),
            ),
            (
                rules("", r#""ramp": { "canary": "v2", "start": "2026-01-01T00:00:00Z", "steps": [{ "setWeight": 50 }] },"#),
                format!("services[0].http[1].ramp: {NO_RAMP}"),
            ),
            (
                r#"{"ruleSource": {"cluster": "rules", "path": "/rules.json"}}"#.into(),
                format!("ruleSource: {NO_RULE_SOURCE}"),
            ),
            (
                rules(r#""portlessDestinations": "glue","#, ""),
                format!("portlessDestinations: {NO_GLUE}"),
            ),
            (
                rules("", r#""retries": { "attempts": 3 },"#),
                format!("services[0].http[1].retries: {NO_POLICY}"),
            ),
            (
                rules("", "").replace(r#""weight": 90 }"#, r#""weight": 90, "headers": {} }"#),
                format!("services[0].http[1].route[0].headers: {NO_POLICY}"),
            ),
            // The core's own errors, with their paths.
            (
                rules("", "").replace(r#""weight": 10"#, r#""weight": -10"#),
                "services[0].http[1].route[1].weight: weight -10 is negative".into(),
            ),
        ];
        for (json, want) in cases {
            assert_eq!(refused(&json), want, "{json}");
        }
        let other = SpecifierConfig::new(
            b"x",
            rules("", "").as_bytes(),
            &Workload::default(),
            |_, _| None,
            |_, _| {},
        );
        assert_eq!(
            other.err().unwrap().to_string(),
            "specifier_name \"x\": this module has one cluster specifier, \"canary-router\""
        );
    }

    struct Fake {
        headers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
        port: Option<u16>,
        cluster: Option<Vec<u8>>,
        bumped: Vec<usize>,
    }

    impl Fake {
        fn new(headers: &[(&str, &str)]) -> Self {
            Fake {
                headers: Some(
                    headers
                        .iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                        .collect(),
                ),
                port: Some(80),
                cluster: None,
                bumped: Vec::new(),
            }
        }
    }

    impl SelectHost for Fake {
        fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool {
            let Some(h) = &self.headers else { return false };
            for (k, v) in h {
                list.push((k, v));
            }
            true
        }
        fn source_address(&self) -> Option<&[u8]> {
            Some(b"10.0.0.1:5000")
        }
        fn local_port(&self) -> Option<u16> {
            self.port
        }
        fn set_cluster(&mut self, name: &[u8]) {
            self.cluster = Some(name.to_vec());
        }
        fn bump(&self, _: Option<&Metric>) {}
    }

    /// Names every stat by its id, in definition order.
    fn config(json: &str, names: &mut Vec<String>) -> SpecifierConfig {
        let c = SpecifierConfig::new(
            SPECIFIER_NAME,
            json.as_bytes(),
            &Workload::default(),
            |_, n| {
                names.push(n.to_string());
                Some(names.len() - 1)
            },
            |_, _| {},
        );
        c.map_err(|e| e.to_string()).unwrap()
    }

    fn select(c: &SpecifierConfig, mut host: Fake) -> Option<String> {
        struct Counting<'a>(&'a mut Fake, std::cell::RefCell<Vec<usize>>);
        impl SelectHost for Counting<'_> {
            fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool {
                self.0.request_headers(list)
            }
            fn source_address(&self) -> Option<&[u8]> {
                self.0.source_address()
            }
            fn local_port(&self) -> Option<u16> {
                self.0.local_port()
            }
            fn set_cluster(&mut self, name: &[u8]) {
                self.0.set_cluster(name)
            }
            fn bump(&self, m: Option<&Metric>) {
                if let Some(m) = m {
                    self.1.borrow_mut().push(m.id);
                }
            }
        }
        let mut counting = Counting(&mut host, Default::default());
        let ok = c.select(&mut counting);
        let bumped = counting.1.into_inner();
        host.bumped = bumped;
        assert_eq!(ok, host.cluster.is_some());
        assert_eq!(
            host.bumped.len(),
            usize::from(ok) + usize::from(host.headers.is_none())
        );
        host.cluster.map(|c| String::from_utf8(c).unwrap())
    }

    #[test]
    fn every_request_gets_a_cluster_the_rules_or_the_default_destination() {
        let mut names = Vec::new();
        let c = config(&rules("", ""), &mut names);
        let get = |authority: &str, path: &str, extra: &[(&str, &str)]| {
            let mut h = vec![
                (":authority", authority),
                (":path", path),
                (":method", "GET"),
            ];
            h.extend_from_slice(extra);
            Fake::new(&h)
        };
        // The header rule.
        let tester = get("backend", "/", &[("canary", "canary-tester")]);
        assert_eq!(select(&c, tester).as_deref(), Some(V2));
        // No rule matches (the split takes /api only): the default destination.
        assert_eq!(select(&c, get("backend", "/", &[])).as_deref(), Some(V1));
        // An authority no host names (the service's cluster IP): the
        // service's rules all the same.
        let by_ip = get("10.96.0.12", "/", &[("canary", "canary-tester")]);
        assert_eq!(select(&c, by_ip).as_deref(), Some(V2));
        assert_eq!(select(&c, get("10.96.0.12", "/", &[])).as_deref(), Some(V1));
        // No authority at all, or headers Envoy could not list: the rules,
        // or the default.
        assert_eq!(
            select(&c, Fake::new(&[(":path", "/")])).as_deref(),
            Some(V1)
        );
        let mut unreadable = get("backend", "/", &[]);
        unreadable.headers = None;
        assert_eq!(select(&c, unreadable).as_deref(), Some(V1));
        // The split, about 10% to v2.
        let v2 = (0..2000)
            .filter(|_| select(&c, get("backend", "/api", &[])).as_deref() == Some(V2))
            .count();
        assert!((120..=280).contains(&v2), "{v2} of 2000 to v2");
        assert!(
            names.contains(&"canary_router.passthrough".to_string()),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.starts_with("canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v2")), "{names:?}");
    }

    #[test]
    fn a_default_destination_without_a_port_takes_the_requests_port() {
        let json = rules("", "").replace(
            r#""defaultDestination": { "host": "backend", "subset": "v1", "port": { "number": 80 } }"#,
            r#""defaultDestination": { "host": "backend", "subset": "v1" }"#,
        );
        let c = config(&json, &mut Vec::new());
        let mut h = Fake::new(&[(":authority", "backend:9080"), (":path", "/")]);
        h.port = Some(9080);
        assert_eq!(
            select(&c, h).as_deref(),
            Some("outbound|9080|v1|backend.default.svc.cluster.local")
        );
    }

    #[test]
    fn sticky_by_header_keeps_a_user_on_one_version() {
        let c = config(
            &rules("", r#""sticky": { "header": "x-user-id" },"#),
            &mut Vec::new(),
        );
        for u in 0..50 {
            let user = format!("user-{u}");
            let req = || {
                Fake::new(&[
                    (":authority", "backend"),
                    (":path", "/api"),
                    ("x-user-id", &user),
                ])
            };
            let first = select(&c, req());
            assert!(first.is_some());
            for _ in 0..5 {
                assert_eq!(select(&c, req()), first, "{user}");
            }
        }
    }
}
