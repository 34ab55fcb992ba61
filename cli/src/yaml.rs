//! Builders of YAML values, for the manifests `render` and its glue write.

use serde_yaml_ng::{Mapping, Value};

/// A YAML string.
pub(crate) fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// A mapping from `(key, value)` pairs, in order.
pub(crate) fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

pub(crate) fn push(m: &mut Value, key: &str, value: Value) {
    if let Value::Mapping(m) = m {
        m.insert(s(key), value);
    }
}
