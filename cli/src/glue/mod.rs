//! What `canaryctl render` attaches the filter to, and the routing glue
//! (`--glue`): the EnvoyFilter whose routes, first in each of the rules'
//! virtual hosts, send a request to the cluster the filter wrote in the
//! route header (as wasmplugin/route-envoyfilter.yaml, for any rule file),
//! or, for a destination without a port written port-less
//! (`portlessDestinations: glue`), to the cluster of the route's own port.
//!
//! Each glue route carries what istiod puts on the routes it builds
//! ([`policy`]): no route timeout and the mesh's default retry policy, and
//! for a rule with route policies (`timeout`, `retries`, `headers`, ...)
//! those policies, on routes of its own: such a rule writes
//! `<cluster>;<rule name>` into the route header, and its glue routes
//! repeat its match entries ([`matching`]) as istiod's routes have them.
//!
//! Istio attaches policies to a Gateway API gateway (a pod labelled
//! `gateway.networking.k8s.io/gateway-name`) by `targetRefs` only: a
//! selector-based WasmPlugin or EnvoyFilter is ignored there
//! (`WorkloadPolicyMatcher.ShouldAttachPolicy`), and a waypoint takes
//! `targetRefs` to its Service. Sidecars take a selector.

pub mod matching;
pub mod policy;

use std::collections::BTreeSet;

use canary_router::domain::cluster::ClusterName;
use canary_router::domain::hosts::{self, Expansion};
use canary_router::RuleSet;
use serde_json::json;
use serde_yaml_ng::{Mapping, Value};

use crate::yaml::{map, s};
use policy::{MeshDefaults, PolicyError, RouteFields};

/// Where the filter runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// Sidecars chosen by labels (none: every workload of the namespace).
    Sidecars(Vec<(String, String)>),
    /// A Gateway API Gateway (`targetRefs` kind Gateway).
    Gateway(String),
    /// An ambient waypoint, for a Service (`targetRefs` kind Service).
    Waypoint(String),
}

impl Attachment {
    /// The field that attaches a WasmPlugin or an EnvoyFilter: `selector` /
    /// `workloadSelector` (`selector_key`) or `targetRefs`; `None` for
    /// sidecars without labels.
    pub fn field(&self, selector_key: &'static str) -> Option<(&'static str, Value)> {
        let target = |group: &str, kind: &str, name: &str| {
            let r = map([("group", s(group)), ("kind", s(kind)), ("name", s(name))]);
            Some(("targetRefs", Value::Sequence(vec![r])))
        };
        match self {
            Attachment::Sidecars(labels) if labels.is_empty() => None,
            Attachment::Sidecars(labels) => {
                let mut m = Mapping::new();
                for (k, v) in labels {
                    m.insert(s(k), s(v));
                }
                let key = if selector_key == "selector" {
                    "matchLabels"
                } else {
                    "labels"
                };
                Some((selector_key, map([(key, Value::Mapping(m))])))
            }
            Attachment::Gateway(name) => target("gateway.networking.k8s.io", "Gateway", name),
            Attachment::Waypoint(name) => target("", "Service", name),
        }
    }

    /// What the header comment says the filter runs in.
    pub fn describe(&self) -> String {
        match self {
            Attachment::Sidecars(l) if l.is_empty() => "the client sidecars".into(),
            Attachment::Sidecars(l) => {
                let l: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("the client sidecars of {}", l.join(","))
            }
            Attachment::Gateway(g) => format!("Gateway {g} (targetRefs)"),
            Attachment::Waypoint(w) => format!("the waypoint of Service {w} (targetRefs)"),
        }
    }
}

/// One route of the glue: the virtual host it goes first in (`<service>:<port>`,
/// Istio's name, on the route configuration of `port`) and the route.
#[derive(Debug, Clone)]
pub struct GlueRoute {
    /// The route configuration's port.
    pub port: u16,
    /// The virtual host's name.
    pub vhost: String,
    /// The Envoy route, as JSON.
    pub route: serde_json::Value,
}

/// How the glue is built.
#[derive(Debug, Clone)]
pub struct GlueOptions<'a> {
    /// The request header the filter writes.
    pub route_header: &'a str,
    /// The ports whose route configurations get the glue.
    pub ports: &'a BTreeSet<u16>,
    /// The mesh's route defaults.
    pub mesh: &'a MeshDefaults,
    /// Namespace and cluster domain short hosts expand against.
    pub namespace: &'a str,
    /// Kubernetes cluster domain.
    pub cluster_domain: &'a str,
}

