//! Properties (`proxy_get_property`): values set by the test, plugin identity, and the node
//! metadata, reachable under `xds.node.metadata` (Envoy 1.40 and later) and/or
//! `node.metadata` (older Envoy).
//!
//! Values are serialized like Envoy serializes CEL values: a string is its bytes, a number of
//! the node metadata (a `google.protobuf.Struct`, so a double) is 8 little-endian bytes of an
//! `f64`, a boolean is one byte, a map is the pairs serialization of its entries (values
//! serialized the same way, recursively), a list is the pairs serialization of its elements as
//! keys with empty values, and `null` cannot be serialized.

use super::maps::serialize_pairs;
use super::Status;
use serde_json::Value;
use std::collections::HashMap;

/// Where the node metadata is visible to `proxy_get_property`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodeMetadataPaths {
    /// Under both `xds.node.metadata` and `node.metadata`.
    #[default]
    Both,
    /// Only `xds.node.metadata`, as in Envoy 1.40 and later (the `node` property is gone).
    XdsOnly,
    /// Only `node.metadata`, as in older Envoy.
    LegacyOnly,
}

/// What a property lookup found.
pub(crate) enum Lookup {
    Found(Vec<u8>),
    Missing(Status),
    /// The path names something this host cannot serialize like Envoy would (a protobuf
    /// message): fail loudly rather than answer something Envoy would not.
    Unsupported(String),
}

pub(crate) struct Properties {
    values: HashMap<Vec<u8>, Vec<u8>>,
    node_metadata: Value,
    node_id: String,
    node_cluster: String,
    paths: NodeMetadataPaths,
}

/// Joins path segments the way the SDK serializes a property path.
pub(crate) fn serialize_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

impl Properties {
    pub(crate) fn new(
        node_metadata: Value,
        node_id: String,
        node_cluster: String,
        paths: NodeMetadataPaths,
    ) -> Self {
        Properties {
            values: HashMap::new(),
            node_metadata,
            node_id,
            node_cluster,
            paths,
        }
    }

    pub(crate) fn set(&mut self, path: &[&str], value: &[u8]) {
        self.values.insert(serialize_path(path), value.to_vec());
    }

    pub(crate) fn remove(&mut self, path: &[&str]) {
        self.values.remove(&serialize_path(path));
    }

    pub(crate) fn get(&self, path: &[u8]) -> Lookup {
        if let Some(value) = self.values.get(path) {
            return Lookup::Found(value.clone());
        }
        let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
        match segments.as_slice() {
            [b"xds", b"node", rest @ ..] if self.paths != NodeMetadataPaths::LegacyOnly => {
                self.node(rest, "xds.node")
            }
            [b"node", rest @ ..] if self.paths != NodeMetadataPaths::XdsOnly => {
                self.node(rest, "node")
            }
            _ => Lookup::Missing(Status::NotFound),
        }
    }

    fn node(&self, rest: &[&[u8]], prefix: &str) -> Lookup {
        match rest {
            [] => Lookup::Unsupported(format!(
                "property `{prefix}` is an envoy.config.core.v3.Node message (Envoy returns it \
                 serialized as protobuf, which this host does not do); ask for \
                 `{prefix}.metadata...`, `{prefix}.id` or `{prefix}.cluster`"
            )),
            [b"id"] => Lookup::Found(self.node_id.as_bytes().to_vec()),
            [b"cluster"] => Lookup::Found(self.node_cluster.as_bytes().to_vec()),
            [b"metadata", keys @ ..] => {
                let mut value = &self.node_metadata;
                for key in keys {
                    let next = match value {
                        Value::Object(map) => {
                            std::str::from_utf8(key).ok().and_then(|key| map.get(key))
                        }
                        Value::Array(list) => std::str::from_utf8(key)
                            .ok()
                            .and_then(|key| key.parse::<usize>().ok())
                            .and_then(|i| list.get(i)),
                        _ => None,
                    };
                    match next {
                        Some(next) => value = next,
                        None => return Lookup::Missing(Status::NotFound),
                    }
                }
                match serialize_value(value) {
                    Some(bytes) => Lookup::Found(bytes),
                    None => Lookup::Missing(Status::SerializationFailure),
                }
            }
            _ => Lookup::Missing(Status::NotFound),
        }
    }
}

