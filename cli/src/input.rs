//! Reading rule files: JSON or YAML, plain configurations, Kubernetes
//! manifests (WasmPlugin, TrafficExtension, ConfigMap) and Envoy bootstraps (the examples'
//! `envoy.yaml`), each reduced to the JSON bytes the filter would be given.
//!
//! YAML is converted to JSON first and then judged by the same parser, so the
//! paths in errors are the same as for JSON.

use std::io::Read;
use std::path::Path;

use canary_router::{ConfigError, ConfigErrorKind, Workload};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{CliError, Result};

/// The `@type` of Envoy's wasm HTTP filter.
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (one or more `---` separated documents).
    Yaml,
}

/// A file as read.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name to show (the path, or `<stdin>`).
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// JSON or YAML.
    pub format: Format,
}

/// Reads a file (`-` is standard input); the format comes from the extension,
/// else from the first character (`{` is JSON).
pub fn read_source(path: &Path) -> Result<Source> {
    let (name, bytes) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::usage(format!("reading standard input: {e}")))?;
        ("<stdin>".to_string(), bytes)
    } else {
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        (path.display().to_string(), bytes)
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ if bytes.trim_ascii_start().first() == Some(&b'{') => Format::Json,
        _ => Format::Yaml,
    };
    Ok(Source {
        name,
        bytes,
        format,
    })
}

/// How the filter takes a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The plugin configuration (`Plugin::from_bytes`): a WasmPlugin's
    /// `pluginConfig`, an Envoy wasm filter's `configuration`, or a bare rule
    /// file `{"services": [...]}` given in their place.
    Plugin,
    /// A rule file polled from a `ruleSource` (`rule_file_from_bytes`), e.g.
    /// the data of a ConfigMap.
    RuleFile,
}

/// One configuration found in a file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was found, for messages: the file name, and for manifests the
    /// document and the object.
    pub origin: String,
    /// Path of the configuration inside its document (`spec.pluginConfig`),
    /// put before the filter's JSON paths in errors; empty for a plain file.
    pub prefix: String,
    /// The JSON bytes the filter would be given.
    pub bytes: Vec<u8>,
    /// How the filter takes them.
    pub kind: Kind,
    /// The bytes were made from YAML (the parser's line and column numbers
    /// would point into the converted JSON, so they are not shown).
    pub converted: bool,
    /// The sidecar identity the file itself states (an Envoy bootstrap's
    /// node metadata), used when the command line gives none.
    pub node: Option<Workload>,
}

/// Everything found in a file.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The configurations, in file order.
    pub configs: Vec<Config>,
    /// Documents that were skipped, and why.
    pub notes: Vec<String>,
}

