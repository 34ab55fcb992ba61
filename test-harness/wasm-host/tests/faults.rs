//! Faults inside the filter: each host call the built `.wasm` makes is made to
//! fail, in the in-process host, with each status a host may return. The VM
//! never traps, every request continues (`Action::Continue`, forwarded), a
//! request is never steered by a client's copy of the route header, and the
//! failure is counted in `canary_router.host_call_errors` (or, for the rule
//! source, `canary_router.rules.reload_failure`).
//!
//! Two failures the proxy-wasm SDK turned into a panic, when the filter used
//! its dispatcher, are shown to be harmless now (see docs/reliability.md).
//!
//! Each test appends what it did to `target/reliability/faults.tsv`
//! (call, status, requests sent, faults injected, requests lost) for
//! `scripts/reliability-report.sh`.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use wasm_host::{Action, HttpAnswer, Module, RequestOutcome, Status, Vm, VmOptions};

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
const ROUTE: &str = "x-canary-upstream";
const ERRORS: &str = "canary_router.host_call_errors";
const RULES_CLUSTER: &str = "rules";

/// Statuses a failing host call may return (Ok aside).
const STATUSES: [Status; 5] = [
    Status::NotFound,
    Status::BadArgument,
    Status::SerializationFailure,
    Status::InternalFailure,
    Status::Empty,
];

fn dest(subset: &str) -> serde_json::Value {
    json!({"destination": {"host": "backend", "subset": subset, "port": {"number": 80}}})
}

fn config(rule_source: bool) -> String {
    let mut split_v1 = dest("v1");
    split_v1["weight"] = json!(50);
    let mut split_v2 = dest("v2");
    split_v2["weight"] = json!(50);
    let mut cfg = json!({
        "routeHeader": ROUTE,
        "debugHeader": "x-canary-route",
        "namespace": "default",
        "services": [{
            "hosts": ["backend"],
            "http": [
                {"name": "testers", "match": [{"headers": {"canary": {"exact": "yes"}}}], "route": [dest("v2")]},
                {"name": "by-ip", "match": [{"headers": {"x-by-ip": {}}}], "route": [split_v1.clone(), split_v2.clone()], "sticky": {"sourceIp": true}},
                {"name": "labels", "match": [{"sourceLabels": {"app": "frontend"}, "headers": {"x-labels": {}}}], "route": [dest("v2")]},
                {"name": "split", "route": [split_v1, split_v2]}
            ]
        }]
    });
    if rule_source {
        cfg["ruleSource"] = json!({"cluster": RULES_CLUSTER, "path": "/rules.json", "pollIntervalMs": 1000, "timeoutMs": 300});
    }
    cfg.to_string()
}

/// The filter, compiled once per test binary.
fn module() -> Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE
        .get_or_init(|| Module::load(test_tools::filter_wasm()).expect("the filter loads"))
        .clone()
}

fn new_vm(module: &Module) -> Vm {
    Vm::new(
        module,
        VmOptions {
            node_metadata: json!({"NAMESPACE": "default", "LABELS": {"app": "frontend"}}),
            random_seed: 11,
            clusters: Some(vec![RULES_CLUSTER.into()]),
            ..VmOptions::default()
        },
    )
    .expect("the filter instantiates")
}

fn configured(module: &Module, rule_source: bool) -> Vm {
    let mut vm = new_vm(module);
    assert!(
        vm.configure(config(rule_source).as_bytes()).unwrap(),
        "{:#?}",
        vm.logs()
    );
    vm
}

/// A record of one scenario, for the report.
struct Tally {
    call: &'static str,
    status: String,
    requests: u64,
    /// Calls of `call` that returned the injected status.
    faults: u64,
    lost: u64,
    /// Calls of `call` made before the failure was injected.
    base: Option<u64>,
}

/// Makes `name` fail on `vm` from now on, remembering how often it was called so far.
fn fail(vm: &mut Vm, t: &mut Tally, name: &'static str, status: Status) {
    t.base = Some(vm.host_call_count(name));
    vm.fail_host_call(name, status);
}

