//! Istio 1.30's `TrafficExtension` (`extensions.istio.io/v1alpha1`), which
//! Istio recommends over `WasmPlugin` from 1.30 on and into which istiod
//! converts every WasmPlugin (`pilot/pkg/config/kube/extensions`,
//! `translateWasmPlugin`). `canaryctl render --traffic-extension` writes the
//! WasmPlugin it renders through the same conversion, so both resources
//! carry the same selector or `targetRefs`, phase, priority, match, failure
//! strategy and plugin configuration.
//!
//! The API (istio/api `extensions/v1alpha1/traffic_extension.proto`, first
//! released in 1.30.0): `selector`, `targetRefs`, `phase`, `priority` and
//! `match` stay at the top of `spec`, with the same meaning and values but
//! the phase (`UNSPECIFIED` instead of `UNSPECIFIED_PHASE`: the same enum
//! number, `ExecutionPhase` instead of `PluginPhase`); the module's fields
//! (`url`, `sha256`, `imagePullPolicy`, `imagePullSecret`, `pluginConfig`,
//! `pluginName`, `failStrategy`, `vmConfig`, `type`) move under `wasm` (the
//! alternative being `lua`). A WasmPlugin's singular `targetRef` becomes
//! the one entry of `targetRefs`; its `verificationKey` is not carried.

use serde_yaml_ng::{Mapping, Value};

use crate::yaml::s;

/// Fields of a WasmPlugin `spec` that stay at the top of a TrafficExtension's.
const TOP: [&str; 5] = ["selector", "targetRefs", "phase", "priority", "match"];

/// Fields of a WasmPlugin `spec` that go under the TrafficExtension's `wasm`.
const WASM: [&str; 9] = [
    "url",
    "sha256",
    "imagePullPolicy",
    "imagePullSecret",
    "pluginConfig",
    "pluginName",
    "failStrategy",
    "vmConfig",
    "type",
];

/// The `spec` of the TrafficExtension istiod makes of a WasmPlugin `spec`:
/// the top fields in their order, then `wasm` with the module's fields in
/// theirs. Fields neither API shares (`verificationKey`) are left out, as
/// istiod leaves them.
pub fn spec_of_wasm_plugin(spec: &Mapping) -> Mapping {
    let mut top = Mapping::new();
    let mut wasm = Mapping::new();
    for (k, v) in spec {
        let key = k.as_str().unwrap_or_default();
        match key {
            "phase" => {
                let phase = match v.as_str() {
                    Some("UNSPECIFIED_PHASE") | None => "UNSPECIFIED",
                    Some(p) => p,
                };
                top.insert(k.clone(), s(phase));
            }
            "targetRef" if !spec.contains_key("targetRefs") => {
                top.insert(s("targetRefs"), Value::Sequence(vec![v.clone()]));
            }
            _ if TOP.contains(&key) => {
                top.insert(k.clone(), v.clone());
            }
            _ if WASM.contains(&key) => {
                wasm.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    top.insert(s("wasm"), Value::Mapping(wasm));
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Mapping {
        serde_yaml_ng::from_str(text).expect("YAML")
    }

    #[test]
    fn the_module_moves_under_wasm_and_the_phase_is_renamed() {
        let wp = yaml(
            "selector: {matchLabels: {app: frontend}}\n\
             url: oci://r/c:1\nimagePullPolicy: IfNotPresent\nsha256: abc\n\
             pluginName: canary-router\nphase: UNSPECIFIED_PHASE\ntype: HTTP\n\
             match: [{mode: CLIENT, ports: [{number: 80}]}]\nfailStrategy: FAIL_OPEN\n\
             pluginConfig: {services: []}\nverificationKey: k\npriority: 10\n",
        );
        let te = spec_of_wasm_plugin(&wp);
        let keys: Vec<&str> = te.keys().filter_map(Value::as_str).collect();
        assert_eq!(keys, ["selector", "phase", "match", "priority", "wasm"]);
        assert_eq!(te["phase"], s("UNSPECIFIED"));
        let wasm: Vec<&str> = te["wasm"]
            .as_mapping()
            .expect("wasm")
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            wasm,
            [
                "url",
                "imagePullPolicy",
                "sha256",
                "pluginName",
                "type",
                "failStrategy",
                "pluginConfig"
            ]
        );
        for phase in ["AUTHN", "AUTHZ", "STATS"] {
            let mut wp = wp.clone();
            wp.insert(s("phase"), s(phase));
            assert_eq!(spec_of_wasm_plugin(&wp)["phase"], s(phase));
        }
    }

    #[test]
    fn a_singular_target_ref_becomes_target_refs() {
        let one = yaml("targetRef: {kind: Gateway, name: edge}\nurl: oci://r/c:1\n");
        assert_eq!(
            spec_of_wasm_plugin(&one)["targetRefs"],
            Value::Sequence(vec![yaml("{kind: Gateway, name: edge}").into()])
        );
        let both = yaml(
            "targetRef: {kind: Gateway, name: a}\ntargetRefs: [{kind: Gateway, name: b}]\nurl: x\n",
        );
        let te = spec_of_wasm_plugin(&both);
        assert_eq!(te["targetRefs"][0]["name"], s("b"));
        assert!(!te.contains_key("targetRef"));
    }
}
