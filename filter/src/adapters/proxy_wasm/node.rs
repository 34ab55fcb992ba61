//! The sidecar's identity from Envoy's node metadata (`NAMESPACE`, `LABELS`,
//! as Istio writes them). Envoy 1.40 answers under `xds.node.metadata`; older
//! proxies under `node.metadata`. Both are tried, newest first.

use alloc::{string::String, vec::Vec};

use crate::Workload;
use filter_runtime::map::Map;

use filter_runtime::proxy_wasm::hostcalls;
use filter_runtime::proxy_wasm::logger;

const PREFIXES: [&[&str]; 2] = [&["xds", "node", "metadata"], &["node", "metadata"]];

/// Reads node metadata keys lazily and remembers them (they never change in
/// the life of a VM).
#[derive(Default)]
pub struct Node {
    namespace: Option<Option<String>>,
    gateway: Option<bool>,
    /// Label keys read so far, and their values.
    labels: Vec<(String, Option<String>)>,
}

fn read(path_tail: &[&str]) -> Option<String> {
    read_under(&PREFIXES, path_tail)
}

fn read_under(prefixes: &[&[&str]], path_tail: &[&str]) -> Option<String> {
    for prefix in prefixes {
        let mut path: Vec<&str> = Vec::with_capacity(prefix.len() + path_tail.len());
        path.extend_from_slice(prefix);
        path.extend_from_slice(path_tail);
        match hostcalls::property(&path) {
            Ok(bytes) if !bytes.as_slice().is_empty() => {
                logger::debug!(
                    "node metadata {} read from {}",
                    Dotted(path_tail),
                    Dotted(prefix)
                );
                return String::from_utf8(bytes.as_slice().to_vec()).ok();
            }
            _ => continue,
        }
    }
    None
}

/// A property path as Envoy's attributes write it: `node.metadata.NAME`
/// (what `join(".")` would build, without building it).
struct Dotted<'a>(&'a [&'a str]);

impl core::fmt::Display for Dotted<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

impl Node {
    /// The workload, with the labels the rules ask about.
    pub fn workload(&mut self, label_keys: &[String]) -> Workload {
        let namespace = self
            .namespace
            .get_or_insert_with(|| {
                let ns = read(&["NAMESPACE"]);
                match &ns {
                    Some(ns) => logger::info!("sidecar namespace from node metadata: {ns}"),
                    None => logger::info!("node metadata has no NAMESPACE: short hosts resolve against the configured namespace"),
                }
                ns
            })
            .clone();
        let mut labels = Vec::new();
        for key in label_keys {
            let value = match self.labels.iter().find(|(k, _)| k == key) {
                Some((_, v)) => v.clone(),
                None => {
                    let v = read(&["LABELS", key]);
                    self.labels.push((key.clone(), v.clone()));
                    v
                }
            };
            if let Some(v) = value {
                labels.push((key.clone(), v));
            }
        }
        let labels = Map::from_entries(labels);
        // Istio names a gateway's node `router~<ip>~<pod>~<domain>`, a
        // sidecar's `sidecar~...`.
        let gateway = *self.gateway.get_or_insert_with(|| {
            let id = read_under(&[&["xds", "node"], &["node"]], &["id"]);
            let gateway = id.as_deref().is_some_and(|id| id.starts_with("router~"));
            if gateway {
                logger::info!("node is an Istio gateway: destinations without a port need the service's destinationPort (or portlessDestinations: glue)");
            }
            gateway
        });
        Workload {
            namespace,
            labels,
            gateway,
        }
    }
}