/// Adds the failed calls of `name` since [`fail`] to the tally.
fn settle(vm: &Vm, t: &mut Tally, name: &'static str) {
    if let Some(base) = t.base.take() {
        t.faults += vm.host_call_count(name) - base;
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let dir = envoy_runner::repo_root().join("target/reliability");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("faults.tsv"))
        {
            let _ = writeln!(
                f,
                "{}\t{}\t{}\t{}\t{}",
                self.call, self.status, self.requests, self.faults, self.lost
            );
        }
    }
}

fn tally(call: &'static str, status: Status) -> Tally {
    Tally {
        call,
        status: format!("{status:?}"),
        requests: 0,
        faults: 0,
        lost: 0,
        base: None,
    }
}

/// Sends a request and checks it continues: no trap, `Continue`, forwarded;
/// then ends the stream with a response.
fn send(vm: &mut Vm, t: &mut Tally, headers: &[(&str, &str)]) -> RequestOutcome {
    t.requests += 1;
    let r = match vm.request(headers) {
        Ok(r) => r,
        Err(e) => {
            t.lost += 1;
            panic!("{}/{}: the request failed: {e}", t.call, t.status);
        }
    };
    assert_eq!(r.action, Action::Continue, "{}/{}", t.call, t.status);
    assert!(r.forwarded(), "{}/{}: {r:?}", t.call, t.status);
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
    if let Err(e) = vm.respond(&r, &[(":status", "200")]) {
        t.lost += 1;
        panic!("{}/{}: the response failed: {e}", t.call, t.status);
    }
    r
}

fn backend(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut h = vec![
        (":authority", "backend"),
        (":path", "/"),
        (":method", "GET"),
    ];
    h.extend_from_slice(extra);
    h
}

fn errors(vm: &Vm) -> u64 {
    vm.metric(ERRORS).unwrap_or(0)
}

#[test]
fn reading_the_request_fails_and_a_spoofed_header_is_still_removed() {
    let module = module();
    for status in STATUSES {
        let mut t = tally("proxy_get_header_map_pairs", status);
        let mut vm = configured(&module, false);
        fail(&mut vm, &mut t, "proxy_get_header_map_pairs", status);
        for n in 1..=20 {
            // Envoy's header names are lower-case; a client's `X-Canary-Upstream` arrives so.
            let r = send(
                &mut vm,
                &mut t,
                &backend(&[(ROUTE, "outbound|80|secret|backend"), ("canary", "yes")]),
            );
            assert_eq!(
                r.header(ROUTE),
                None,
                "an unreadable request is never steered"
            );
            assert!(
                r.cleared_route_cache,
                "the route is selected again without it"
            );
            assert_eq!(errors(&vm), n, "{status:?}");
        }
        settle(&vm, &mut t, "proxy_get_header_map_pairs");
        vm.clear_failures();
        let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
        assert_eq!(
            r.header(ROUTE),
            Some(V2),
            "routing resumes once the host recovers"
        );
    }
}

#[test]
fn writing_the_cluster_fails_and_the_request_goes_the_default_way() {
    let module = module();
    for status in STATUSES {
        let mut t = tally("proxy_replace_header_map_value", status);
        let mut vm = configured(&module, false);
        fail(&mut vm, &mut t, "proxy_replace_header_map_value", status);
        let plain = send(&mut vm, &mut t, &backend(&[]));
        assert_eq!(plain.header(ROUTE), None);
        assert_eq!(errors(&vm), 1);
        // A spoofed copy: the write fails, so the filter removes it instead.
        let spoofed = send(
            &mut vm,
            &mut t,
            &backend(&[(ROUTE, "outbound|80|secret|x")]),
        );
        assert_eq!(spoofed.header(ROUTE), None, "{status:?}");
        assert_eq!(errors(&vm), 2);
        assert_eq!(vm.metric("canary_router.spoofed_header_removed"), Some(1));
        settle(&vm, &mut t, "proxy_replace_header_map_value");
    }
}

