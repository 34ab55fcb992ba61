//! The VirtualService importer: Istio `networking.istio.io` VirtualServices
//! to the rule file's services, with a warning (VirtualService and JSON
//! path) for everything not carried and a note for other kinds.

use std::collections::BTreeMap;

use canary_router::schema::config::{HttpRoute, MatchRequest};
use serde_json::Value;

use super::{
    DestOut, DestinationOut, MatchOut, Options, PortOut, Report, RouteOut, RuleFileOut, ServiceOut,
    Target,
};
use crate::error::{CliError, Result};
use crate::glue::{self, policy};

const API_GROUP: &str = "networking.istio.io/";
const API_VERSIONS: [&str; 3] = ["v1alpha3", "v1beta1", "v1"];

struct Vs<'a> {
    /// `VirtualService ns/name (origin)` for messages.
    id: String,
    namespace: &'a str,
    opts: &'a Options,
}

impl Vs<'_> {
    fn warn(&self, report: &mut Report, path: &str, what: &str) {
        report.warnings.push(format!("{}: {path}: {what}", self.id));
    }

    /// Expands a host as Istio does for a VirtualService: a name without a
    /// dot is relative to the manifest's namespace.
    fn expand(&self, host: &str) -> String {
        if host == "*" || host.contains('.') {
            host.to_string()
        } else {
            format!("{host}.{}.svc.{}", self.namespace, self.opts.cluster_domain)
        }
    }
}

/// The deprecated `mirrorPercent` (and its proto name): carried as the
/// `mirrorPercentage` Istio reads it as.
const MIRROR_PERCENT: [&str; 2] = ["mirrorPercent", "mirror_percent"];

/// A route policy as the rules carry it: short hosts of mirror
/// destinations expanded against the VirtualService's namespace.
fn carry_policy(field: &str, v: &Value, vs: &Vs<'_>) -> Value {
    let mut v = v.clone();
    let expand = |d: &mut Value| {
        if let Some(h) = d.get("host").and_then(Value::as_str) {
            d["host"] = Value::from(vs.expand(h));
        }
    };
    match field {
        "mirror" => expand(&mut v),
        "mirrors" => {
            for m in v.as_array_mut().into_iter().flatten() {
                if let Some(d) = m.get_mut("destination") {
                    expand(d);
                }
            }
        }
        _ => {}
    }
    v
}

/// Fields that make a rule impossible to carry over (it does something else
/// than routing to weighted destinations).
fn rule_blocking_reason(field: &str) -> Option<&'static str> {
    Some(match field {
        "redirect" => "redirects are not supported by canary-router",
        "directResponse" => "direct responses are not supported by canary-router",
        "delegate" => "delegation to another VirtualService is not supported by canary-router",
        _ => return None,
    })
}

/// How a `gateways` list binds: Istio reads an empty list as no list, i.e.
/// the sidecars (`mesh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// Sidecars only (absent, empty, or only `mesh`).
    Mesh,
    /// Sidecars and gateways.
    MeshAndGateways,
    /// Gateways only: never a sidecar.
    GatewaysOnly,
}

fn binding(gateways: Option<&Value>) -> Binding {
    let list = gateways
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mesh = list.iter().any(|v| v.as_str() == Some("mesh"));
    match (mesh, list.len()) {
        (_, 0) => Binding::Mesh,
        (true, 1) => Binding::Mesh,
        (true, _) => Binding::MeshAndGateways,
        (false, _) => Binding::GatewaysOnly,
    }
}

fn name_of(doc: &Value) -> (String, Option<String>) {
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    (name, ns)
}

/// Converts the documents of a file; `origin(i)` names document `i` in messages.
pub fn convert(
    docs: &[Value],
    origin: &dyn Fn(usize) -> String,
    opts: &Options,
) -> Result<(RuleFileOut, Report)> {
    let mut report = Report::default();
    let mut out = RuleFileOut {
        services: Vec::new(),
    };
    // Host → the VirtualService that claimed it first (Istio gives a sidecar
    // one VirtualService per host).
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let (name, ns) = name_of(doc);
        if kind == "List" {
            report
                .notes
                .push(format!("{}: a List inside a List; skipped", origin(i)));
            continue;
        }
        if super::http_route::handles(doc) {
            continue;
        }
        if kind == "ServiceEntry" && api.starts_with(API_GROUP) {
            report.notes.push(format!(
                "{}: ServiceEntry {name} is not a VirtualService: read for its hosts' ports (a \
                 destination without a port on a host with one port gets it, as in Istio), not imported",
                origin(i)
            ));
            continue;
        }
        if kind != "VirtualService" || !api.starts_with(API_GROUP) {
            let what = if kind.is_empty() {
                "a document without a kind".to_string()
            } else {
                format!("{kind} {name} ({api})")
            };
            report.notes.push(format!(
                "{}: {what} is not a VirtualService; skipped",
                origin(i)
            ));
            continue;
        }
        let version = &api[API_GROUP.len()..];
        let namespace = ns.as_deref().unwrap_or(&opts.namespace);
        let vs = Vs {
            id: format!("VirtualService {namespace}/{name} ({})", origin(i)),
            namespace,
            opts,
        };
        if !API_VERSIONS.contains(&version) {
            report.warnings.push(format!(
                "{}: apiVersion {api} is not one canaryctl knows (v1alpha3, v1beta1, v1); skipped",
                vs.id
            ));
            continue;
        }
        if let Some(svc) = convert_vs(doc, &vs, &mut claimed, &mut report)? {
            report.proxies.insert(Target::Mesh.to_string());
            out.services.push(svc.0);
            let rules = svc.1.iter().map(|i| format!("{} spec.http[{i}]", vs.id));
            report.origins.push((vs.id.clone(), rules.collect()));
        }
    }
    Ok((out, report))
}

