//! The HTTPRoute importer: Gateway API `gateway.networking.k8s.io` (v1,
//! v1beta1) HTTPRoutes to the rule file's services, routed as Istio routes
//! them (`pilot/pkg/config/kube/gateway`: `convertHTTPRoute`, `createURIMatch`,
//! `sortHTTPRoutes`, `mergeHTTPRoutes`).
//!
//! - **Parents.** A Service parent (`group: ""`, `kind: Service`) makes
//!   mesh rules for `<name>.<ns>.svc.<domain>`, with the parent's `port` as
//!   each match's `port`; a ServiceEntry parent (`group:
//!   networking.istio.io`) makes the same mesh rules for each of the
//!   ServiceEntry's hosts as written (`serviceEntryHosts`; the ServiceEntry
//!   must be in the input); a Gateway parent makes rules for the hostnames
//!   its listeners accept (the route's `hostnames` intersected with each
//!   listener's `hostname`; a Gateway absent from the input: the route's
//!   hostnames, `*` without any). A route may have both kinds; one rule set
//!   is for one kind of proxy (`--for`).
//! - **Consumer routes** (GAMMA, GEP-1426 "Namespace boundaries"): a route
//!   whose Service parent is in another namespace applies only to clients
//!   in the route's own namespace, and for them it replaces the Service's
//!   producer routes (those in the Service's namespace), as istiod does
//!   (`buildSidecarVirtualHostsForVirtualService`: "Gateway allows only
//!   routes from the namespace of the proxy, or namespace of the
//!   destination"; the proxy's own namespace first). Its rules carry
//!   `sourceNamespace: <route namespace>`, which the filter judges against
//!   the sidecar's own namespace once, at configure time, and come before
//!   the producer rules; after them a rule for the rest of that
//!   namespace's requests (on the consumer routes' ports) leaves them to
//!   Envoy's own route, which for that namespace is the consumer route's.
//! - **One rule per match**, as istiod splits them, then **Gateway API's
//!   precedence** per host, across every route of that host: exact path,
//!   then the longest prefix, a regex path last (Istio's rank), then a
//!   method, the most headers, the most query parameters; ties keep the
//!   order of the oldest route (`creationTimestamp`), then `namespace/name`,
//!   then rule and match order.
//! - **Matches**: path `Exact` → `uri.exact`, `PathPrefix` → `uri.pathPrefix`
//!   (one trailing `/` ignored, as the spec says; `/` → `uri.prefix: /`),
//!   `RegularExpression` → `uri.regex`; headers and query parameters
//!   `Exact` / `RegularExpression` (the first of equal names counts);
//!   `method` → `method.exact`.
//! - **Backends**: a Service with a port → `outbound|<port>||<name>.<ns>.svc.<domain>`,
//!   weights as given (default 1; 0 gets nothing). A rule Envoy's own route
//!   must answer — every weight 0 or no backend (Gateway API: 500), a
//!   backend that is not a Service with a port (500 for its share), a
//!   `RequestRedirect` — becomes a rule to [`PASS_CLUSTER`], the service's
//!   `defaultDestination`: the filter leaves those requests untouched, so
//!   they take Envoy's own route for them (istiod's translation of the same
//!   HTTPRoute answers the 500 or the redirect) and are never sent to a rule
//!   ranked after it.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::route_filters;
use super::{
    DestOut, DestinationOut, MatchOut, Options, PortOut, Report, RouteOut, RuleFileOut, ServiceOut,
    Target,
};
use crate::error::{CliError, Result};

/// The API group of Gateway API, with the `/` of an `apiVersion`.
pub const API_GROUP: &str = "gateway.networking.k8s.io/";
const API_VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// The destination of rules canary-router leaves to Envoy's own route
/// (the service's `defaultDestination`; no such cluster is ever written).
pub const PASS_CLUSTER: &str = "gateway-api.envoy-route";

/// The Istio API group of a `Hostname` backend (a ServiceEntry's host).
const ISTIO_GROUP: &str = "networking.istio.io";

/// Whether `import` hands this document to this importer.
pub fn handles(doc: &Value) -> bool {
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    api.starts_with(API_GROUP) && matches!(kind, "HTTPRoute" | "Gateway")
}