/// Envoy's serialization of a CEL value converted from a `google.protobuf.Value`.
pub(crate) fn serialize_value(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Number(n) => Some(n.as_f64()?.to_le_bytes().to_vec()),
        Value::Bool(b) => Some(vec![u8::from(*b)]),
        Value::Null => None,
        Value::Object(map) => {
            let pairs = map
                .iter()
                .map(|(k, v)| Some((k.as_bytes().to_vec(), serialize_value(v)?)))
                .collect::<Option<Vec<_>>>()?;
            Some(serialize_pairs(&pairs))
        }
        Value::Array(list) => {
            let pairs = list
                .iter()
                .map(|v| Some((serialize_value(v)?, Vec::new())))
                .collect::<Option<Vec<_>>>()?;
            Some(serialize_pairs(&pairs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::maps::parse_pairs;
    use super::*;
    use serde_json::json;

    fn props(paths: NodeMetadataPaths) -> Properties {
        Properties::new(
            json!({"NAMESPACE": "default", "LABELS": {"app": "frontend"}, "N": 2, "ON": true}),
            "sidecar~1".into(),
            "frontend.default".into(),
            paths,
        )
    }

    fn found(lookup: Lookup) -> Vec<u8> {
        match lookup {
            Lookup::Found(bytes) => bytes,
            Lookup::Missing(status) => panic!("missing: {status:?}"),
            Lookup::Unsupported(why) => panic!("unsupported: {why}"),
        }
    }

    #[test]
    fn node_metadata_under_both_paths() {
        let p = props(NodeMetadataPaths::Both);
        let path = serialize_path(&["xds", "node", "metadata", "NAMESPACE"]);
        assert_eq!(found(p.get(&path)), b"default");
        let path = serialize_path(&["node", "metadata", "LABELS", "app"]);
        assert_eq!(found(p.get(&path)), b"frontend");
        let path = serialize_path(&["node", "metadata", "N"]);
        assert_eq!(found(p.get(&path)), 2f64.to_le_bytes());
        let path = serialize_path(&["node", "metadata", "ON"]);
        assert_eq!(found(p.get(&path)), [1]);
        let labels = found(p.get(&serialize_path(&["node", "metadata", "LABELS"])));
        assert_eq!(
            parse_pairs(&labels).unwrap(),
            vec![(&b"app"[..], &b"frontend"[..])]
        );
        assert_eq!(
            found(p.get(&serialize_path(&["xds", "node", "id"]))),
            b"sidecar~1"
        );
        assert!(matches!(
            p.get(&serialize_path(&["node", "metadata", "NOPE"])),
            Lookup::Missing(Status::NotFound)
        ));
        assert!(matches!(
            p.get(&serialize_path(&["node"])),
            Lookup::Unsupported(_)
        ));
    }

    #[test]
    fn one_path_only() {
        let xds = props(NodeMetadataPaths::XdsOnly);
        let legacy = serialize_path(&["node", "metadata", "NAMESPACE"]);
        let new = serialize_path(&["xds", "node", "metadata", "NAMESPACE"]);
        assert!(matches!(
            xds.get(&legacy),
            Lookup::Missing(Status::NotFound)
        ));
        assert_eq!(found(xds.get(&new)), b"default");
        let old = props(NodeMetadataPaths::LegacyOnly);
        assert!(matches!(old.get(&new), Lookup::Missing(Status::NotFound)));
        assert_eq!(found(old.get(&legacy)), b"default");
    }

    #[test]
    fn values_set_by_the_test_win() {
        let mut p = props(NodeMetadataPaths::Both);
        p.set(&["source", "address"], b"10.0.0.1:5555");
        assert_eq!(
            found(p.get(&serialize_path(&["source", "address"]))),
            b"10.0.0.1:5555"
        );
        p.remove(&["source", "address"]);
        assert!(matches!(
            p.get(&serialize_path(&["source", "address"])),
            Lookup::Missing(Status::NotFound)
        ));
    }
}
