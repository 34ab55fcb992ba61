//! The real filter's `.wasm` runs in the in-process host: a request gets a cluster header.
//! (Filter behaviour is tested elsewhere; this only checks the host can run it.)

use serde_json::json;
use wasm_host::{Action, Module, Vm, VmOptions};

const CONFIG: &str = r#"{
  "routeHeader": "x-canary-upstream",
  "namespace": "default",
  "services": [{
    "hosts": ["backend"],
    "http": [{
      "name": "split",
      "route": [
        {"destination": {"host": "backend", "subset": "v1", "port": {"number": 80}}, "weight": 90},
        {"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}, "weight": 10}
      ]
    }]
  }]
}"#;

#[test]
fn the_filter_writes_a_cluster_header() {
    let module = Module::load(test_tools::filter_wasm()).expect("the filter loads");
    // The SDK links imports the filter never calls (gRPC, queues...); calling one would fail
    // the test loudly.
    eprintln!("stubbed imports: {:?}", module.unimplemented_imports());
    let mut vm = Vm::new(
        &module,
        VmOptions {
            node_metadata: json!({"NAMESPACE": "default", "LABELS": {"app": "frontend", "version": "v1"}}),
            ..VmOptions::default()
        },
    )
    .expect("the filter instantiates");
    assert!(vm.configure(CONFIG.as_bytes()).unwrap(), "{:#?}", vm.logs());
    for _ in 0..20 {
        let r = vm
            .request(&[
                (":authority", "backend"),
                (":path", "/"),
                (":method", "GET"),
                ("x-user-id", "42"),
            ])
            .unwrap();
        assert_eq!(r.action, Action::Continue);
        let cluster = r.header("x-canary-upstream").expect("a cluster header");
        assert!(
            cluster == "outbound|80|v1|backend.default.svc.cluster.local"
                || cluster == "outbound|80|v2|backend.default.svc.cluster.local",
            "{cluster}"
        );
        assert!(r.cleared_route_cache);
        vm.respond(&r, &[(":status", "200")]).unwrap();
    }
}

/// The filter exports only the callbacks it implements
/// (`filter-runtime/src/proxy_wasm/exports.rs`): Envoy skips the others,
/// with no call into the VM.
#[test]
fn the_built_filter_exports_none_of_the_skipped_callbacks() {
    use test_tools::exports::{trim_exports, SKIPPED_CALLBACKS};
    let bytes = std::fs::read(test_tools::filter_wasm()).expect("the filter");
    assert_eq!(
        trim_exports(&bytes, &SKIPPED_CALLBACKS),
        Ok(None),
        "the module still exports some of {SKIPPED_CALLBACKS:?}"
    );
    // What it must still export for Envoy to route with it.
    for needed in [
        "proxy_on_context_create",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_delete",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_http_call_response",
    ] {
        assert!(
            trim_exports(&bytes, &[needed]).expect("a module").is_some(),
            "{needed} is not exported"
        );
    }
}