/// A Gateway's listener, as far as routing hostnames goes.
struct Listener {
    name: String,
    port: Option<i64>,
    hostname: Option<String>,
}

/// A match's precedence, greatest first: path rank (3 exact, 2 prefix, 1
/// regex, as istiod ranks them), path length, method, headers, query
/// parameters.
type Rank = (u8, usize, bool, usize, usize);

/// One rule of the output, with what orders it.
#[derive(Clone)]
struct Entry {
    /// The route's `creationTimestamp` (RFC 3339, compared as text; absent
    /// sorts first, as a zero time does in istiod), `namespace/name`, rule
    /// index, match index.
    tie: (String, String, usize, usize),
    rank: Rank,
    rule: RouteOut,
    origin: String,
    /// Leaves the request to Envoy's own route.
    pass: bool,
    /// For a consumer route: the namespace of its clients (the route's).
    consumer: Option<String>,
}

/// A host a route's parents give it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParentHost {
    host: String,
    /// A Service parent's port (a match condition in the mesh).
    port: Option<i64>,
    /// A Service parent in another namespace than the route's: the
    /// route's namespace, whose clients alone it applies to.
    consumer: Option<String>,
}

struct Route<'a> {
    /// `HTTPRoute ns/name (origin)` for messages.
    id: String,
    namespace: &'a str,
    name: &'a str,
    created: String,
    opts: &'a Options,
}