fn convert_vs(
    doc: &Value,
    vs: &Vs<'_>,
    claimed: &mut BTreeMap<String, String>,
    report: &mut Report,
) -> Result<Option<(ServiceOut, Vec<usize>)>> {
    let Some(spec) = doc.get("spec").and_then(Value::as_object) else {
        vs.warn(report, "spec", "missing; skipped");
        return Ok(None);
    };
    let binding = binding(spec.get("gateways"));
    if let Some(target) = vs.opts.target.as_ref().filter(|t| **t != Target::Mesh) {
        if binding != Binding::GatewaysOnly {
            report.notes.push(format!(
                "{}: spec.gateways: bound to the mesh (sidecars), not to {target}; skipped (--for)",
                vs.id
            ));
            return Ok(None);
        }
    }
    match binding {
        Binding::Mesh => {}
        Binding::GatewaysOnly => {
            vs.warn(
                report,
                "spec.gateways",
                "bound to gateways only (no `mesh`), so it never applies to sidecars; skipped",
            );
            return Ok(None);
        }
        Binding::MeshAndGateways => vs.warn(
            report,
            "spec.gateways",
            "also bound to gateways: only the sidecar (`mesh`) part is carried over",
        ),
    }
    for (k, v) in spec {
        match k.as_str() {
            "hosts" | "http" | "gateways" => {}
            "tcp" | "tls" => vs.warn(
                report,
                &format!("spec.{k}"),
                &format!(
                    "{} {k} route(s) not supported by canary-router (HTTP only); dropped",
                    v.as_array().map_or(0, Vec::len)
                ),
            ),
            "exportTo" => vs.warn(
                report,
                "spec.exportTo",
                "visibility is not carried over: the rules apply wherever the filter runs; dropped",
            ),
            other => vs.warn(report, &format!("spec.{other}"), "not supported; dropped"),
        }
    }
    let mut hosts = Vec::new();
    for (hi, h) in spec
        .get("hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.hosts[{hi}]");
        let Some(h) = h.as_str() else {
            return Err(CliError::rejected(format!(
                "{}: {path}: not a string",
                vs.id
            )));
        };
        let fqdn = vs.expand(h);
        if let Some(first) = claimed.get(&fqdn) {
            vs.warn(
                report,
                &path,
                &format!(
                    "host {fqdn} is already routed by {first} (a sidecar uses one VirtualService per host); dropped"
                ),
            );
            continue;
        }
        claimed.insert(fqdn.clone(), vs.id.clone());
        hosts.push(fqdn);
    }
    if hosts.is_empty() {
        vs.warn(report, "spec.hosts", "no host left to route; skipped");
        return Ok(None);
    }
    let mut rules = Vec::new();
    let mut indices = Vec::new();
    for (ri, route) in spec
        .get("http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(r) = convert_route(route, &format!("spec.http[{ri}]"), vs, report)? {
            rules.push(r);
            indices.push(ri);
        }
    }
    if rules.is_empty() {
        vs.warn(
            report,
            "spec.http",
            "no HTTP route could be carried over; skipped",
        );
        return Ok(None);
    }
    Ok(Some((
        ServiceOut {
            hosts,
            http: rules,
            destination_port: vs.opts.service_port,
            default_destination: None,
        },
        indices,
    )))
}

