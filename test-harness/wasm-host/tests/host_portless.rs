//! Destinations without a port, in the real `.wasm`: by default they take
//! the port the request arrived on (one `destination.port` read per request
//! routed there); with `portlessDestinations: glue` the filter writes
//! `outbound||<subset>|<host>` and reads no property at all, the routing
//! glue of each port naming the port.

use serde_json::json;
use wasm_host::{Module, Vm, VmOptions};

fn config(mode: Option<&str>) -> String {
    let dest = |subset: &str| json!({"destination": {"host": "reviews", "subset": subset}});
    let mut cfg = json!({
        "routeHeader": "x-canary-upstream",
        "namespace": "default",
        "services": [{"hosts": ["reviews"], "http": [
            {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [dest("v2")]},
            {"name": "rest", "route": [dest("v1")]}
        ]}]
    });
    if let Some(m) = mode {
        cfg["portlessDestinations"] = json!(m);
    }
    cfg.to_string()
}

fn vm(config: &str) -> Vm {
    let module = Module::load(test_tools::filter_wasm()).expect("the filter loads");
    let mut vm = Vm::new(
        &module,
        VmOptions {
            node_metadata: json!({"NAMESPACE": "default", "LABELS": {"app": "productpage"}}),
            ..VmOptions::default()
        },
    )
    .expect("the filter instantiates");
    assert!(vm.configure(config.as_bytes()).unwrap(), "{:#?}", vm.logs());
    vm
}

/// The cluster header of one request, and the `proxy_get_property` calls it made.
fn route(vm: &mut Vm, user: &str) -> (Option<String>, u64) {
    let before = vm.host_call_count("proxy_get_property");
    let r = vm
        .request(&[
            (":authority", "reviews:9080"),
            (":path", "/"),
            (":method", "GET"),
            ("end-user", user),
        ])
        .unwrap();
    vm.respond(&r, &[(":status", "200")]).unwrap();
    let header = r.header("x-canary-upstream").map(str::to_string);
    (header, vm.host_call_count("proxy_get_property") - before)
}

const REVIEWS: &str = "reviews.default.svc.cluster.local";

#[test]
fn by_default_the_port_is_the_one_the_request_arrived_on() {
    for mode in [None, Some("requestPort")] {
        let mut vm = vm(&config(mode));
        vm.set_property(&["destination", "port"], &9080i64.to_le_bytes());
        let (header, reads) = route(&mut vm, "jason");
        assert_eq!(header, Some(format!("outbound|9080|v2|{REVIEWS}")));
        assert_eq!(reads, 1, "one destination.port read");
        vm.set_property(&["destination", "port"], &9081i64.to_le_bytes());
        assert_eq!(
            route(&mut vm, "ann").0,
            Some(format!("outbound|9081|v1|{REVIEWS}"))
        );
        // Unknown port: the request stays on Envoy's own route.
        vm.remove_property(&["destination", "port"]);
        assert_eq!(route(&mut vm, "jason").0, None);
    }
}

#[test]
fn with_the_glue_the_port_is_left_out_and_no_property_is_read() {
    let mut vm = vm(&config(Some("glue")));
    vm.set_property(&["destination", "port"], &9080i64.to_le_bytes());
    for _ in 0..3 {
        let (header, reads) = route(&mut vm, "jason");
        assert_eq!(header, Some(format!("outbound||v2|{REVIEWS}")));
        assert_eq!(reads, 0, "no property read per request");
        assert_eq!(
            route(&mut vm, "ann"),
            (Some(format!("outbound||v1|{REVIEWS}")), 0)
        );
    }
    // The port does not matter, nor whether Envoy knows it.
    vm.remove_property(&["destination", "port"]);
    assert_eq!(
        route(&mut vm, "jason").0,
        Some(format!("outbound||v2|{REVIEWS}"))
    );
}

#[test]
fn a_bad_mode_is_refused_by_name_and_the_last_good_rules_keep_serving() {
    let mut vm = vm(&config(Some("glue")));
    assert!(!vm.configure(config(Some("route")).as_bytes()).unwrap());
    let logs = format!("{:?}", vm.logs());
    assert!(
        logs.contains("portlessDestinations: `route`: give `requestPort`"),
        "{logs}"
    );
    assert_eq!(
        route(&mut vm, "jason").0,
        Some(format!("outbound||v2|{REVIEWS}"))
    );
}
