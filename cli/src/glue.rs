//! What `canaryctl render` attaches the filter to, and the routing glue
//! (`--glue`): the EnvoyFilter whose route, first in each of the rules'
//! virtual hosts, sends a request to the cluster the filter wrote in the
//! route header (as wasmplugin/route-envoyfilter.yaml, for any rule file).
//!
//! Istio attaches policies to a Gateway API gateway (a pod labelled
//! `gateway.networking.k8s.io/gateway-name`) by `targetRefs` only: a
//! selector-based WasmPlugin or EnvoyFilter is ignored there
//! (`WorkloadPolicyMatcher.ShouldAttachPolicy`), and a waypoint takes
//! `targetRefs` to its Service. Sidecars take a selector.

use std::collections::{BTreeMap, BTreeSet};

use canary_router::cluster::ClusterName;
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

/// The Istio clusters each service's rules route to, by service name
/// (its first host, expanded): the glue sends a header only to these.
pub fn clusters_by_service(set: &canary_router::RuleSet) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (svc, _, d) in set.all_destinations() {
        if let ClusterName::Fixed(name) = &d.cluster {
            if name.starts_with("outbound|") {
                out.entry(svc.name.to_string())
                    .or_default()
                    .insert(name.to_string());
            }
        }
    }
    out
}

/// The EnvoyFilter of the routing glue: for each service, port and cluster
/// of that service's rules, a route inserted first in the virtual host
/// `<service>:<port>` of the route configuration of that port (Istio's
/// names, on sidecars and gateways) that matches the route header naming
/// exactly that cluster (an exact match: a regex over several clusters
/// soon exceeds Envoy's default RE2 program size of 100, which Envoy then
/// refuses) and routes by `cluster_header`.
pub fn envoy_filter(
    name: &str,
    namespace: &str,
    attach: &Attachment,
    route_header: &str,
    clusters: &BTreeMap<String, BTreeSet<String>>,
    ports: &BTreeSet<u16>,
) -> Value {
    let context = match attach {
        Attachment::Gateway(_) => "GATEWAY",
        _ => "SIDECAR_OUTBOUND",
    };
    let mut patches = Vec::new();
    for (service, names) in clusters {
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

fn patch(context: &str, service: &str, port: u16, route_header: &str, cluster: &str) -> Value {
    let header = map([
        ("name", s(route_header)),
        ("string_match", map([("exact", s(cluster))])),
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
        ("route", map([("cluster_header", s(route_header))])),
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
