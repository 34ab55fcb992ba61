//! `proxy_get_property`: node metadata under the old and the new path, test-set values.

mod common;

use common::{probe_request, probe_vm_with};
use serde_json::json;
use wasm_host::{HostError, NodeMetadataPaths, VmOptions};

fn options(paths: NodeMetadataPaths) -> VmOptions {
    VmOptions {
        node_metadata: json!({
            "NAMESPACE": "default",
            "LABELS": {"app": "frontend", "version": "v2"},
            "REPLICAS": 3,
            "MESH": true,
            "NOTHING": null,
        }),
        node_metadata_paths: paths,
        node_id: "sidecar~10.0.0.9~frontend-1.default~default.svc.cluster.local".into(),
        node_cluster: "frontend.default".into(),
        plugin_name: "canary".into(),
        ..VmOptions::default()
    }
}

fn prop(vm: &mut wasm_host::Vm, path: &str) -> String {
    let op = format!("prop:{path}");
    let r = vm.request(&probe_request(&op)).unwrap();
    r.header("x-probe-prop").unwrap().to_string()
}

#[test]
fn node_metadata_is_under_both_paths_by_default() {
    let mut vm = probe_vm_with(options(NodeMetadataPaths::Both), "");
    assert_eq!(prop(&mut vm, "xds.node.metadata.NAMESPACE"), "s:default");
    assert_eq!(prop(&mut vm, "node.metadata.NAMESPACE"), "s:default");
    assert_eq!(prop(&mut vm, "node.metadata.LABELS.version"), "s:v2");
    assert_eq!(prop(&mut vm, "xds.node.metadata.LABELS.app"), "s:frontend");
    assert_eq!(prop(&mut vm, "node.metadata.LABELS.nope"), "none");
    assert_eq!(prop(&mut vm, "xds.node.cluster"), "s:frontend.default");
}

#[test]
fn values_are_serialized_like_envoy() {
    let mut vm = probe_vm_with(options(NodeMetadataPaths::Both), "");
    // A Struct number is a double: 8 little-endian bytes.
    let three = 3f64
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(
        prop(&mut vm, "node.metadata.REPLICAS"),
        format!("hex:{three}")
    );
    assert_eq!(prop(&mut vm, "node.metadata.MESH"), "hex:01");
    assert_eq!(
        prop(&mut vm, "node.metadata.NOTHING"),
        "err:SerializationFailure"
    );
    // A map is the pairs serialization: count, sizes, then NUL-terminated keys and values.
    let labels = prop(&mut vm, "node.metadata.LABELS");
    let mut expected = Vec::new();
    expected.extend_from_slice(&2u32.to_le_bytes());
    for (k, v) in [("app", "frontend"), ("version", "v2")] {
        expected.extend_from_slice(&(k.len() as u32).to_le_bytes());
        expected.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in [("app", "frontend"), ("version", "v2")] {
        expected.extend_from_slice(k.as_bytes());
        expected.push(0);
        expected.extend_from_slice(v.as_bytes());
        expected.push(0);
    }
    let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(labels, format!("hex:{hex}"));
}

#[test]
fn new_envoy_has_only_the_xds_path() {
    let mut vm = probe_vm_with(options(NodeMetadataPaths::XdsOnly), "");
    assert_eq!(prop(&mut vm, "xds.node.metadata.NAMESPACE"), "s:default");
    assert_eq!(prop(&mut vm, "node.metadata.NAMESPACE"), "none");
}

#[test]
fn old_envoy_has_only_the_node_path() {
    let mut vm = probe_vm_with(options(NodeMetadataPaths::LegacyOnly), "");
    assert_eq!(prop(&mut vm, "xds.node.metadata.NAMESPACE"), "none");
    assert_eq!(prop(&mut vm, "node.metadata.NAMESPACE"), "s:default");
}

#[test]
fn test_set_properties_and_plugin_identity() {
    let mut vm = probe_vm_with(options(NodeMetadataPaths::Both), "");
    assert_eq!(prop(&mut vm, "source.address"), "none");
    vm.set_property(&["source", "address"], b"10.0.0.1:5555");
    assert_eq!(prop(&mut vm, "source.address"), "s:10.0.0.1:5555");
    vm.remove_property(&["source", "address"]);
    assert_eq!(prop(&mut vm, "source.address"), "none");
    assert_eq!(prop(&mut vm, "plugin_name"), "s:canary");
    // An empty value comes back as no value, as from Envoy (null pointer, size 0).
    assert_eq!(prop(&mut vm, "plugin_root_id"), "none");
}

#[test]
fn the_whole_node_message_fails_loudly() {
    let mut vm = probe_vm_with(options(NodeMetadataPaths::Both), "");
    let err = vm.request(&probe_request("prop:xds.node")).unwrap_err();
    let HostError::Trap { message, .. } = &err else {
        panic!("expected a trap, got {err:?}");
    };
    assert!(message.contains("xds.node"), "{message}");
    assert!(message.contains("protobuf"), "{message}");
}
