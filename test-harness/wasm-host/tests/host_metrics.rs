//! Metrics: Envoy's ids, same name = same metric, counter/gauge/histogram rules.

mod common;

use common::{probe_request, probe_vm, probe_vm_with};
use wasm_host::{MetricKind, Stats, VmOptions};

#[test]
fn defining_a_name_twice_gives_the_same_metric() {
    let mut vm = probe_vm();
    // The probe defines probe.requests twice; Envoy hands out ids 4 and 8 for them.
    assert_eq!(
        vm.logs_containing("metric ids"),
        ["metric ids: requests=4 again=8 gauge=5 histogram=6"]
    );
    vm.request(&probe_request("incr-both")).unwrap();
    assert_eq!(vm.metric("probe.requests"), Some(2));
    let r = vm.request(&probe_request("incr;metric-get")).unwrap();
    assert_eq!(r.header("x-probe-metric"), Some("3"));
    assert_eq!(vm.stats().kind("probe.requests"), Some(MetricKind::Counter));
}

#[test]
fn a_counter_only_goes_up() {
    let mut vm = probe_vm();
    // BadArgument (2) for a zero or negative counter increment, as in Envoy.
    let r = vm.request(&probe_request("incr-raw:0")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("2"));
    let r = vm.request(&probe_request("incr-raw:-1")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("2"));
    let r = vm.request(&probe_request("incr-raw:5")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("0"));
    assert_eq!(vm.metric("probe.requests"), Some(5));
}

#[test]
fn gauges_and_histograms() {
    let mut vm = probe_vm();
    vm.request(&probe_request("gauge:10;gauge-add:-3;hist:7;hist:9"))
        .unwrap();
    assert_eq!(vm.metric("probe.gauge"), Some(7));
    assert_eq!(vm.histogram("probe.histogram"), Some(vec![7, 9]));
    assert_eq!(vm.metric("probe.histogram"), None);
    let all = vm.metrics();
    assert_eq!(all.get("probe.gauge"), Some(&7));
    assert_eq!(all.get("probe.requests"), Some(&0));
    assert!(!all.contains_key("probe.histogram"));
}

#[test]
fn vms_sharing_stats_aggregate_like_workers() {
    let stats = Stats::new();
    let options = || VmOptions {
        stats: stats.clone(),
        ..VmOptions::default()
    };
    let mut a = probe_vm_with(options(), "");
    let mut b = probe_vm_with(options(), "");
    a.request(&probe_request("incr")).unwrap();
    b.request(&probe_request("incr;incr")).unwrap();
    assert_eq!(stats.value("probe.requests"), Some(3));
    assert_eq!(a.metric("probe.requests"), Some(3));
}
