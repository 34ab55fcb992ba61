//! Who this proxy is, for `sourceLabels` / `sourceNamespace` rules.
//!
//! The wasm filter reads Istio's node metadata (`NAMESPACE`, `LABELS`);
//! Envoy 1.40's dynamic-module ABI gives a module no access to the node.
//! The module reads what pilot-agent itself builds that metadata from,
//! in the istio-proxy container: the namespace from `POD_NAMESPACE` and
//! the labels from the downward-API file `/etc/istio/pod/labels`
//! (`key="value"` lines). `CANARY_ROUTER_NAMESPACE`, `CANARY_ROUTER_LABELS`
//! (`k=v,k=v`) and `CANARY_ROUTER_GATEWAY=1` override them, for a plain
//! Envoy (the examples and tests set them).

use canary_router::Workload;
use filter_runtime::map::Map;

/// Istio's downward-API labels file in every injected pod.
pub const ISTIO_LABELS_FILE: &str = "/etc/istio/pod/labels";

/// The workload from this process's environment.
pub fn from_env() -> Workload {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let namespace = var("CANARY_ROUTER_NAMESPACE").or_else(|| var("POD_NAMESPACE"));
    let labels = match var("CANARY_ROUTER_LABELS") {
        Some(list) => parse_list(&list),
        None => std::fs::read_to_string(ISTIO_LABELS_FILE)
            .map(|text| parse_downward_api(&text))
            .unwrap_or_default(),
    };
    let gateway = var("CANARY_ROUTER_GATEWAY").is_some_and(|v| v == "1" || v == "true");
    Workload {
        namespace,
        labels: labels.into_iter().collect::<Map<String>>(),
        gateway,
    }
}

/// `k=v,k=v`.
pub fn parse_list(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The downward API's format: one `key="value"` per line, the value quoted
/// with Go's escapes (only `\"` and `\\` occur in label values).
pub fn parse_downward_api(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (
                k.trim().to_string(),
                v.replace("\\\"", "\"").replace("\\\\", "\\"),
            )
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_label_formats() {
        assert_eq!(
            parse_list("app=frontend, version=v2"),
            vec![
                ("app".into(), "frontend".into()),
                ("version".into(), "v2".into())
            ]
        );
        assert_eq!(
            parse_downward_api("app=\"frontend\"\nversion=\"v2\"\nodd=\"a\\\"b\"\n"),
            vec![
                ("app".into(), "frontend".into()),
                ("version".into(), "v2".into()),
                ("odd".into(), "a\"b".into())
            ]
        );
    }
}