/// The glue routes of a rule set, in the order they must have, first, in
/// each virtual host. `services` is the rule file's `services` (the policies'
/// content, which the compiled rules do not keep).
///
/// A rule without a route policy shares, per service, port and value, one
/// route that matches the route header exactly and sends to the value's
/// cluster (`cluster_header`), with the mesh's defaults: 1000 such rules to
/// two subsets cost two routes. A rule with policies gets, per destination
/// and match entry, a route with the entry's match, its policies and
/// Istio's name and tracing operation, for the value `<cluster>;<rule>`.
pub fn glue_routes(
    set: &RuleSet,
    services: &serde_json::Value,
    opts: &GlueOptions<'_>,
) -> Result<Vec<GlueRoute>, PolicyError> {
    let shared = policy::mesh_fields(opts.mesh)?;
    let mut out = Vec::new();
    // Each port's `<cluster>;<rule>` values and the policies their routes
    // carry: two rules of one name must not give a value two sets.
    let mut carried: std::collections::BTreeMap<(u16, String), (RouteFields, String)> =
        Default::default();
    for (si, svc) in set.services().iter().enumerate() {
        let svc_json = &services[si];
        let namespace = svc_json["namespace"].as_str().unwrap_or(opts.namespace);
        let exp = Expansion {
            namespace,
            cluster_domain: opts.cluster_domain,
        };
        let service_port = svc_json["destinationPort"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok());
        for &port in opts.ports {
            let vhost = format!("{}:{port}", svc.name);
            let mut values: Vec<&ClusterName> = Vec::new();
            for (ri, rule) in svc.rules.iter().enumerate() {
                let rule_json = &svc_json["http"][ri];
                if !policy::has_policy(rule_json) {
                    for d in set.dests(&rule.route) {
                        let plain = matches!(&d.cluster, ClusterName::Fixed(n) if !n.starts_with("outbound|"));
                        if !plain && !values.contains(&d.cluster) {
                            values.push(d.cluster);
                        }
                    }
                    continue;
                }
                let path = format!("services[{si}].http[{ri}]");
                let mirror_cluster = |d: &serde_json::Value, p: &str| {
                    mirror_cluster(d, p, &exp, service_port.unwrap_or(port))
                };
                let suffix = format!(";{}", rule.name);
                for (di, d) in set.dests(&rule.route).enumerate() {
                    let fields =
                        policy::rule_fields(rule_json, &path, di, opts.mesh, &mirror_cluster)?;
                    let (value, target) = header_value(d.cluster, port);
                    match carried.get(&(port, value.clone())) {
                        Some((other, at)) if *other != fields => {
                            return Err(PolicyError {
                                path: format!("{path}.name"),
                                reason: format!(
                                    "{at} has the same name `{}` and sends to the same cluster with other policies: \
                                     the route header value {value} cannot tell them apart; give each rule its own name",
                                    rule.name
                                ),
                            })
                        }
                        Some(_) => {}
                        None => {
                            carried.insert((port, value.clone()), (fields.clone(), path.clone()));
                        }
                    }
                    let cluster = target.strip_suffix(&suffix).unwrap_or(&target).to_string();
                    let entries: Vec<Option<&serde_json::Value>> =
                        match rule_json["match"].as_array().filter(|m| !m.is_empty()) {
                            Some(list) => list.iter().map(Some).collect(),
                            None => vec![None],
                        };
                    for entry in entries {
                        // istiod: an entry for another port has no route here.
                        if let Some(p) = entry.and_then(|e| e["port"].as_u64()) {
                            if p != u64::from(port) {
                                continue;
                            }
                        }
                        let m = matching::route_match(entry);
                        let catch_all = matching::is_catch_all(&m);
                        let mut name = rule_json["name"].as_str().map(str::to_string);
                        if let Some(mn) = entry
                            .and_then(|e| e["name"].as_str())
                            .filter(|n| !n.is_empty())
                        {
                            name = Some(format!("{}.{mn}", name.unwrap_or_default()));
                        }
                        let operation = matching::operation(&m, &cluster, &svc.name, port);
                        out.push(GlueRoute {
                            port,
                            vhost: vhost.clone(),
                            route: route(
                                name.as_deref(),
                                m,
                                opts.route_header,
                                &value,
                                Target::Cluster(&cluster),
                                &fields,
                                &operation,
                            ),
                        });
                        // istiod emits nothing after a route that matches everything.
                        if catch_all {
                            break;
                        }
                    }
                }
            }
            for cluster in values {
                let (value, target) = header_value(cluster, port);
                let to = match cluster {
                    ClusterName::GluePort(_) => Target::Cluster(&target),
                    _ => Target::Header,
                };
                let operation =
                    matching::operation(&matching::route_match(None), &target, &svc.name, port);
                out.push(GlueRoute {
                    port,
                    vhost: vhost.clone(),
                    route: route(
                        Some("canary-router"),
                        matching::route_match(None),
                        opts.route_header,
                        &value,
                        to,
                        &shared,
                        &operation,
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// The value a destination's requests carry in the route header on a
/// route configuration of `port`, and the cluster they go to there (with
/// a rule's `;<name>` if it has one).
fn header_value(cluster: &ClusterName, port: u16) -> (String, String) {
    match cluster {
        // Written port-less; this port's route names the port.
        ClusterName::GluePort(value) => (value.to_string(), cluster.with_port(port)),
        _ => (cluster.with_port(port), cluster.with_port(port)),
    }
}

/// Where a glue route sends its requests.
enum Target<'a> {
    /// The cluster the route header names.
    Header,
    /// This cluster.
    Cluster(&'a str),
}

/// A glue route: `m` plus the exact route header value, to `to`, with the
/// route fields `f` and the tracing operation.
fn route(
    name: Option<&str>,
    mut m: serde_json::Value,
    route_header: &str,
    value: &str,
    to: Target<'_>,
    f: &RouteFields,
    operation: &str,
) -> serde_json::Value {
    // The route header first: other requests fail on it at once.
    let header = json!({"name": route_header, "string_match": {"exact": value}});
    match m["headers"].as_array_mut() {
        Some(h) => h.insert(0, header),
        None => m["headers"] = json!([header]),
    }
    let mut action = serde_json::Map::new();
    match to {
        Target::Header => {
            action.insert("cluster_header".into(), json!(route_header));
        }
        Target::Cluster(c) if f.cluster.is_empty() => {
            action.insert("cluster".into(), json!(c));
        }
        // The destination's header operations, where istiod puts them for a
        // rule with several destinations.
        Target::Cluster(c) => {
            let mut entry = serde_json::Map::new();
            entry.insert("name".into(), json!(c));
            entry.insert("weight".into(), json!(1));
            entry.extend(f.cluster.clone());
            action.insert("weighted_clusters".into(), json!({"clusters": [entry]}));
        }
    }
    action.extend(f.action.clone());
    let mut r = serde_json::Map::new();
    if let Some(n) = name {
        r.insert("name".into(), json!(n));
    }
    r.insert("match".into(), m);
    r.insert("route".into(), serde_json::Value::Object(action));
    r.extend(f.route.clone());
    r.insert("decorator".into(), json!({"operation": operation}));
    serde_json::Value::Object(r)
}

/// `GetDestinationCluster` for a mirror destination: its port, else the
/// service's `destinationPort`, else the glue route's port.
fn mirror_cluster(
    d: &serde_json::Value,
    path: &str,
    exp: &Expansion<'_>,
    port: u16,
) -> Result<String, PolicyError> {
    let bad = |p: String, reason: &str| PolicyError {
        path: p,
        reason: reason.to_string(),
    };
    let Some(obj) = d.as_object() else {
        return Err(bad(path.to_string(), "not a Destination object"));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "host" | "subset" | "port"))
    {
        return Err(bad(
            format!("{path}.{k}"),
            "not a field of an Istio Destination",
        ));
    }
    let host = obj
        .get("host")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if host.is_empty() || !hosts::valid_host(host) || host.starts_with('*') {
        return Err(bad(
            format!("{path}.host"),
            "missing, or not a service host",
        ));
    }
    let subset = match obj.get("subset") {
        None | Some(serde_json::Value::Null) => "",
        Some(s) => s
            .as_str()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| bad(format!("{path}.subset"), "not a subset name"))?,
    };
    let port = match obj.get("port").filter(|p| !p.is_null()) {
        None => port,
        Some(p) => p["number"]
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(format!("{path}.port.number"), "not a port number"))?,
    };
    Ok(format!(
        "outbound|{port}|{subset}|{}",
        hosts::expand(host, exp)
    ))
}

/// Checks the route policies of a rule file's `services` (as istiod checks
/// a VirtualService's), each error with its JSON path.
pub fn check_policies(services: &serde_json::Value) -> Result<(), PolicyError> {
    for (si, svc) in services.as_array().into_iter().flatten().enumerate() {
        for (ri, rule) in svc["http"].as_array().into_iter().flatten().enumerate() {
            check_rule(rule, &format!("services[{si}].http[{ri}]"))?;
        }
    }
    Ok(())
}

/// Checks the route policies of one rule (at `path`).
pub fn check_rule(rule: &serde_json::Value, path: &str) -> Result<(), PolicyError> {
    if !policy::has_policy(rule) {
        return Ok(());
    }
    let exp = Expansion {
        namespace: "default",
        cluster_domain: "cluster.local",
    };
    let mirror = |d: &serde_json::Value, p: &str| mirror_cluster(d, p, &exp, 80);
    let n = rule["route"].as_array().map_or(1, Vec::len).max(1);
    for di in 0..n {
        policy::rule_fields(rule, path, di, &MeshDefaults::default(), &mirror)?;
    }
    Ok(())
}

/// The EnvoyFilter of the routing glue: each route inserted first in its
/// virtual host (`INSERT_FIRST`), on sidecars (`SIDECAR_OUTBOUND`) or a
/// gateway (`GATEWAY`). Istio applies the patches in order, each before
/// all others, so each virtual host's routes are listed last route first.
pub fn envoy_filter(
    name: &str,
    namespace: &str,
    attach: &Attachment,
    routes: &[GlueRoute],
) -> Result<Value, String> {
    let context = match attach {
        Attachment::Gateway(_) => "GATEWAY",
        _ => "SIDECAR_OUTBOUND",
    };
    // Each virtual host's routes last first; the hosts in order.
    let mut listed: Vec<&GlueRoute> = routes.iter().rev().collect();
    listed.sort_by(|a, b| (a.port, &a.vhost).cmp(&(b.port, &b.vhost)));
    let mut patches = Vec::new();
    for r in listed {
        let value =
            serde_yaml_ng::to_value(&r.route).map_err(|e| format!("cannot write YAML: {e}"))?;
        let route_configuration = map([
            ("portNumber", Value::from(r.port)),
            ("vhost", map([("name", s(&r.vhost))])),
        ]);
        patches.push(map([
            ("applyTo", s("HTTP_ROUTE")),
            (
                "match",
                map([
                    ("context", s(context)),
                    ("routeConfiguration", route_configuration),
                ]),
            ),
            (
                "patch",
                map([("operation", s("INSERT_FIRST")), ("value", value)]),
            ),
        ]));
    }
    let mut spec = Mapping::new();
    if let Some((k, v)) = attach.field("workloadSelector") {
        spec.insert(s(k), v);
    }
    spec.insert(s("configPatches"), Value::Sequence(patches));
    Ok(map([
        ("apiVersion", s("networking.istio.io/v1alpha3")),
        ("kind", s("EnvoyFilter")),
        (
            "metadata",
            map([
                ("name", s(&format!("{name}-route"))),
                ("namespace", s(namespace)),
            ]),
        ),
        ("spec", Value::Mapping(spec)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_and_waypoints_are_targeted_sidecars_selected() {
        let (k, v) = Attachment::Gateway("edge".into())
            .field("selector")
            .unwrap();
        assert_eq!(k, "targetRefs");
        assert_eq!(
            serde_yaml_ng::to_string(&v).unwrap(),
            "- group: gateway.networking.k8s.io\n  kind: Gateway\n  name: edge\n"
        );
        let (_, v) = Attachment::Waypoint("echo".into())
            .field("selector")
            .unwrap();
        assert_eq!(v[0]["kind"], s("Service"));
        assert_eq!(v[0]["group"], s(""));
        let sidecars = Attachment::Sidecars(vec![("app".into(), "web".into())]);
        let (k, v) = sidecars.field("workloadSelector").unwrap();
        assert_eq!(k, "workloadSelector");
        assert_eq!(v["labels"]["app"], s("web"));
        assert!(Attachment::Sidecars(vec![]).field("selector").is_none());
    }
}