#[test]
fn removing_a_spoofed_header_fails_and_the_request_continues() {
    let module = module();
    for status in STATUSES {
        let mut t = tally("proxy_remove_header_map_value", status);
        let mut vm = configured(&module, false);
        fail(&mut vm, &mut t, "proxy_remove_header_map_value", status);
        // For a host no rule covers: only a removal can drop the client's copy.
        let r = send(
            &mut vm,
            &mut t,
            &[
                (":authority", "other"),
                (":path", "/"),
                (ROUTE, "outbound|80|secret|x"),
            ],
        );
        assert_eq!(errors(&vm), 1, "{status:?}");
        assert_eq!(vm.metric("canary_router.spoofed_header_removed"), Some(1));
        // For a host the rules cover the header is overwritten: no removal needed.
        let r2 = send(
            &mut vm,
            &mut t,
            &backend(&[(ROUTE, "outbound|80|secret|x")]),
        );
        assert!(matches!(r2.header(ROUTE), Some(V1 | V2)), "{r2:?}");
        assert_eq!(errors(&vm), 1);
        let _ = r;
        settle(&vm, &mut t, "proxy_remove_header_map_value");
    }
}

#[test]
fn clearing_the_route_cache_fails_and_the_header_is_still_written() {
    let module = module();
    // NotFound means "no such function" (Envoy < 1.33): not an error.
    for status in STATUSES {
        let mut t = tally("proxy_call_foreign_function", status);
        let mut vm = configured(&module, false);
        fail(&mut vm, &mut t, "proxy_call_foreign_function", status);
        let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
        assert_eq!(r.header(ROUTE), Some(V2));
        assert!(!r.cleared_route_cache);
        let expected = u64::from(status != Status::NotFound);
        assert_eq!(errors(&vm), expected, "{status:?}");
        settle(&vm, &mut t, "proxy_call_foreign_function");
    }
}

#[test]
fn counting_fails_and_routing_does_not() {
    let module = module();
    for status in STATUSES {
        let mut t = tally("proxy_increment_metric", status);
        let mut vm = configured(&module, false);
        fail(&mut vm, &mut t, "proxy_increment_metric", status);
        for _ in 0..10 {
            let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
            assert_eq!(r.header(ROUTE), Some(V2));
        }
        let counted: u64 = vm
            .metrics()
            .iter()
            .filter(|(k, _)| k.starts_with("canary_router.requests"))
            .map(|(_, v)| *v)
            .sum();
        assert_eq!(counted, 0, "the counters could not be bumped");
        settle(&vm, &mut t, "proxy_increment_metric");
    }
}

#[test]
fn the_client_address_is_unreadable_and_a_sticky_by_ip_request_is_still_routed() {
    let module = module();
    for status in [
        Status::BadArgument,
        Status::SerializationFailure,
        Status::InternalFailure,
    ] {
        let mut t = tally("proxy_get_property", status);
        let mut vm = configured(&module, false);
        vm.set_property(&["source", "address"], b"10.1.2.3:5555");
        fail(&mut vm, &mut t, "proxy_get_property", status);
        let r = send(&mut vm, &mut t, &backend(&[("x-by-ip", "1")]));
        assert!(
            matches!(r.header(ROUTE), Some(V1 | V2)),
            "a random pick instead"
        );
        assert_eq!(errors(&vm), 1, "{status:?}");
        settle(&vm, &mut t, "proxy_get_property");
    }
    // NotFound: no client address (e.g. a unix socket): a random pick, no error.
    let mut t = tally("proxy_get_property", Status::NotFound);
    let mut vm = configured(&module, false);
    fail(&mut vm, &mut t, "proxy_get_property", Status::NotFound);
    let r = send(&mut vm, &mut t, &backend(&[("x-by-ip", "1")]));
    assert!(matches!(r.header(ROUTE), Some(V1 | V2)));
    assert_eq!(errors(&vm), 0);
    settle(&vm, &mut t, "proxy_get_property");
}

