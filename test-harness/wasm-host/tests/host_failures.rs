//! Injected host-call failures.

mod common;

use common::{probe_request, probe_vm};
use wasm_host::{HostError, Status};

#[test]
fn a_failed_host_call_returns_the_status_until_cleared() {
    let mut vm = probe_vm();
    vm.fail_host_call("proxy_replace_header_map_value", Status::InternalFailure);
    for _ in 0..2 {
        let r = vm.request(&probe_request("raw-replace:x-a=1")).unwrap();
        assert_eq!(r.header("x-probe-status"), Some("10"));
        assert!(!r.headers.contains("x-a"));
    }
    vm.clear_failures();
    let r = vm.request(&probe_request("raw-replace:x-a=1")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("0"));
    assert_eq!(r.header("x-a"), Some("1"));
}

#[test]
fn a_host_call_can_fail_a_number_of_times() {
    let mut vm = probe_vm();
    vm.fail_host_call_times("proxy_replace_header_map_value", Status::BadArgument, 1);
    let r = vm
        .request(&probe_request("raw-replace:x-a=1;raw-replace:x-b=2"))
        .unwrap();
    assert_eq!(r.headers.get_all("x-probe-status"), ["2", "0"]);
    assert_eq!(r.header("x-b"), Some("2"));
}

#[test]
fn a_failure_the_sdk_does_not_expect_traps() {
    let mut vm = probe_vm();
    vm.fail_host_call("proxy_log", Status::InternalFailure);
    // The SDK panics on an unexpected status from proxy_log: the export traps.
    let err = vm.request(&probe_request("log:hello")).unwrap_err();
    assert!(
        matches!(
            &err,
            HostError::Trap {
                export: "proxy_on_request_headers",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn host_calls_are_counted() {
    let mut vm = probe_vm();
    let before = vm.host_call_count("proxy_get_header_map_value");
    vm.request(&probe_request("get:x-a;get:x-b")).unwrap();
    // x-probe itself, then the two gets.
    assert_eq!(vm.host_call_count("proxy_get_header_map_value"), before + 3);
}

#[test]
#[should_panic(expected = "no host function")]
fn an_unknown_host_call_name_panics() {
    let mut vm = probe_vm();
    vm.fail_host_call("proxy_no_such_call", Status::NotFound);
}

#[test]
#[should_panic(expected = "only proxy-wasm host calls")]
fn wasi_calls_cannot_be_failed() {
    let mut vm = probe_vm();
    vm.fail_host_call("random_get", Status::NotFound);
}
