//! Reading an example's `envoy.yaml` and rendering it for one run.
//!
//! The YAML is parsed into a JSON tree and edited structurally (no text
//! substitution): fixed ports become free loopback ports, relative wasm paths
//! become absolute, and the wasm filter's inline `configuration` can be
//! replaced by another rules file. The rendered file is JSON, which Envoy
//! reads like YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{repo_root, Error};

/// `@type` of the HTTP wasm filter's config.
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// `@type` of a plugin `configuration` that carries a string.
pub const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// An Envoy bootstrap, parsed from YAML (or JSON) into a JSON tree.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    origin: PathBuf,
    doc: Value,
}

impl EnvoyConfig {
    /// Parses a bootstrap file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("reading {}: {e}", path.display())))?;
        Self::from_yaml_str(&text, path)
    }

    /// `examples/<name>/envoy.yaml`.
    pub fn from_example(name: &str) -> Result<Self, Error> {
        Self::from_file(example_dir(name).join("envoy.yaml"))
    }

    /// Parses bootstrap YAML; `origin` is only used in messages.
    pub fn from_yaml_str(text: &str, origin: impl AsRef<Path>) -> Result<Self, Error> {
        let origin = origin.as_ref().to_path_buf();
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| Error::new(format!("parsing {}: {e}", origin.display())))?;
        if !doc.is_object() {
            return Err(Error::new(format!(
                "{}: the bootstrap is not a mapping",
                origin.display()
            )));
        }
        Ok(EnvoyConfig { origin, doc })
    }

    /// The file this config was read from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The parsed tree.
    pub fn value(&self) -> &Value {
        &self.doc
    }

    /// Points every module the config names by the path
    /// `scripts/build-module.sh` writes, relative to the repository root
    /// (as the examples do), at `so` instead.
    pub fn load_module_from(&mut self, so: &Path) {
        let so = Value::from(so.to_string_lossy().into_owned());
        self.for_each_object_mut(|obj| {
            if obj.get("filename").and_then(Value::as_str)
                == Some(crate::module::FILTER_MODULE_RELATIVE)
            {
                obj.insert("filename".into(), so.clone());
            }
        });
    }

    /// Calls `f` on every object of the config tree, depth first (for edits
    /// the typed helpers don't cover).
    pub fn for_each_object_mut(&mut self, mut f: impl FnMut(&mut Map<String, Value>)) {
        visit_mut(self.value_mut(), &mut f);
    }

    /// The parsed tree, to edit.
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.doc
    }

    /// The tree as JSON text, as written for Envoy.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.doc).unwrap_or_default()
    }

    /// The `config` of every HTTP wasm filter (the `PluginConfig`).
    fn wasm_plugin_configs_mut(&mut self) -> Vec<&mut Map<String, Value>> {
        let mut found = Vec::new();
        collect_wasm_configs(&mut self.doc, &mut found);
        found
    }

    /// The inline `configuration` string of the only wasm filter (the rules).
    pub fn wasm_configuration(&self) -> Result<String, Error> {
        let mut copy = self.doc.clone();
        let mut found = Vec::new();
        collect_wasm_configs(&mut copy, &mut found);
        let [config] = found.as_slice() else {
            return Err(self.error(format!(
                "expected exactly one envoy.filters.http.wasm filter, found {}",
                found.len()
            )));
        };
        let configuration = config
            .get("configuration")
            .ok_or_else(|| self.error("the wasm filter has no `configuration`"))?;
        let ty = configuration.get("@type").and_then(Value::as_str);
        if ty != Some(STRING_VALUE_TYPE) {
            return Err(self.error(format!(
                "the wasm filter's configuration has @type {ty:?}, expected {STRING_VALUE_TYPE}"
            )));
        }
        configuration
            .get("value")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.error("the wasm filter's configuration has no string `value`"))
    }

    /// Replaces the inline `configuration` of every wasm filter.
    pub fn set_wasm_configuration(&mut self, rules: &str) -> Result<(), Error> {
        let mut configs = self.wasm_plugin_configs_mut();
        if configs.is_empty() {
            return Err(Error::new("no envoy.filters.http.wasm filter to configure"));
        }
        for config in configs.iter_mut() {
            config.insert(
                "configuration".into(),
                serde_json::json!({ "@type": STRING_VALUE_TYPE, "value": rules }),
            );
        }
        Ok(())
    }

    /// Replaces the inline rules with the contents of a rules file.
    pub fn set_rules_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let rules = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("reading {}: {e}", path.display())))?;
        self.set_wasm_configuration(&rules)
    }

    /// `vm_config.code.local.filename` of every wasm filter.
    pub fn wasm_filenames(&self) -> Vec<String> {
        let mut copy = self.doc.clone();
        let mut found = Vec::new();
        collect_wasm_configs(&mut copy, &mut found);
        found
            .iter()
            .filter_map(|c| {
                c.get("vm_config")?
                    .get("code")?
                    .get("local")?
                    .get("filename")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Sets `vm_config.code.local.filename` of every wasm filter to `f(old)`.
    pub fn map_wasm_filenames(&mut self, mut f: impl FnMut(&str) -> String) {
        for config in self.wasm_plugin_configs_mut() {
            let local = config
                .get_mut("vm_config")
                .and_then(|v| v.get_mut("code"))
                .and_then(|v| v.get_mut("local"))
                .and_then(Value::as_object_mut);
            if let Some(local) = local {
                if let Some(old) = local.get("filename").and_then(Value::as_str) {
                    let new = f(old);
                    local.insert("filename".into(), Value::String(new));
                }
            }
        }
    }

    /// Every non-zero `port_value` of a `socket_address` (listeners, cluster
    /// endpoints, admin).
    pub fn fixed_ports(&self) -> BTreeSet<u16> {
        let mut ports = BTreeSet::new();
        visit(&self.doc, &mut |obj| {
            if let Some(sa) = obj.get("socket_address") {
                if let Some(p) = sa.get("port_value").and_then(Value::as_u64) {
                    if let Ok(p) = u16::try_from(p) {
                        if p != 0 {
                            ports.insert(p);
                        }
                    }
                }
            }
        });
        ports
    }

    /// Replaces ports everywhere they appear in a `socket_address`.
    pub fn remap_ports(&mut self, map: &BTreeMap<u16, u16>) {
        visit_mut(&mut self.doc, &mut |obj| {
            if let Some(sa) = obj.get_mut("socket_address").and_then(Value::as_object_mut) {
                let old = sa
                    .get("port_value")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
                if let Some(new) = old.and_then(|p| map.get(&p)) {
                    sa.insert("port_value".into(), Value::from(*new));
                }
            }
        });
    }

    /// The admin port as written (`admin.address.socket_address.port_value`).
    pub fn admin_port(&self) -> Option<u16> {
        self.doc
            .pointer("/admin/address/socket_address/port_value")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
    }

    /// Sets the admin port (0: Envoy picks one; read it from
    /// `--admin-address-path`).
    pub fn set_admin_port(&mut self, port: u16) -> Result<(), Error> {
        let origin = self.origin.display().to_string();
        let slot = self
            .doc
            .pointer_mut("/admin/address/socket_address")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::new(format!("{origin}: no admin.address.socket_address")))?;
        slot.insert("port_value".into(), Value::from(port));
        Ok(())
    }

    /// Removes every `access_log` (for benchmarks).
    pub fn strip_access_logs(&mut self) {
        visit_mut(&mut self.doc, &mut |obj| {
            obj.remove("access_log");
        });
    }

    /// Static listeners as (name, port as written).
    pub fn listeners(&self) -> Vec<(String, u16)> {
        self.doc
            .pointer("/static_resources/listeners")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|l| {
                let name = l.get("name").and_then(Value::as_str).unwrap_or_default();
                let port = l
                    .pointer("/address/socket_address/port_value")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0);
                (name.to_owned(), port)
            })
            .collect()
    }

    /// Moves the static listeners that contain a wasm filter out of the
    /// bootstrap and returns them, for serving through file-based LDS.
    pub(crate) fn take_wasm_listeners(&mut self) -> Vec<Value> {
        let Some(listeners) = self
            .doc
            .pointer_mut("/static_resources/listeners")
            .and_then(Value::as_array_mut)
        else {
            return Vec::new();
        };
        let (mut wasm, rest): (Vec<Value>, Vec<Value>) =
            std::mem::take(listeners).into_iter().partition(|l| {
                let mut l = l.clone();
                let mut found = Vec::new();
                collect_wasm_configs(&mut l, &mut found);
                !found.is_empty()
            });
        *listeners = rest;
        for listener in &mut wasm {
            if let Some(obj) = listener.as_object_mut() {
                obj.insert(
                    "@type".into(),
                    Value::from("type.googleapis.com/envoy.config.listener.v3.Listener"),
                );
            }
        }
        wasm
    }

    fn error(&self, msg: impl std::fmt::Display) -> Error {
        Error::new(format!("{}: {msg}", self.origin.display()))
    }
}