#[test]
fn logging_fails_everywhere_and_nothing_else_does() {
    let module = module();
    for status in STATUSES {
        let mut t = tally("proxy_log", status);
        let mut vm = new_vm(&module);
        fail(&mut vm, &mut t, "proxy_log", status);
        assert!(vm.configure(config(false).as_bytes()).unwrap());
        // A rejected configuration logs an error: that fails too, quietly.
        assert!(!vm.configure(b"{\"services\": 7}").unwrap());
        assert!(vm.failure().is_none());
        assert!(vm.configure(config(false).as_bytes()).unwrap());
        let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
        assert_eq!(r.header(ROUTE), Some(V2));
        settle(&vm, &mut t, "proxy_log");
    }
}

#[test]
fn writing_the_debug_header_fails_and_the_response_continues() {
    let module = module();
    for status in STATUSES {
        let mut t = tally("proxy_replace_header_map_value (response)", status);
        let mut vm = configured(&module, false);
        t.requests += 1;
        let r = vm.request(&backend(&[("canary", "yes")])).unwrap();
        assert_eq!(r.header(ROUTE), Some(V2));
        fail(&mut vm, &mut t, "proxy_replace_header_map_value", status);
        let resp = vm.respond(&r, &[(":status", "200")]).unwrap();
        assert_eq!(resp.action, Action::Continue);
        assert_eq!(resp.header("x-canary-route"), None);
        assert_eq!(errors(&vm), 1);
        assert!(vm.failure().is_none());
        settle(&vm, &mut t, "proxy_replace_header_map_value");
    }
}

#[test]
fn configure_time_failures_leave_a_working_filter_or_a_clear_rejection() {
    let module = module();
    for status in STATUSES {
        // Metrics cannot be defined: routing works, nothing is counted.
        let mut t = tally("proxy_define_metric", status);
        let mut vm = new_vm(&module);
        fail(&mut vm, &mut t, "proxy_define_metric", status);
        assert!(vm.configure(config(false).as_bytes()).unwrap());
        let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
        assert_eq!(r.header(ROUTE), Some(V2));
        assert!(vm.metrics().is_empty(), "{:?}", vm.metrics());
        settle(&vm, &mut t, "proxy_define_metric");

        // Node metadata cannot be read: source-label rules do not match, the rest routes.
        let mut t = tally("proxy_get_property (node metadata)", status);
        let mut vm = new_vm(&module);
        fail(&mut vm, &mut t, "proxy_get_property", status);
        assert!(vm.configure(config(false).as_bytes()).unwrap());
        settle(&vm, &mut t, "proxy_get_property");
        vm.clear_failures();
        let r = send(
            &mut vm,
            &mut t,
            &backend(&[("x-labels", "1"), ("canary", "no")]),
        );
        assert!(matches!(r.header(ROUTE), Some(V1 | V2)), "{r:?}");
        let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
        assert_eq!(r.header(ROUTE), Some(V2));

        // The tick period cannot be set: the rule source is not polled, inline rules serve.
        let mut t = tally("proxy_set_tick_period_milliseconds", status);
        let mut vm = new_vm(&module);
        fail(
            &mut vm,
            &mut t,
            "proxy_set_tick_period_milliseconds",
            status,
        );
        assert!(vm.configure(config(true).as_bytes()).unwrap());
        assert!(!vm.logs_containing("cannot set the tick period").is_empty());
        let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
        assert_eq!(r.header(ROUTE), Some(V2));
        settle(&vm, &mut t, "proxy_set_tick_period_milliseconds");

        // The configuration cannot be read: rejected (Envoy keeps the filter
        // out, see failure_policy), with one clear log line, no trap.
        let mut t = tally("proxy_get_buffer_bytes (configuration)", status);
        let mut vm = new_vm(&module);
        fail(&mut vm, &mut t, "proxy_get_buffer_bytes", status);
        assert!(!vm.configure(config(false).as_bytes()).unwrap());
        assert!(vm.failure().is_none());
        assert!(!vm
            .logs_containing("cannot read the configuration")
            .is_empty());
        settle(&vm, &mut t, "proxy_get_buffer_bytes");
    }
}