impl Route<'_> {
    fn warn(&self, report: &mut Report, path: &str, what: &str) {
        report.warnings.push(format!("{}: {path}: {what}", self.id));
    }

    fn bad(&self, path: &str, what: &str) -> CliError {
        CliError::rejected(format!("{}: {path}: {what}", self.id))
    }

    fn service_host(&self, name: &str, namespace: Option<&str>) -> String {
        format!(
            "{name}.{}.svc.{}",
            namespace.unwrap_or(self.namespace),
            self.opts.cluster_domain
        )
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// Converts the Gateway API documents of a file (the others are not looked
/// at); `origin(i)` names document `i`. Returns the services, one per host.
pub fn convert(
    docs: &[Value],
    origin: &dyn Fn(usize) -> String,
    opts: &Options,
    out: &mut RuleFileOut,
    report: &mut Report,
) -> Result<usize> {
    let mut gateways: BTreeMap<(String, String), Vec<Listener>> = BTreeMap::new();
    for doc in docs.iter().filter(|d| handles(d)) {
        if text(doc, "kind") != Some("Gateway") {
            continue;
        }
        let meta = doc.get("metadata").unwrap_or(&Value::Null);
        let ns = text(meta, "namespace").unwrap_or(&opts.namespace);
        let name = text(meta, "name").unwrap_or("<unnamed>");
        let listeners = doc
            .get("spec")
            .map(|s| list(s, "listeners"))
            .unwrap_or_default()
            .iter()
            .map(|l| Listener {
                name: text(l, "name").unwrap_or("").to_string(),
                port: l.get("port").and_then(Value::as_i64),
                hostname: text(l, "hostname").map(str::to_string),
            })
            .collect();
        gateways.insert((ns.to_string(), name.to_string()), listeners);
    }
    // Host → its entries, in the order hosts first appear.
    let mut hosts: Vec<(String, Vec<Entry>)> = Vec::new();
    let mut routes = 0;
    for (i, doc) in docs.iter().enumerate() {
        if !handles(doc) || text(doc, "kind") != Some("HTTPRoute") {
            continue;
        }
        let api = text(doc, "apiVersion").unwrap_or("");
        let meta = doc.get("metadata").unwrap_or(&Value::Null);
        let namespace = text(meta, "namespace").unwrap_or(&opts.namespace);
        let name = text(meta, "name").unwrap_or("<unnamed>");
        let route = Route {
            id: format!("HTTPRoute {namespace}/{name} ({})", origin(i)),
            namespace,
            name,
            created: text(meta, "creationTimestamp").unwrap_or("").to_string(),
            opts,
        };
        if !API_VERSIONS.contains(&&api[API_GROUP.len()..]) {
            report.warnings.push(format!(
                "{}: apiVersion {api} is not one canaryctl knows (v1, v1beta1); skipped",
                route.id
            ));
            continue;
        }
        routes += 1;
        convert_route(doc, &route, &gateways, &mut hosts, report)?;
    }
    for (host, entries) in hosts {
        let entries = consumers_first(entries);
        let pass = entries.iter().any(|e| e.pass);
        report.origins.push((
            format!("the HTTPRoute rules for host {host}"),
            entries.iter().map(|e| e.origin.clone()).collect(),
        ));
        out.services.push(ServiceOut {
            hosts: vec![host],
            http: entries.into_iter().map(|e| e.rule).collect(),
            destination_port: None,
            default_destination: pass.then(|| json!({ "cluster": PASS_CLUSTER })),
        });
    }
    Ok(routes)
}

/// Gateway API's precedence over one host's entries, consumer routes
/// first: each consumer namespace's rules (namespaces in order), each
/// group ranked on its own and, when producer or Gateway rules follow, a
/// rule that leaves the namespace's other requests on the consumer
/// routes' ports to Envoy's own route; then the other rules.
fn consumers_first(entries: Vec<Entry>) -> Vec<Entry> {
    fn ranked(mut entries: Vec<Entry>) -> Vec<Entry> {
        // Stable: equal ranks keep the tie-breakers' order.
        entries.sort_by(|a, b| a.tie.cmp(&b.tie));
        entries.sort_by_key(|e| std::cmp::Reverse(e.rank));
        entries
    }
    let mut groups: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut others = Vec::new();
    for e in entries {
        match &e.consumer {
            Some(ns) => groups.entry(ns.clone()).or_default().push(e),
            None => others.push(e),
        }
    }
    let mut out = Vec::new();
    for (ns, group) in groups {
        // The ports the namespace's consumer routes cover: any, if one of
        // its parents names none.
        let mut ports: Vec<Option<Value>> = Vec::new();
        for e in &group {
            let port = e.rule.matches.first().and_then(|m| m.get("port").cloned());
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        if ports.contains(&None) {
            ports = vec![None];
        }
        out.extend(ranked(group));
        if others.is_empty() {
            continue;
        }
        out.push(Entry {
            tie: Default::default(),
            rank: (0, 0, false, 0, 0),
            rule: RouteOut {
                name: Some(format!("{ns}.consumer-routes")),
                matches: ports
                    .into_iter()
                    .map(|port| {
                        let mut m = MatchOut::default();
                        m.set("sourceNamespace", Some(Value::from(ns.as_str())));
                        m.set("port", port);
                        m
                    })
                    .collect(),
                route: vec![pass_destination()],
                policies: Map::new(),
            },
            origin: format!(
                "the consumer routes of namespace {ns}: their clients' other requests stay on Envoy's own route"
            ),
            pass: true,
            consumer: Some(ns),
        });
    }
    out.extend(ranked(others));
    out
}

/// The destination of a rule Envoy's own route answers ([`PASS_CLUSTER`]).
fn pass_destination() -> DestinationOut {
    DestinationOut {
        destination: DestOut {
            host: None,
            subset: None,
            port: None,
            cluster: Some(PASS_CLUSTER.into()),
        },
        weight: None,
        headers: None,
    }
}

/// What a route's parents give it.
#[derive(Debug, Default)]
struct Parents {
    hosts: Vec<ParentHost>,
    /// The proxies Istio applies these hosts' routes in ([`Target`]'s
    /// words: `the mesh`, `Gateway <ns>/<name>`).
    proxies: Vec<String>,
    /// A parent was left out because `--for` chose other proxies.
    elsewhere: bool,
}

/// The hosts a route's parents give it.
fn parent_hosts(
    spec: &Value,
    route: &Route<'_>,
    gateways: &BTreeMap<(String, String), Vec<Listener>>,
    report: &mut Report,
) -> Result<Parents> {
    let hostnames: Vec<&str> = list(spec, "hostnames")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut parents = Parents::default();
    let out = &mut parents.hosts;
    fn add(out: &mut Vec<ParentHost>, host: String) {
        add_parent(
            out,
            ParentHost {
                host,
                port: None,
                consumer: None,
            },
        );
    }
    fn add_parent(out: &mut Vec<ParentHost>, p: ParentHost) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    let mut mesh = false;
    for (pi, p) in list(spec, "parentRefs").iter().enumerate() {
        let path = format!("spec.parentRefs[{pi}]");
        let group = text(p, "group").unwrap_or("gateway.networking.k8s.io");
        let kind = text(p, "kind").unwrap_or("Gateway");
        let Some(name) = text(p, "name") else {
            return Err(route.bad(&format!("{path}.name"), "missing or not a string"));
        };
        let namespace = text(p, "namespace");
        let port = p.get("port").and_then(Value::as_i64);
        match (group, kind) {
            ("" | "core", "Service") | ("networking.istio.io", "ServiceEntry") => {
                if let Some(target) = route.opts.target.as_ref().filter(|t| **t != Target::Mesh) {
                    parents.elsewhere = true;
                    report.notes.push(format!(
                        "{}: {path}: a {kind} parent: its rules are for the mesh (sidecars), not for {target}; parent skipped (--for)",
                        route.id
                    ));
                    continue;
                }
                let hosts = if kind == "Service" {
                    vec![route.service_host(name, namespace)]
                } else {
                    let ns = namespace.unwrap_or(route.namespace);
                    let key = (ns.to_string(), name.to_string());
                    let Some(hosts) = route.opts.service_entry_hosts.get(&key) else {
                        route.warn(
                            report,
                            &path,
                            &format!("ServiceEntry {ns}/{name} is not in the input, so its hosts are not known; parent skipped"),
                        );
                        continue;
                    };
                    hosts.clone()
                };
                mesh = true;
                let consumer = namespace
                    .filter(|ns| *ns != route.namespace)
                    .map(|_| route.namespace.to_string());
                if let Some(ns) = &consumer {
                    report.notes.push(format!(
                        "{}: {path}: a consumer route (the {kind} is in namespace {}): its rules apply \
                         only to clients in namespace {ns} (`sourceNamespace: {ns}`), as Istio applies them",
                        route.id,
                        namespace.unwrap_or_default()
                    ));
                }
                for host in hosts {
                    add_parent(
                        out,
                        ParentHost {
                            host,
                            port,
                            consumer: consumer.clone(),
                        },
                    );
                }
                let label = Target::Mesh.to_string();
                if !parents.proxies.contains(&label) {
                    parents.proxies.push(label);
                }
            }
            ("gateway.networking.k8s.io", "Gateway") => {
                let ns = namespace.unwrap_or(route.namespace);
                let this = Target::Gateway {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                };
                if let Some(target) = route.opts.target.as_ref().filter(|t| **t != this) {
                    parents.elsewhere = true;
                    report.notes.push(format!(
                        "{}: {path}: its rules are for {this}, not for {target}; parent skipped (--for)",
                        route.id
                    ));
                    continue;
                }
                let before = out.len();
                let Some(listeners) = gateways.get(&(ns.to_string(), name.to_string())) else {
                    report.notes.push(format!(
                        "{}: {path}: Gateway {ns}/{name} is not in the input, so its listeners' hostnames \
                         are not known: the rules are for the route's hostnames ({})",
                        route.id,
                        if hostnames.is_empty() { "none: every host".to_string() } else { hostnames.join(", ") }
                    ));
                    if hostnames.is_empty() {
                        add(out, "*".into());
                    }
                    for h in &hostnames {
                        add(out, (*h).to_string());
                    }
                    if !parents.proxies.contains(&this.to_string()) {
                        parents.proxies.push(this.to_string());
                    }
                    continue;
                };
                let section = text(p, "sectionName");
                let chosen: Vec<&Listener> = listeners
                    .iter()
                    .filter(|l| section.is_none_or(|s| s == l.name))
                    .filter(|l| port.is_none_or(|p| l.port == Some(p)))
                    .collect();
                if chosen.is_empty() {
                    route.warn(
                        report,
                        &path,
                        &format!("Gateway {ns}/{name} has no listener matching this sectionName/port; parent skipped"),
                    );
                    continue;
                }
                for l in chosen {
                    for h in intersect(&hostnames, l.hostname.as_deref()) {
                        add(out, h);
                    }
                }
                if out.len() > before && !parents.proxies.contains(&this.to_string()) {
                    parents.proxies.push(this.to_string());
                }
                if out.len() == before {
                    route.warn(
                        report,
                        "spec.hostnames",
                        &format!("no hostname of the route is accepted by a listener of Gateway {ns}/{name}; parent skipped"),
                    );
                }
            }
            _ => route.warn(
                report,
                &path,
                &format!("a {group}/{kind} parent is not supported (Gateway, Service or ServiceEntry only); parent skipped"),
            ),
        }
    }
    if mesh && !hostnames.is_empty() {
        report.notes.push(format!(
            "{}: spec.hostnames: not used for the Service parent(s), whose rules are for the Service's host, as in Istio",
            route.id
        ));
    }
    Ok(parents)
}

/// Gateway API's hostname intersection of a route's hostnames and one
/// listener's hostname: the more specific of each matching pair.
fn intersect(route: &[&str], listener: Option<&str>) -> Vec<String> {
    let Some(l) = listener else {
        return if route.is_empty() {
            vec!["*".into()]
        } else {
            route.iter().map(|h| h.to_string()).collect()
        };
    };
    if route.is_empty() {
        return vec![l.to_string()];
    }
    // `*.x` covers `a.x` and `a.b.x`, not `x`.
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
    };
    let mut out = Vec::new();
    for h in route {
        let h = h.to_ascii_lowercase();
        let l = l.to_ascii_lowercase();
        let pick = if h == l || covers(&l, &h) {
            Some(h)
        } else if covers(&h, &l) {
            Some(l)
        } else {
            None
        };
        if let Some(p) = pick.filter(|p| !out.contains(p)) {
            out.push(p);
        }
    }
    out
}

fn convert_route(
    doc: &Value,
    route: &Route<'_>,
    gateways: &BTreeMap<(String, String), Vec<Listener>>,
    hosts: &mut Vec<(String, Vec<Entry>)>,
    report: &mut Report,
) -> Result<()> {
    let Some(spec) = doc.get("spec").filter(|s| s.is_object()) else {
        route.warn(report, "spec", "missing; skipped");
        return Ok(());
    };
    for k in spec.as_object().into_iter().flat_map(Map::keys) {
        if !matches!(k.as_str(), "parentRefs" | "hostnames" | "rules") {
            route.warn(report, &format!("spec.{k}"), "not supported; dropped");
        }
    }
    let Parents {
        hosts: parents,
        proxies,
        elsewhere,
    } = parent_hosts(spec, route, gateways, report)?;
    if parents.is_empty() && elsewhere {
        // Each parent's proxies were named in a note.
        return Ok(());
    }
    if parents.is_empty() {
        route.warn(
            report,
            "spec.parentRefs",
            "no parent canary-router can serve (a Gateway, a Service or a ServiceEntry); skipped",
        );
        return Ok(());
    }
    // The rules once, then a copy per parent host (with its port).
    let mut converted = Vec::new();
    for (ri, rule) in list(spec, "rules").iter().enumerate() {
        converted.extend(convert_rule(rule, ri, route, report)?);
    }
    if list(spec, "rules").is_empty() {
        // The API server's default: one rule with no backend.
        route.warn(
            report,
            "spec.rules",
            "none: Gateway API answers 404 for no rule; nothing to import",
        );
        return Ok(());
    }
    report.proxies.extend(proxies);
    for parent in parents {
        let entries = match hosts.iter_mut().find(|(h, _)| *h == parent.host) {
            Some((_, e)) => e,
            None => {
                hosts.push((parent.host.clone(), Vec::new()));
                &mut hosts.last_mut().expect("just pushed").1
            }
        };
        for e in &converted {
            let mut e = e.clone();
            for m in &mut e.rule.matches {
                if let Some(p) = parent.port {
                    m.set("port", Some(Value::from(p)));
                }
                if let Some(ns) = &parent.consumer {
                    m.set("sourceNamespace", Some(Value::from(ns.as_str())));
                }
            }
            e.consumer = parent.consumer.clone();
            entries.push(e);
        }
    }
    Ok(())
}

/// Why a rule field is not carried over.
fn rule_field_reason(field: &str) -> &'static str {
    match field {
        "sessionPersistence" => "not carried over as such: give the rule canary-router's `sticky` (`--sticky cookie=NAME` or an --overlay); dropped",
        _ => "not supported by canary-router; dropped",
    }
}