/// `examples/<name>` in the repository.
pub fn example_dir(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// The names of all examples: folders of `examples/` that hold an `envoy.yaml`.
pub fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("examples"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("envoy.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Replaces the wasm filters' inline rules in a listener (LDS resource);
/// how many it replaced.
pub fn set_listener_rules(listener: &mut Value, rules: &str) -> usize {
    let mut found = Vec::new();
    collect_wasm_configs(listener, &mut found);
    for config in found.iter_mut() {
        config.insert(
            "configuration".into(),
            serde_json::json!({ "@type": STRING_VALUE_TYPE, "value": rules }),
        );
    }
    found.len()
}

fn collect_wasm_configs<'a>(v: &'a mut Value, out: &mut Vec<&'a mut Map<String, Value>>) {
    match v {
        Value::Object(obj) => {
            let is_wasm = obj.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE);
            if is_wasm {
                if let Some(config) = obj.get_mut("config").and_then(Value::as_object_mut) {
                    out.push(config);
                }
                return;
            }
            for child in obj.values_mut() {
                collect_wasm_configs(child, out);
            }
        }
        Value::Array(items) => {
            for child in items {
                collect_wasm_configs(child, out);
            }
        }
        _ => {}
    }
}

fn visit(v: &Value, f: &mut impl FnMut(&Map<String, Value>)) {
    match v {
        Value::Object(obj) => {
            f(obj);
            for child in obj.values() {
                visit(child, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| visit(c, f)),
        _ => {}
    }
}

fn visit_mut(v: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    match v {
        Value::Object(obj) => {
            f(obj);
            for child in obj.values_mut() {
                visit_mut(child, f);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| visit_mut(c, f)),
        _ => {}
    }
}