/// Runs the rule source for a while with `call` failing: the inline rules
/// keep serving, nothing traps, and the failure is counted.
fn rule_source_with(call: &'static str, status: Status, answer_ok: bool) -> (Vm, Tally) {
    let module = module();
    let mut t = tally(call, status);
    let mut vm = configured(&module, true);
    fail(&mut vm, &mut t, call, status);
    // 6 s in steps shorter than the fetch timeout, answering every fetch.
    for step in 0..60 {
        vm.advance(Duration::from_millis(100)).unwrap();
        for pending in vm.pending_http_calls() {
            let answer = if answer_ok {
                HttpAnswer::response(
                    200,
                    &[("etag", "\"1\"")],
                    br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"cluster":"from-file"}}]}]}]}"#,
                )
            } else {
                HttpAnswer::response(503, &[], b"")
            };
            vm.answer_http_call(pending.token, answer).unwrap();
        }
        if step % 10 == 9 {
            let r = send(&mut vm, &mut t, &backend(&[("canary", "yes")]));
            assert!(matches!(r.header(ROUTE), Some(V2 | "from-file")), "{r:?}");
        }
    }
    settle(&vm, &mut t, call);
    assert!(t.faults > 0, "{call} was never called while failing");
    assert!(vm.failure().is_none());
    (vm, t)
}

#[test]
fn rule_source_failures_keep_the_last_good_rules() {
    for status in [Status::BadArgument, Status::InternalFailure] {
        // The callout cannot be made (Envoy: unknown cluster, no healthy host).
        let (vm, _t) = rule_source_with("proxy_http_call", status, true);
        assert!(vm.metric("canary_router.rules.reload_failure").unwrap_or(0) >= 1);
    }
    for status in STATUSES {
        // Shared data cannot be read or written: no trap, requests still routed.
        let (vm, _t) = rule_source_with("proxy_get_shared_data", status, true);
        assert!(vm.failure().is_none());
        let (vm, _t) = rule_source_with("proxy_set_shared_data", status, true);
        assert!(vm.failure().is_none());
        // The response cannot be read: counted as a failed reload.
        let (vm, _t) = rule_source_with("proxy_get_buffer_bytes", status, true);
        assert!(vm.metric("canary_router.rules.reload_failure").unwrap_or(0) >= 1);
        let (vm, _t) = rule_source_with("proxy_get_header_map_value", status, true);
        assert!(vm.metric("canary_router.rules.reload_failure").unwrap_or(0) >= 1);
        // The clock cannot be read: no fetch, no trap.
        let (vm, _t) = rule_source_with("proxy_get_current_time_nanoseconds", status, false);
        assert!(vm.failure().is_none());
    }
}

/// Limits the proxy-wasm SDK (0.2.5) had, gone with the filter's own
/// dispatcher (`filter-runtime/src/proxy_wasm/exports.rs`): the SDK panicked
/// (aborting the VM) on a status of `proxy_http_call` other than
/// BadArgument or InternalFailure, and on any failure of
/// `proxy_set_effective_context` when it dispatched an HTTP-call answer. Now the first is a failed reload, and the second
/// call is not made at all.
#[test]
fn http_call_statuses_the_sdk_panicked_on_are_failed_reloads() {
    let module = module();
    let mut vm = configured(&module, true);
    vm.advance(Duration::from_millis(1100)).unwrap();
    vm.fail_host_call("proxy_http_call", Status::NotFound);
    vm.advance(Duration::from_millis(5000)).unwrap();
    assert!(vm.failure().is_none());
    assert!(vm.metric("canary_router.rules.reload_failure").unwrap_or(0) >= 1);

    let mut vm = configured(&module, true);
    let pending = vm.pending_http_calls();
    assert!(!pending.is_empty(), "configure starts a fetch at once");
    vm.fail_host_call("proxy_set_effective_context", Status::BadArgument);
    vm.answer_http_call(pending[0].token, HttpAnswer::response(503, &[], b""))
        .unwrap();
    assert!(vm.failure().is_none());
}
