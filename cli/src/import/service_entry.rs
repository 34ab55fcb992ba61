//! ServiceEntries in the input: what `import` takes from them. A
//! ServiceEntry is not a route, so it becomes no rule; but istiod gives a
//! destination without a port the port of its service when the service has
//! only one (`GetDestinationCluster`), and a ServiceEntry in the same input
//! says what that port is. Every host of the ServiceEntry is a service of
//! its own (wildcard hosts included, as written: istiod does not expand a
//! ServiceEntry's short names), with the ServiceEntry's ports.

use std::collections::BTreeMap;

use serde_json::Value;

const API_GROUP: &str = "networking.istio.io/";

/// A ServiceEntry host's service: which ServiceEntry says so, and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `ServiceEntry ns/name (origin)`, for notes.
    pub id: String,
    /// The ServiceEntry's port numbers.
    pub ports: Vec<u16>,
}

impl Service {
    /// The port istiod gives a destination without one: the only port.
    pub fn only_port(&self) -> Option<u16> {
        match self.ports.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// The ServiceEntries among `docs`, with their document index.
fn entries(docs: &[Value]) -> impl Iterator<Item = (usize, &Value)> {
    docs.iter().enumerate().filter(|(_, doc)| {
        let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        doc.get("kind").and_then(Value::as_str) == Some("ServiceEntry")
            && api.starts_with(API_GROUP)
    })
}

/// The services of the ServiceEntries among `docs`, by host (lower-cased);
/// `origin(i)` names document `i`. A host two ServiceEntries claim keeps
/// the first.
pub fn services(
    docs: &[Value],
    origin: &dyn Fn(usize) -> String,
    namespace: &str,
) -> BTreeMap<String, Service> {
    let mut out = BTreeMap::new();
    for (i, doc) in entries(docs) {
        let meta = doc.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        let id = format!(
            "ServiceEntry {}/{} ({})",
            text("namespace").unwrap_or(namespace),
            text("name").unwrap_or("<unnamed>"),
            origin(i)
        );
        let spec = doc.get("spec").unwrap_or(&Value::Null);
        let ports: Vec<u16> = spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("number").and_then(Value::as_u64))
            .filter_map(|n| u16::try_from(n).ok())
            .collect();
        for host in spec
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            out.entry(host.to_ascii_lowercase())
                .or_insert_with(|| Service {
                    id: id.clone(),
                    ports: ports.clone(),
                });
        }
    }
    out
}

/// The hosts of each ServiceEntry among `docs`, by (namespace, name), as
/// written: what istiod gives an HTTPRoute with that ServiceEntry as
/// parent (`serviceEntryHosts`).
pub fn hosts_by_entry(docs: &[Value], namespace: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for (_, doc) in entries(docs) {
        let meta = doc.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        let (Some(name), ns) = (text("name"), text("namespace").unwrap_or(namespace)) else {
            continue;
        };
        let hosts = doc
            .get("spec")
            .and_then(|s| s.get("hosts"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.entry((ns.to_string(), name.to_string()))
            .or_insert(hosts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_host_is_a_service_with_the_entrys_ports() {
        let docs = [
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                   "metadata": {"name": "ext", "namespace": "shop"},
                   "spec": {"hosts": ["*.Example.org", "api.example.net"], "resolution": "NONE",
                            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}}),
            json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "ServiceEntry",
                   "metadata": {"name": "two"},
                   "spec": {"hosts": ["api.example.net", "multi.example.net"],
                            "ports": [{"number": 80}, {"number": 443}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}),
        ];
        let found = services(&docs, &|i| format!("doc {i}"), "default");
        assert_eq!(
            found.keys().collect::<Vec<_>>(),
            ["*.example.org", "api.example.net", "multi.example.net"]
        );
        assert_eq!(found["*.example.org"].only_port(), Some(80));
        assert_eq!(found["api.example.net"].id, "ServiceEntry shop/ext (doc 0)");
        assert_eq!(found["multi.example.net"].only_port(), None);
        assert_eq!(
            found["multi.example.net"].id,
            "ServiceEntry default/two (doc 1)"
        );
    }
}
