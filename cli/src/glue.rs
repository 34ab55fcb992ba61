//! What `canaryctl render` attaches the filter to, and the routing glue
//! (`--glue`): the EnvoyFilter whose route, first in each of the rules'
//! virtual hosts, sends a request to the cluster the filter wrote in the
//! route header (as wasmplugin/route-envoyfilter.yaml, for any rule file),
//! or, for a destination without a port written port-less
//! (`portlessDestinations: glue`), to the cluster of the route's own port.
//!
//! Istio attaches policies to a Gateway API gateway (a pod labelled
//! `gateway.networking.k8s.io/gateway-name`) by `targetRefs` only: a
//! selector-based WasmPlugin or EnvoyFilter is ignored there
//! (`WorkloadPolicyMatcher.ShouldAttachPolicy`), and a waypoint takes
//! `targetRefs` to its Service. Sidecars take a selector.

use std::collections::{BTreeMap, BTreeSet};

use canary_router::domain::cluster::ClusterName;
use serde_yaml_ng::{Mapping, Value};

use crate::yaml::{map, s};

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

/// What each service's rules can write into the route header, by service
/// name (its first host, expanded): the glue routes only these values.
/// Plain Envoy clusters (not `outbound|...`) need no glue and are left out.
pub fn routes_by_service(set: &canary_router::RuleSet) -> BTreeMap<String, Vec<ClusterName>> {
    let mut out: BTreeMap<String, Vec<ClusterName>> = BTreeMap::new();
    for (svc, _, d) in set.all_destinations() {
        if matches!(&d.cluster, ClusterName::Fixed(n) if !n.starts_with("outbound|")) {
            continue;
        }
        let names = out.entry(svc.name.to_string()).or_default();
        if !names.contains(&d.cluster) {
            names.push(d.cluster.clone());
        }
    }
    out
}

/// The EnvoyFilter of the routing glue: for each service, port and value
/// of that service's rules, a route inserted first in the virtual host
/// `<service>:<port>` of the route configuration of that port (Istio's
/// names, on sidecars and gateways) that matches the route header holding
/// exactly that value (an exact match: a regex over several clusters soon
/// exceeds Envoy's default RE2 program size of 100, which Envoy then
/// refuses). A cluster name routes by `cluster_header`; a name with the
/// request's port, by `cluster_header` with that port's name; a port-less
/// value (`portlessDestinations: glue`) to that port's cluster.
pub fn envoy_filter(
    name: &str,
    namespace: &str,
    attach: &Attachment,
    route_header: &str,
    routes: &BTreeMap<String, Vec<ClusterName>>,
    ports: &BTreeSet<u16>,
) -> Value {
    let context = match attach {
        Attachment::Gateway(_) => "GATEWAY",
        _ => "SIDECAR_OUTBOUND",
    };
    let mut patches = Vec::new();
    for (service, names) in routes {
        for port in ports {
            for cluster in names {
                patches.push(patch(context, service, *port, route_header, cluster));
            }
        }
    }
    let mut spec = Mapping::new();
    if let Some((k, v)) = attach.field("workloadSelector") {
        spec.insert(s(k), v);
    }
    spec.insert(s("configPatches"), Value::Sequence(patches));
    map([
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
    ])
}

/// The header value a route of port `port` matches, and where it sends it.
fn glue_route(cluster: &ClusterName, port: u16, route_header: &str) -> (String, Value) {
    match cluster {
        ClusterName::GluePort(value) => (
            value.to_string(),
            map([("cluster", s(&cluster.with_port(port)))]),
        ),
        _ => (
            cluster.with_port(port),
            map([("cluster_header", s(route_header))]),
        ),
    }
}

fn patch(
    context: &str,
    service: &str,
    port: u16,
    route_header: &str,
    cluster: &ClusterName,
) -> Value {
    let (value, action) = glue_route(cluster, port, route_header);
    let header = map([
        ("name", s(route_header)),
        ("string_match", map([("exact", s(&value))])),
    ]);
    let value = map([
        ("name", s("canary-router")),
        (
            "match",
            map([
                ("prefix", s("/")),
                ("headers", Value::Sequence(vec![header])),
            ]),
        ),
        ("route", action),
    ]);
    let route_configuration = map([
        ("portNumber", Value::from(port)),
        ("vhost", map([("name", s(&format!("{service}:{port}")))])),
    ]);
    map([
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
    ])
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