fn convert_route(
    route: &Value,
    path: &str,
    vs: &Vs<'_>,
    report: &mut Report,
) -> Result<Option<RouteOut>> {
    let Some(obj) = route.as_object() else {
        return Err(CliError::rejected(format!(
            "{}: {path}: not an object",
            vs.id
        )));
    };
    for k in obj.keys() {
        if let Some(why) = rule_blocking_reason(k) {
            vs.warn(
                report,
                &format!("{path}.{k}"),
                &format!("{why}; the whole rule is skipped, so requests it matched fall through to the next rules"),
            );
            return Ok(None);
        }
    }
    let mut out = RouteOut {
        name: None,
        matches: Vec::new(),
        route: Vec::new(),
        policies: serde_json::Map::new(),
    };
    let policies: Vec<&str> = policy::policy_fields(HttpRoute::schema()).collect();
    for (k, v) in obj {
        let fpath = format!("{path}.{k}");
        match k.as_str() {
            "name" => match v.as_str() {
                Some(n) => out.name = Some(n.to_string()),
                None => {
                    return Err(CliError::rejected(format!(
                        "{}: {fpath}: not a string",
                        vs.id
                    )))
                }
            },
            "match" | "route" => {}
            k if policies.contains(&k) => {
                if !v.is_null() {
                    out.policies.insert(k.to_string(), carry_policy(k, v, vs));
                }
            }
            k if MIRROR_PERCENT.contains(&k) => {}
            _ => vs.warn(report, &fpath, "not supported by canary-router; dropped"),
        }
    }
    if let Some((k, p)) = MIRROR_PERCENT
        .iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
    {
        let fpath = format!("{path}.{k}");
        if out.policies.contains_key("mirrorPercentage") {
            vs.warn(
                report,
                &fpath,
                "ignored, as Istio ignores it beside mirrorPercentage; dropped",
            );
        } else if !out.policies.contains_key("mirror") {
            vs.warn(
                report,
                &fpath,
                "without `mirror` nothing is mirrored; dropped",
            );
        } else {
            let n = p.as_u64().filter(|n| *n <= 100).ok_or_else(|| {
                CliError::rejected(format!("{}: {fpath}: not an integer from 0 to 100", vs.id))
            })?;
            // Istio: n per hundred, the same fraction as mirrorPercentage n.
            out.policies
                .insert("mirrorPercentage".into(), serde_json::json!({ "value": n }));
        }
    }
    let match_list = obj.get("match").and_then(Value::as_array);
    let given = match_list.map_or(0, Vec::len);
    for (mi, m) in match_list.into_iter().flatten().enumerate() {
        if let Some(entry) = convert_match(m, &format!("{path}.match[{mi}]"), vs, report)? {
            out.matches.push(entry);
        }
    }
    if given > 0 && out.matches.is_empty() {
        vs.warn(
            report,
            &format!("{path}.match"),
            "every match entry is for gateways only, so the rule never applies to sidecars; skipped",
        );
        return Ok(None);
    }
    let dests = obj.get("route").and_then(Value::as_array);
    let Some(dests) = dests.filter(|d| !d.is_empty()) else {
        vs.warn(
            report,
            &format!("{path}.route"),
            "no destinations; the rule is skipped",
        );
        return Ok(None);
    };
    let many = dests.len() > 1;
    for (di, d) in dests.iter().enumerate() {
        out.route.push(convert_destination(
            d,
            &format!("{path}.route[{di}]"),
            many,
            vs,
            report,
        )?);
    }
    // Istio's validation of the policies, by the VirtualService's paths.
    let rule = serde_json::to_value(&out)
        .map_err(|e| CliError::rejected(format!("cannot write JSON: {e}")))?;
    glue::check_rule(&rule, path).map_err(|e| CliError::rejected(format!("{}: {e}", vs.id)))?;
    Ok(Some(out))
}

fn convert_match(
    m: &Value,
    path: &str,
    vs: &Vs<'_>,
    report: &mut Report,
) -> Result<Option<MatchOut>> {
    let Some(obj) = m.as_object() else {
        return Err(CliError::rejected(format!(
            "{}: {path}: not an object",
            vs.id
        )));
    };
    // An empty or absent list inherits the VirtualService's binding, which
    // includes the sidecars (or the VirtualService was skipped).
    match binding(obj.get("gateways")) {
        Binding::Mesh => {}
        Binding::GatewaysOnly => {
            vs.warn(
                report,
                &format!("{path}.gateways"),
                "this match entry is for gateways only, never for sidecars; entry dropped",
            );
            return Ok(None);
        }
        Binding::MeshAndGateways => vs.warn(
            report,
            &format!("{path}.gateways"),
            "includes `mesh`: the entry applies to sidecars as written; the gateway binding is dropped",
        ),
    }
    // Every field the filter's match entry has is carried as written.
    let mut out = MatchOut::default();
    for field in MatchRequest::FIELDS {
        out.set(field, obj.get(*field).cloned());
    }
    for field in ["headers", "withoutHeaders"] {
        let names = obj.get(field).and_then(Value::as_object);
        for name in names.into_iter().flat_map(|m| m.keys()) {
            if name.eq_ignore_ascii_case(canary_router::domain::plugin::DEFAULT_ROUTE_HEADER) {
                vs.warn(
                    report,
                    &format!("{path}.{field}.{name}"),
                    "matches on the header canary-router itself writes (and a client could send): \
                     this VirtualService looks like the routing glue (wasmplugin/route-virtualservice.yaml), \
                     not canary rules; the filter refuses rules that read its route header",
                );
            }
        }
    }
    for k in obj.keys() {
        if MatchRequest::FIELDS.contains(&k.as_str()) || k == "gateways" {
            continue;
        }
        let why = if k == "statPrefix" {
            "per-route stat prefixes are not supported (canary-router's own stats name the rule); dropped"
        } else {
            "match field not supported by canary-router; dropped, so this entry matches MORE requests than in Istio"
        };
        vs.warn(report, &format!("{path}.{k}"), why);
    }
    Ok(Some(out))
}

