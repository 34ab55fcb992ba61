//! The second build of the filter: the Envoy dynamic module
//! (`module/`, `libcanary_router_module.so`). Tests, the demo and the
//! benchmark keep their configs in the wasm filter's form and pick a
//! [`Build`]; for [`Build::Module`] the runner rewrites every canary-router
//! wasm filter into a `DynamicModuleFilter` with the same rule JSON as its
//! `filter_config`, just before Envoy reads the file, and gives Envoy the
//! workload (namespace, labels, gateway) of the config's node metadata
//! through the environment, which is where the module reads it (the ABI
//! has no node).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::{repo_root, Error, STRING_VALUE_TYPE, WASM_FILTER_TYPE};

/// Which build of canary-router the wasm filters of a config run as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Build {
    /// The proxy-wasm filter (`.wasm`, V8).
    #[default]
    Wasm,
    /// The dynamic module (native `.so`).
    Module,
}

impl Build {
    /// Both builds, for tests that prove a behaviour of each.
    pub const ALL: [Build; 2] = [Build::Wasm, Build::Module];

    /// The build the end-to-end tests run unless a test picks one:
    /// `CANARY_ROUTER_BUILD=module` runs every suite against the module
    /// (`scripts/test.sh` runs them once per build).
    pub fn from_env() -> Build {
        match std::env::var("CANARY_ROUTER_BUILD").as_deref() {
            Ok("module") => Build::Module,
            _ => Build::Wasm,
        }
    }

    /// Builds this build's filter now (once per process, as starting an
    /// Envoy would), so that a test that times what follows an Envoy's
    /// start does not also time a build.
    pub fn prebuild(self) -> Result<(), Error> {
        match self {
            Build::Wasm => crate::build_filter_wasm().map(drop),
            Build::Module => build_filter_module().map(drop),
        }
    }

    /// A short name for test output.
    pub fn name(self) -> &'static str {
        match self {
            Build::Wasm => "wasm",
            Build::Module => "module",
        }
    }

    /// The prefix Envoy puts before the filter's stats in `/stats`.
    pub fn stat_prefix(self) -> &'static str {
        match self {
            Build::Wasm => "wasmcustom.",
            Build::Module => "dynamicmodulescustom.",
        }
    }
}

/// The DynamicModuleFilter's type URL.
pub const MODULE_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";

/// Where `scripts/build-module.sh` puts the `.so`, relative to the repo root.
pub const FILTER_MODULE_RELATIVE: &str = "target/module/libcanary_router_module.so";

/// The module to load: `$CANARY_ROUTER_MODULE` when set, else the module
/// built once per process (`cargo build --profile module`).
pub fn build_filter_module() -> Result<&'static Path, Error> {
    static BUILT: OnceLock<Result<PathBuf, Error>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if let Some(path) = std::env::var_os("CANARY_ROUTER_MODULE") {
            return Ok(PathBuf::from(path));
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(cargo)
            .current_dir(repo_root())
            .args(["build", "--profile", "module", "-p", "canary-router-module"])
            .output()
            .map_err(|e| Error::new(format!("running cargo: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "building the module failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        let target = if target.is_absolute() {
            target
        } else {
            repo_root().join(target)
        };
        Ok(target.join("module").join("libcanary_router_module.so"))
    });
    built.as_deref().map_err(Clone::clone)
}

/// Rewrites every wasm filter of `doc` into the module's filter, loading `so`,
/// and every other mention of the wasm filter's type URL (an ECDS
/// subscription's `type_urls`) into the module's. Returns how many filters
/// it rewrote.
pub fn wasm_filters_to_module(doc: &mut Value, so: &Path) -> usize {
    match doc {
        Value::String(s) if s == WASM_FILTER_TYPE => {
            *s = MODULE_FILTER_TYPE.to_owned();
            0
        }
        Value::Object(obj) => {
            if obj.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE) {
                let rules = obj
                    .get("config")
                    .and_then(|c| c.pointer("/configuration/value"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                *obj = module_filter(so, &rules);
                return 1;
            }
            obj.values_mut()
                .map(|v| wasm_filters_to_module(v, so))
                .sum()
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|v| wasm_filters_to_module(v, so))
            .sum(),
        _ => 0,
    }
}

/// An xDS resource file (YAML or JSON, e.g. an ECDS file of
/// `TypedExtensionConfig`s) with its wasm filters rewritten for `build`: as
/// it is for [`Build::Wasm`]; for [`Build::Module`], the module's filters
/// with the same rule JSON, as JSON (which Envoy reads from a `.yaml` file
/// too).
pub fn resource_file_for(build: Build, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    if build == Build::Wasm {
        return Ok(bytes.to_vec());
    }
    let so = build_filter_module()?;
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::new(format!("resource file is not UTF-8: {e}")))?;
    let mut doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| Error::new(format!("resource file is not YAML: {e}")))?;
    wasm_filters_to_module(&mut doc, so);
    serde_json::to_vec_pretty(&doc).map_err(|e| Error::new(format!("writing JSON: {e}")))
}