/// Finds the configurations in a file.
pub fn load(src: &Source) -> Result<Loaded> {
    let mut out = Loaded::default();
    match src.format {
        Format::Json => match serde_json::from_slice::<Value>(&src.bytes) {
            // Plain configurations keep their bytes: the filter's own parser
            // reports syntax errors, and the content version is the same.
            Ok(doc) if !is_manifest(&doc) && !is_envoy_bootstrap(&doc) => {
                out.configs
                    .push(plain(src.name.clone(), src.bytes.clone(), false));
            }
            Ok(doc) => classify(&src.name, doc, &mut out)?,
            Err(_) => out.configs.push(Config {
                origin: src.name.clone(),
                prefix: String::new(),
                bytes: src.bytes.clone(),
                kind: Kind::Plugin,
                converted: false,
                node: None,
            }),
        },
        Format::Yaml => {
            let docs = yaml_documents(&src.bytes, &src.name)?;
            let many = docs.len() > 1;
            for (i, doc) in docs.into_iter().enumerate() {
                let origin = if many {
                    format!("{}, document {}", src.name, i + 1)
                } else {
                    src.name.clone()
                };
                if doc.is_null() {
                    continue;
                }
                classify(&origin, doc, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Parses every `---` separated YAML document into JSON values.
pub fn yaml_documents(bytes: &[u8], name: &str) -> Result<Vec<Value>> {
    serde_yaml_ng::Deserializer::from_slice(bytes)
        .map(|doc| {
            Value::deserialize(doc)
                .map_err(|e| CliError::rejected(format!("{name}: not valid YAML: {e}")))
        })
        .collect()
}

fn is_manifest(doc: &Value) -> bool {
    doc.get("apiVersion").is_some_and(Value::is_string)
        && doc.get("kind").is_some_and(Value::is_string)
}

fn is_envoy_bootstrap(doc: &Value) -> bool {
    doc.get("static_resources").is_some() || doc.get("staticResources").is_some()
}

/// The keys of a rule file.
const RULE_FILE_KEYS: [&str; 3] = ["services", "version", "namespace"];

/// The plugin-only keys: a document without any of them reads as a bare rule file.
const PLUGIN_ONLY_KEYS: [&str; 4] = ["routeHeader", "debugHeader", "clusterDomain", "ruleSource"];

fn plain(origin: String, bytes: Vec<u8>, converted: bool) -> Config {
    Config {
        origin,
        prefix: String::new(),
        bytes,
        kind: Kind::Plugin,
        converted,
        node: None,
    }
}

/// Whether a plain configuration is a bare rule file (for messages only: the
/// filter takes both through `Plugin::from_bytes`).
pub fn looks_like_rule_file(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => !PLUGIN_ONLY_KEYS.iter().any(|k| map.contains_key(*k)),
        _ => false,
    }
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

fn object_name(doc: &Value) -> String {
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn classify(origin: &str, doc: Value, out: &mut Loaded) -> Result<()> {
    if is_manifest(&doc) {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = object_name(&doc);
        match kind {
            "WasmPlugin" => match doc.get("spec").and_then(|s| s.get("pluginConfig")) {
                Some(cfg) => out.configs.push(Config {
                    origin: format!("{origin} (WasmPlugin {name})"),
                    prefix: "spec.pluginConfig".into(),
                    bytes: json_bytes(cfg),
                    kind: Kind::Plugin,
                    converted: true,
                    node: None,
                }),
                None => out.notes.push(format!(
                    "{origin}: WasmPlugin {name} has no spec.pluginConfig; nothing to check"
                )),
            },
            // Istio 1.30's successor of WasmPlugin: the module's fields,
            // pluginConfig included, sit under `spec.wasm` (or it is Lua).
            "TrafficExtension" => match doc.get("spec").and_then(|s| s.get("wasm")) {
                Some(wasm) => match wasm.get("pluginConfig") {
                    Some(cfg) => out.configs.push(Config {
                        origin: format!("{origin} (TrafficExtension {name})"),
                        prefix: "spec.wasm.pluginConfig".into(),
                        bytes: json_bytes(cfg),
                        kind: Kind::Plugin,
                        converted: true,
                        node: None,
                    }),
                    None => out.notes.push(format!(
                        "{origin}: TrafficExtension {name} has no spec.wasm.pluginConfig; nothing to check"
                    )),
                },
                None => out.notes.push(format!(
                    "{origin}: TrafficExtension {name} has no spec.wasm (a Lua extension?); nothing to check"
                )),
            },
            "ConfigMap" => {
                let data = doc.get("data").and_then(Value::as_object);
                let mut found = false;
                for (key, value) in data.into_iter().flatten() {
                    let prefix = format!("data[\"{key}\"]");
                    let Some(text) = value.as_str() else {
                        out.notes.push(format!(
                            "{origin}: ConfigMap {name} {prefix} is not a string; skipped"
                        ));
                        continue;
                    };
                    let lower = key.to_ascii_lowercase();
                    let (bytes, converted) = if lower.ends_with(".json") {
                        (text.as_bytes().to_vec(), false)
                    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
                        let docs = yaml_documents(text.as_bytes(), &format!("{origin} {prefix}"))?;
                        match docs.as_slice() {
                            [one] => (json_bytes(one), true),
                            _ => {
                                return Err(CliError::rejected(format!(
                                    "{origin}: ConfigMap {name} {prefix}: a rule file is one YAML document, found {}",
                                    docs.len()
                                )))
                            }
                        }
                    } else {
                        out.notes.push(format!(
                            "{origin}: ConfigMap {name} {prefix} is not named *.json, *.yaml or *.yml; skipped"
                        ));
                        continue;
                    };
                    // Other files (an Envoy bootstrap, say) may share the
                    // ConfigMap: a rule file has one of its own keys, or does
                    // not parse at all (then the filter's parser says why).
                    let is_rules = match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Object(m)) => RULE_FILE_KEYS.iter().any(|k| m.contains_key(*k)),
                        Ok(_) => false,
                        Err(_) => true,
                    };
                    if !is_rules {
                        out.notes.push(format!(
                            "{origin}: ConfigMap {name} {prefix} is not a rule file (no `services`, `version` or `namespace`); skipped"
                        ));
                        continue;
                    }
                    found = true;
                    out.configs.push(Config {
                        origin: format!("{origin} (ConfigMap {name} {prefix})"),
                        prefix,
                        bytes,
                        kind: Kind::RuleFile,
                        converted,
                        node: None,
                    });
                }
                if !found {
                    out.notes.push(format!(
                        "{origin}: ConfigMap {name} has no rule file in its data; nothing to check"
                    ));
                }
            }
            other => out.notes.push(format!(
                "{origin}: {other} {name} is not a WasmPlugin, TrafficExtension or ConfigMap; skipped"
            )),
        }
        return Ok(());
    }
    if is_envoy_bootstrap(&doc) {
        let node = node_workload(&doc);
        let mut filters = Vec::new();
        wasm_filters(&doc, String::new(), &mut filters);
        if filters.is_empty() {
            out.notes.push(format!(
                "{origin}: an Envoy bootstrap without a wasm HTTP filter; nothing to check"
            ));
        }
        for (path, text) in filters {
            let text = text.into_bytes();
            let converted = text.trim_ascii_start().first() != Some(&b'{');
            let bytes = if converted {
                match yaml_documents(&text, origin)?.as_slice() {
                    [one] => json_bytes(one),
                    _ => text,
                }
            } else {
                text
            };
            out.configs.push(Config {
                origin: format!("{origin} (wasm filter configuration at {path})"),
                prefix: String::new(),
                bytes,
                kind: Kind::Plugin,
                converted,
                node: node.clone(),
            });
        }
        return Ok(());
    }
    out.configs
        .push(plain(origin.to_string(), json_bytes(&doc), true));
    Ok(())
}

/// The workload an Envoy bootstrap's `node.metadata` describes (Istio's
/// `NAMESPACE` and `LABELS`), if it names any.
fn node_workload(doc: &Value) -> Option<Workload> {
    let meta = doc.get("node")?.get("metadata")?;
    let namespace = meta
        .get("NAMESPACE")
        .and_then(Value::as_str)
        .map(str::to_string);
    let labels: filter_runtime::map::Map<String> = meta
        .get("LABELS")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    // Istio names a gateway's node `router~...`: its listener ports are its own.
    let gateway = doc
        .get("node")
        .and_then(|n| n.get("id"))
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with("router~"));
    (namespace.is_some() || !labels.is_empty() || gateway).then_some(Workload {
        namespace,
        labels,
        gateway,
    })
}

/// Every wasm HTTP filter's string configuration, with the path of its `value`.
fn wasm_filters(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            if map.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE) {
                let cfg = map.get("config").and_then(|c| c.get("configuration"));
                if let Some(text) = cfg.and_then(|c| c.get("value")).and_then(Value::as_str) {
                    out.push((
                        format!("{path}.config.configuration.value"),
                        text.to_string(),
                    ));
                }
                return;
            }
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                wasm_filters(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                wasm_filters(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Joins a prefix and a filter path (`spec.pluginConfig` + `services[0]`).
pub fn join_path(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Drops serde_json's ` at line L column C` (meaningless for converted YAML).
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i)
            if message[i + 9..]
                .split_once(" column ")
                .is_some_and(|(l, c)| l.parse::<u64>().is_ok() && c.parse::<u64>().is_ok()) =>
        {
            &message[..i]
        }
        _ => message,
    }
}

/// An error of the filter's parser, as `origin: path: why`.
pub fn describe(cfg: &Config, e: &ConfigError) -> String {
    let (path, why) = match e.kind() {
        ConfigErrorKind::Syntax { path, message } => {
            let m = if cfg.converted {
                strip_position(message)
            } else {
                message.as_str()
            };
            (path.as_str(), m.to_string())
        }
        ConfigErrorKind::Invalid { path, reason } => (path.as_str(), reason.to_string()),
        other => ("", other.to_string()),
    };
    let full = join_path(&cfg.prefix, path);
    if full.is_empty() {
        format!("{}: {why}", cfg.origin)
    } else {
        format!("{}: {full}: {why}", cfg.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths() {
        assert_eq!(join_path("", "services[0]"), "services[0]");
        assert_eq!(join_path("spec.pluginConfig", "."), "spec.pluginConfig");
        assert_eq!(
            join_path("spec.pluginConfig", "services[0].hosts"),
            "spec.pluginConfig.services[0].hosts"
        );
        assert_eq!(
            join_path("data[\"r.json\"]", "services"),
            "data[\"r.json\"].services"
        );
    }

    #[test]
    fn strips_only_a_real_position() {
        assert_eq!(
            strip_position("unknown field `x` at line 3 column 9"),
            "unknown field `x`"
        );
        assert_eq!(
            strip_position("seen at line of sight"),
            "seen at line of sight"
        );
    }
}