fn convert_destination(
    d: &Value,
    path: &str,
    many: bool,
    vs: &Vs<'_>,
    report: &mut Report,
) -> Result<DestinationOut> {
    let Some(obj) = d.as_object() else {
        return Err(CliError::rejected(format!(
            "{}: {path}: not an object",
            vs.id
        )));
    };
    for (k, _) in obj {
        match k.as_str() {
            "destination" | "weight" | "headers" => {}
            other => vs.warn(
                report,
                &format!("{path}.{other}"),
                "not supported by canary-router; dropped",
            ),
        }
    }
    let dpath = format!("{path}.destination");
    let Some(dest) = obj.get("destination").and_then(Value::as_object) else {
        return Err(CliError::rejected(format!("{}: {dpath}: missing", vs.id)));
    };
    let Some(host) = dest.get("host").and_then(Value::as_str) else {
        return Err(CliError::rejected(format!(
            "{}: {dpath}.host: missing or not a string",
            vs.id
        )));
    };
    for k in dest.keys() {
        if !matches!(k.as_str(), "host" | "subset" | "port") {
            vs.warn(
                report,
                &format!("{dpath}.{k}"),
                "not supported by canary-router; dropped",
            );
        }
    }
    let port = match dest.get("port") {
        Some(p) => match p.get("number") {
            Some(n) => Some(PortOut { number: n.clone() }),
            None => {
                return Err(CliError::rejected(format!(
                    "{}: {dpath}.port.number: missing",
                    vs.id
                )))
            }
        },
        // Istio's GetDestinationCluster: a service's only port; the input's
        // ServiceEntries say what the port of theirs is.
        None => match vs
            .opts
            .service_entries
            .get(&vs.expand(host).to_ascii_lowercase())
            .and_then(|se| se.only_port().map(|p| (se, p)))
        {
            Some((se, p)) => {
                report.notes.push(format!(
                    "{}: {dpath}: no port: port {p}, the only port of {}, as Istio resolves it",
                    vs.id, se.id
                ));
                Some(PortOut {
                    number: Value::from(p),
                })
            }
            None => vs.opts.default_port.map(|p| PortOut {
                number: Value::from(p),
            }),
        },
    };
    if port.is_none() && vs.opts.service_port.is_none() {
        report.portless.push(format!("{}: {dpath}", vs.id));
    }
    // Istio: a destination without a weight gets 0 when there are several
    // (proto3 default); canary-router wants it written.
    let weight = match obj.get("weight") {
        Some(w) => Some(w.clone()),
        None if many => Some(Value::from(0)),
        None => None,
    };
    Ok(DestinationOut {
        headers: obj.get("headers").filter(|h| !h.is_null()).cloned(),
        destination: DestOut {
            host: Some(vs.expand(host)),
            subset: dest.get("subset").cloned(),
            port,
            cluster: None,
        },
        weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input;

    fn opts() -> Options {
        Options {
            namespace: "default".into(),
            cluster_domain: "cluster.local".into(),
            default_port: None,
            service_port: None,
            service_entries: Default::default(),
            service_entry_hosts: Default::default(),
            target: None,
        }
    }

    #[test]
    fn expands_short_hosts_against_the_manifest_namespace() {
        let docs = input::yaml_documents(
            br"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews, ratings.other, '*.example.com']
  http:
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
",
            "t",
        )
        .unwrap();
        let (file, report) = convert(&docs, &|_| "t".into(), &opts()).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let v = serde_json::to_value(&file).unwrap();
        assert_eq!(
            v["services"][0]["hosts"],
            serde_json::json!([
                "reviews.prod.svc.cluster.local",
                "ratings.other",
                "*.example.com"
            ])
        );
        assert_eq!(
            v["services"][0]["http"][0]["route"][0]["destination"]["host"],
            "reviews.prod.svc.cluster.local"
        );
    }
}