/// What a filter does to the rule: `Err(reason)` when Envoy's route must
/// answer (the rule passes), `Ok(reason)` when it is only dropped.
fn filter_effect(kind: &str) -> std::result::Result<&'static str, &'static str> {
    match kind {
        "RequestRedirect" => Err("a redirect is answered by Envoy's own route (istiod's translation of this HTTPRoute): canary-router leaves the rule's requests to it"),
        "CORS" => Ok("CORS is not carried by canary-router's import; dropped"),
        _ => Ok("filter not supported by canary-router; dropped"),
    }
}

fn convert_rule(
    rule: &Value,
    ri: usize,
    route: &Route<'_>,
    report: &mut Report,
) -> Result<Vec<Entry>> {
    let path = format!("spec.rules[{ri}]");
    if !rule.is_object() {
        return Err(route.bad(&path, "not an object"));
    }
    let name = match rule.get("name") {
        None => format!("{}.{}.{ri}", route.namespace, route.name),
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err(route.bad(&format!("{path}.name"), "not a string")),
    };
    for k in rule.as_object().into_iter().flat_map(Map::keys) {
        if !matches!(
            k.as_str(),
            "name" | "matches" | "backendRefs" | "filters" | "timeouts" | "retry"
        ) {
            route.warn(report, &format!("{path}.{k}"), rule_field_reason(k));
        }
    }
    // Why Envoy's own route must answer this rule's requests, if it must.
    let mut pass: Option<String> = None;
    for (fi, f) in list(rule, "filters").iter().enumerate() {
        let kind = text(f, "type").unwrap_or("<no type>");
        let fpath = format!("{path}.filters[{fi}]");
        if route_filters::CONVERTED.contains(&kind) {
            continue;
        }
        match filter_effect(kind) {
            Ok(why) => route.warn(report, &fpath, &format!("{kind}: {why}")),
            Err(why) => {
                route.warn(report, &fpath, &format!("{kind}: {why}"));
                pass.get_or_insert_with(|| kind.to_string());
            }
        }
    }
    let mut dests = Vec::new();
    let backends = list(rule, "backendRefs");
    let mut total = 0i64;
    for (bi, b) in backends.iter().enumerate() {
        let bpath = format!("{path}.backendRefs[{bi}]");
        let group = text(b, "group").unwrap_or("");
        let kind = text(b, "kind").unwrap_or("Service");
        let weight = match b.get("weight") {
            None => 1,
            Some(w) => w.as_i64().filter(|w| *w >= 0).ok_or_else(|| {
                route.bad(&format!("{bpath}.weight"), "not a non-negative integer")
            })?,
        };
        total += weight;
        for k in b.as_object().into_iter().flat_map(Map::keys) {
            if !matches!(
                k.as_str(),
                "group" | "kind" | "name" | "namespace" | "port" | "weight"
            ) {
                route.warn(
                    report,
                    &format!("{bpath}.{k}"),
                    "not supported by canary-router (per-backend filters included); dropped",
                );
            }
        }
        let name = text(b, "name");
        let port = b.get("port").and_then(Value::as_i64);
        match (group, kind, name, port) {
            ("" | "core", "Service", Some(name), Some(port)) => {
                dests.push(DestinationOut {
                    destination: DestOut {
                        host: Some(route.service_host(name, text(b, "namespace"))),
                        subset: None,
                        port: Some(PortOut {
                            number: Value::from(port),
                        }),
                        cluster: None,
                    },
                    weight: Some(Value::from(weight)),
                    headers: None,
                });
            }
            // Istio's own backend kind for a ServiceEntry's host
            // (`buildDestination`): the host as written, a port, no namespace.
            (ISTIO_GROUP, "Hostname", Some(name), Some(port)) if b.get("namespace").is_none() => {
                dests.push(DestinationOut {
                    destination: DestOut {
                        host: Some(name.to_string()),
                        subset: None,
                        port: Some(PortOut {
                            number: Value::from(port),
                        }),
                        cluster: None,
                    },
                    weight: Some(Value::from(weight)),
                    headers: None,
                });
            }
            _ if weight == 0 => {}
            _ => {
                let why = if matches!(group, "" | "core") && kind == "Service" {
                    "a Service backend without a name or port is invalid (Gateway API: 500 for its share of the requests)"
                } else if group == ISTIO_GROUP && kind == "Hostname" {
                    "a Hostname backend needs a port and no namespace (istiod refuses it otherwise)"
                } else {
                    "not a Service or an Istio Hostname: canary-router routes to those only (Gateway API answers 500 for a backend that does not resolve; istiod resolves the kinds Istio knows)"
                };
                route.warn(
                    report,
                    &bpath,
                    &format!("{why}; canary-router leaves the rule's requests to Envoy's own route (istiod's), so none goes elsewhere"),
                );
                pass.get_or_insert_with(|| "an unresolved backend".to_string());
            }
        }
    }
    if pass.is_none() && total == 0 {
        route.warn(
            report,
            &format!("{path}.backendRefs"),
            if backends.is_empty() {
                "none: Gateway API answers 500 (istiod writes a direct response); canary-router leaves the rule's requests to Envoy's own route, which answers it, so none goes to a rule ranked after it"
            } else {
                "every weight is 0: Gateway API answers 500 (istiod writes a direct response); canary-router leaves the rule's requests to Envoy's own route, which answers it, so none goes to a rule ranked after it"
            },
        );
        pass = Some("no backend".into());
    }
    if pass.is_some() {
        dests = vec![pass_destination()];
    }
    let matches = list(rule, "matches");
    let default = [json!({})];
    let matches = if matches.is_empty() {
        &default[..]
    } else {
        matches
    };
    // The filters, timeouts and retry, as istiod converts them (nothing for
    // a rule Envoy's own route answers).
    let policies = match pass {
        Some(_) => route_filters::RulePolicies::default(),
        None => route_filters::convert(rule, &path, &|n, ns| route.service_host(n, ns))
            .map_err(|(p, why)| route.bad(&p, &why))?,
    };
    let mut out = Vec::new();
    for (mi, m) in matches.iter().enumerate() {
        let mpath = format!("{path}.matches[{mi}]");
        let (entry, rank) = convert_match(m, &mpath, route, report)?;
        let mut rule_policies = policies.policies.clone();
        let mut name = name.clone();
        if policies.remove_prefix {
            // istiod's regex removes this match's own prefix: a rule per
            // match then has policies of its own, and a name of its own.
            let prefix = entry
                .get("uri")
                .and_then(|u| u.get("pathPrefix"))
                .and_then(Value::as_str);
            let rewrite = rule_policies.entry("rewrite").or_insert_with(|| json!({}));
            rewrite["uriRegexRewrite"] = route_filters::remove_prefix(prefix);
            if matches.len() > 1 {
                name = format!("{name}.{mi}");
            }
        }
        let rule_out = RouteOut {
            name: Some(name),
            matches: vec![entry],
            route: dests.clone(),
            policies: rule_policies,
        };
        let checked = serde_json::to_value(&rule_out)
            .map_err(|e| route.bad(&mpath, &format!("cannot write JSON: {e}")))?;
        crate::glue::check_rule(&checked, &mpath).map_err(|e| route.bad(&e.path, &e.reason))?;
        out.push(Entry {
            tie: (
                route.created.clone(),
                format!("{}/{}", route.namespace, route.name),
                ri,
                mi,
            ),
            rank,
            rule: rule_out,
            origin: format!("{} {mpath}", route.id),
            pass: pass.is_some(),
            consumer: None,
        });
    }
    Ok(out)
}

