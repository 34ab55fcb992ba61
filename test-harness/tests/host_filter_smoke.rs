//! The real filter's `.wasm` runs in the in-process host: a request gets a cluster header.
//! (Filter behaviour is tested elsewhere; this only checks the host can run it.)

use canary_test_harness::host::{Action, Module, Vm, VmOptions};
use serde_json::json;

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
    let module = Module::load(canary_test_harness::filter_wasm()).expect("the filter loads");
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