fn module_filter(so: &Path, rules: &str) -> Map<String, Value> {
    let v = json!({
        "@type": MODULE_FILTER_TYPE,
        "dynamic_module_config": { "module": { "local": { "filename": so } } },
        "filter_name": "canary-router",
        "filter_config": { "@type": STRING_VALUE_TYPE, "value": rules },
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The runtime flag that makes Envoy show a module's stats in Prometheus
/// without its namespace (`canary_router_requests{...}`, as for the wasm
/// filter, instead of `envoy_dynamicmodulescustom_canary_router_requests`).
pub const STRIP_PREFIX_FLAG: &str =
    "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";

/// Rewrites a bootstrap for the module: its wasm filters (see
/// [`wasm_filters_to_module`]) and a runtime layer with [`STRIP_PREFIX_FLAG`].
pub fn bootstrap_to_module(doc: &mut Value, so: &Path) {
    wasm_filters_to_module(doc, so);
    if let Some(obj) = doc.as_object_mut() {
        let runtime = obj
            .entry("layered_runtime")
            .or_insert_with(|| json!({ "layers": [] }));
        if let Some(layers) = runtime.get_mut("layers").and_then(Value::as_array_mut) {
            layers.push(json!({
                "name": "canary-router-module",
                "static_layer": { STRIP_PREFIX_FLAG: true },
            }));
        }
    }
}

/// The environment that gives the module the workload of `doc`'s node
/// metadata (`NAMESPACE`, `LABELS`, a `router~` node id for a gateway),
/// with the `--config-yaml` overrides among `args` merged as Envoy merges
/// them (a metadata key is replaced whole).
pub fn workload_env(doc: &Value, args: &[String]) -> Vec<(String, String)> {
    let mut doc = doc.clone();
    for pair in args.windows(2) {
        if let [flag, yaml] = pair {
            if flag == "--config-yaml" {
                if let Ok(over) = serde_yaml_ng::from_str::<Value>(yaml) {
                    merge_node(&mut doc, &over);
                }
            }
        }
    }
    let doc = &doc;
    let mut env = Vec::new();
    if let Some(ns) = doc
        .pointer("/node/metadata/NAMESPACE")
        .and_then(Value::as_str)
    {
        env.push(("CANARY_ROUTER_NAMESPACE".into(), ns.to_owned()));
    }
    if let Some(labels) = doc
        .pointer("/node/metadata/LABELS")
        .and_then(Value::as_object)
    {
        let list: Vec<String> = labels
            .iter()
            .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
            .collect();
        env.push(("CANARY_ROUTER_LABELS".into(), list.join(",")));
    }
    if doc
        .pointer("/node/id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with("router~"))
    {
        env.push(("CANARY_ROUTER_GATEWAY".into(), "1".into()));
    }
    env
}

fn merge_node(doc: &mut Value, over: &Value) {
    if let Some(id) = over.pointer("/node/id") {
        if let Some(node) = doc.get_mut("node").and_then(Value::as_object_mut) {
            node.insert("id".into(), id.clone());
        }
    }
    let Some(meta) = over.pointer("/node/metadata").and_then(Value::as_object) else {
        return;
    };
    if let Some(target) = doc
        .pointer_mut("/node/metadata")
        .and_then(Value::as_object_mut)
    {
        for (k, v) in meta {
            target.insert(k.clone(), v.clone());
        }
    }
}