/// One match, and its precedence: (path rank, path length, method,
/// headers, query parameters).
fn convert_match(
    m: &Value,
    path: &str,
    route: &Route<'_>,
    report: &mut Report,
) -> Result<(MatchOut, Rank)> {
    if !m.is_object() {
        return Err(route.bad(path, "not an object"));
    }
    for k in m.as_object().into_iter().flat_map(Map::keys) {
        if !matches!(k.as_str(), "path" | "headers" | "queryParams" | "method") {
            route.warn(
                report,
                &format!("{path}.{k}"),
                "match field not supported by canary-router; dropped, so this match covers MORE requests than in Gateway API",
            );
        }
    }
    let mut out = MatchOut::default();
    let p = m.get("path").cloned().unwrap_or_else(|| json!({}));
    let kind = text(&p, "type").unwrap_or("PathPrefix");
    let value = text(&p, "value").unwrap_or("/");
    let (uri, rank, len) = match kind {
        "Exact" => (json!({ "exact": value }), 3, value.len()),
        "PathPrefix" if value == "/" => (json!({ "prefix": "/" }), 2, 1),
        "PathPrefix" => {
            // "a trailing `/` is ignored", as istiod trims it.
            let v = value.strip_suffix('/').unwrap_or(value);
            (json!({ "pathPrefix": v }), 2, v.len())
        }
        "RegularExpression" => (json!({ "regex": value }), 1, value.len()),
        other => {
            return Err(route.bad(
                &format!("{path}.path.type"),
                &format!(
                    "`{other}` is not a path match type (Exact, PathPrefix, RegularExpression)"
                ),
            ))
        }
    };
    out.set("uri", Some(uri));
    let mut pairs = |field: &str, what: &str, case_insensitive: bool| -> Result<Option<Value>> {
        let mut map = Map::new();
        for (i, h) in list(m, field).iter().enumerate() {
            let hpath = format!("{path}.{field}[{i}]");
            let (Some(name), Some(value)) = (text(h, "name"), text(h, "value")) else {
                return Err(route.bad(&hpath, "needs a `name` and a `value`"));
            };
            let key = if case_insensitive {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            };
            if map.contains_key(&key) {
                route.warn(
                    report,
                    &hpath,
                    &format!("a second {what} named `{name}`: Gateway API considers only the first; dropped"),
                );
                continue;
            }
            let sm = match text(h, "type").unwrap_or("Exact") {
                "Exact" => json!({ "exact": value }),
                "RegularExpression" => json!({ "regex": value }),
                other => {
                    return Err(route.bad(
                        &format!("{hpath}.type"),
                        &format!("`{other}` is not a {what} match type (Exact, RegularExpression)"),
                    ))
                }
            };
            map.insert(key, sm);
        }
        Ok((!map.is_empty()).then_some(Value::Object(map)))
    };
    out.set("headers", pairs("headers", "header", true)?);
    out.set(
        "queryParams",
        pairs("queryParams", "query parameter", false)?,
    );
    if let Some(method) = m.get("method") {
        let Some(method) = method.as_str() else {
            return Err(route.bad(&format!("{path}.method"), "not a string"));
        };
        out.set("method", Some(json!({ "exact": method })));
    }
    let count = |f: &str| out.get(f).and_then(Value::as_object).map_or(0, Map::len);
    let rank = (
        rank,
        len,
        out.get("method").is_some(),
        count("headers"),
        count("queryParams"),
    );
    Ok((out, rank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_intersect_as_gateway_api_says() {
        assert_eq!(intersect(&[], None), ["*"]);
        assert_eq!(intersect(&[], Some("*.example.com")), ["*.example.com"]);
        assert_eq!(
            intersect(&["a.example.com"], Some("*.example.com")),
            ["a.example.com"]
        );
        assert_eq!(
            intersect(&["*.example.com"], Some("a.example.com")),
            ["a.example.com"]
        );
        assert_eq!(
            intersect(&["*.b.example.com"], Some("*.example.com")),
            ["*.b.example.com"]
        );
        assert!(intersect(&["example.com"], Some("*.example.com")).is_empty());
        assert!(intersect(&["a.example.net"], Some("a.example.com")).is_empty());
        assert_eq!(
            intersect(&["A.example.com", "a.example.com"], None),
            ["A.example.com", "a.example.com"]
        );
    }
}
