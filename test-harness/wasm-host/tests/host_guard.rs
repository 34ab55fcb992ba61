//! The guard of a destination, in the compiled filter: two VMs sharing one
//! store and one stats store, as an Envoy's workers do. A failing canary is
//! ejected once, at its threshold; a healthy one never is; a rule's last
//! destination keeps its traffic; a new rule set starts over; and VMs on
//! two threads racing on the shared record eject exactly once.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use wasm_host::{Clock, Module, SharedData, Stats, Status, Vm, VmOptions};

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
const V3: &str = "outbound|80|v3|backend.default.svc.cluster.local";
const GAUGE_V2: &str = "canary_router.guard.ejected.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;";
const REQUESTS_V2: &str = "canary_router.guard.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;";
const ERRORS_V2: &str = "canary_router.guard.errors.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;";

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::load(test_tools::filter_wasm()).expect("filter loads"))
}

fn dest(subset: &str, weight: u32, guard: Option<Value>) -> Value {
    let mut d = json!({
        "destination": {"host": "backend", "subset": subset, "port": {"number": 80}},
        "weight": weight
    });
    if let Some(g) = guard {
        d["guard"] = g;
    }
    d
}

fn guard(rate: f64, min: u32, interval: &str) -> Option<Value> {
    Some(json!({"maxErrorRate": rate, "minRequests": min, "interval": interval}))
}

fn config(version: u64, route: Vec<Value>, sticky: bool) -> Vec<u8> {
    let mut rule = json!({"name": "split", "route": route});
    if sticky {
        rule["sticky"] = json!({"header": "x-user"});
    }
    serde_json::to_vec(&json!({
        "version": version,
        "services": [{"hosts": ["backend"], "http": [rule]}]
    }))
    .unwrap()
}

/// The failing-canary rules: 50/50, v2 guarded at 0.5 over 20 responses.
fn fifty_fifty(version: u64) -> Vec<u8> {
    config(
        version,
        vec![dest("v1", 50, None), dest("v2", 50, guard(0.5, 20, "10s"))],
        false,
    )
}

/// `n` VMs of one Envoy: one shared-data store, one stats store, one clock.
struct Envoy {
    vms: Vec<Vm>,
    stats: Stats,
    clock: Clock,
}

impl Envoy {
    fn new(n: usize, cfg: &[u8]) -> Envoy {
        let (shared, stats, clock) = (SharedData::new(), Stats::new(), Clock::default());
        let vms = (0..n)
            .map(|i| {
                let mut vm = Vm::new(
                    module(),
                    VmOptions {
                        shared: shared.clone(),
                        stats: stats.clone(),
                        clock: clock.clone(),
                        random_seed: 11 + i as u64,
                        ..VmOptions::default()
                    },
                )
                .unwrap();
                assert!(vm.configure(cfg).unwrap(), "{:#?}", vm.logs());
                vm
            })
            .collect();
        Envoy { vms, stats, clock }
    }

    fn configure(&mut self, cfg: &[u8]) {
        for vm in &mut self.vms {
            assert!(vm.configure(cfg).unwrap(), "{:#?}", vm.logs());
        }
    }

    fn ejections(&self) -> usize {
        self.vms
            .iter()
            .map(|vm| vm.logs_containing("guard ejected").len())
            .sum()
    }

    fn metric(&self, name: &str) -> u64 {
        self.stats.value(name).unwrap_or(0)
    }
}

/// One request through `vm`, answered by `status(cluster)`; returns the cluster.
fn one(vm: &mut Vm, user: Option<&str>, mut status: impl FnMut(&str) -> u16) -> String {
    let mut h = vec![
        (":authority", "backend"),
        (":path", "/"),
        (":method", "GET"),
    ];
    if let Some(u) = user {
        h.push(("x-user", u));
    }
    let r = vm.request(&h).unwrap();
    let cluster = r.header("x-canary-upstream").unwrap_or("-").to_string();
    let code = status(&cluster).to_string();
    vm.respond(&r, &[(":status", &code)]).unwrap();
    cluster
}

fn v2_fails(cluster: &str) -> u16 {
    if cluster == V2 {
        503
    } else {
        200
    }
}

#[test]
fn a_failing_canary_is_ejected_once_at_its_threshold_across_workers() {
    let mut envoy = Envoy::new(2, &fifty_fifty(1));
    let (mut v2_answers, mut after_threshold) = (0u32, 0u32);
    for i in 0..400 {
        let vm = &mut envoy.vms[i % 2];
        let cluster = one(vm, None, v2_fails);
        if cluster == V2 {
            if v2_answers >= 20 {
                after_threshold += 1;
            }
            v2_answers += 1;
        }
    }
    assert_eq!(envoy.ejections(), 1, "one ejection, by one of the two VMs");
    let line = envoy
        .vms
        .iter()
        .flat_map(|vm| vm.logs_containing("guard ejected"))
        .next()
        .unwrap()
        .to_string();
    assert!(
        line.contains("service backend.default.svc.cluster.local, rule split, destination v2")
            && line.contains("20 of 20 responses failed (100.0%)"),
        "{line}"
    );
    // The 20th failure ejects in the VM that saw it; the other learns at its
    // next v2 response: at most one more request reaches v2.
    assert!(
        after_threshold <= 1,
        "{after_threshold} requests reached v2 after the threshold"
    );
    assert_eq!(envoy.metric(GAUGE_V2), 1);
    assert_eq!(envoy.metric(ERRORS_V2), u64::from(v2_answers));
    assert_eq!(envoy.metric(REQUESTS_V2), u64::from(v2_answers));
    // From now on everything goes to v1, from both VMs.
    for i in 0..200 {
        assert_eq!(one(&mut envoy.vms[i % 2], None, v2_fails), V1);
    }
}

#[test]
fn a_tick_tells_a_worker_without_traffic_to_the_canary() {
    let mut envoy = Envoy::new(2, &fifty_fifty(1));
    // Only VM 0 serves until the ejection.
    while envoy.ejections() == 0 {
        one(&mut envoy.vms[0], None, v2_fails);
    }
    assert!(envoy.vms[1].tick_period().is_some(), "guards tick");
    envoy.clock.advance(Duration::from_secs(1));
    envoy.vms[1].tick().unwrap();
    for _ in 0..200 {
        assert_eq!(one(&mut envoy.vms[1], None, v2_fails), V1);
    }
    assert_eq!(envoy.ejections(), 1);
}

#[test]
fn a_healthy_canary_is_never_ejected() {
    // 10% of v2's answers fail; the guard ejects at 50%.
    let mut envoy = Envoy::new(2, &fifty_fifty(1));
    let mut n = 0u32;
    let mut v2 = 0u32;
    for i in 0..20_000 {
        let cluster = one(&mut envoy.vms[i % 2], None, |c| {
            if c == V2 {
                n += 1;
                if n.is_multiple_of(10) {
                    return 503;
                }
            }
            200
        });
        v2 += u32::from(cluster == V2);
        if i.is_multiple_of(500) {
            envoy.clock.advance(Duration::from_millis(700));
            for vm in &mut envoy.vms {
                vm.tick().unwrap();
            }
        }
    }
    assert_eq!(envoy.ejections(), 0);
    assert_eq!(envoy.metric(GAUGE_V2), 0);
    assert!((9_000..11_000).contains(&v2), "v2 kept its half: {v2}");
    // Counters lag by at most the unflushed successes of each VM.
    for vm in &mut envoy.vms {
        vm.tick().unwrap();
    }
    assert_eq!(envoy.metric(REQUESTS_V2), u64::from(v2));
    assert_eq!(envoy.metric(ERRORS_V2), u64::from(n / 10));
}

#[test]
fn the_last_destination_keeps_its_traffic() {
    // A lone guarded destination, failing: never ejected.
    let lone = config(1, vec![dest("v2", 1, guard(0.1, 5, "10s"))], false);
    let mut envoy = Envoy::new(2, &lone);
    for i in 0..200 {
        assert_eq!(one(&mut envoy.vms[i % 2], None, |_| 503), V2);
    }
    assert_eq!(envoy.ejections(), 0);
    // Two guarded destinations, both failing: one goes, the other stays.
    let both = config(
        2,
        vec![
            dest("v1", 50, guard(0.5, 10, "10s")),
            dest("v2", 50, guard(0.5, 10, "10s")),
        ],
        false,
    );
    envoy.configure(&both);
    let mut last = Vec::new();
    for i in 0..400 {
        last.push(one(&mut envoy.vms[i % 2], None, |_| 503));
    }
    assert_eq!(envoy.ejections(), 1);
    let tail = &last[300..];
    assert!(
        tail.iter().all(|c| c == &tail[0]),
        "one destination is left and takes everything"
    );
}

#[test]
fn a_stream_without_a_response_is_an_error() {
    let mut envoy = Envoy::new(1, &fifty_fifty(1));
    let vm = &mut envoy.vms[0];
    let mut v2 = 0;
    while v2 < 20 {
        let r = vm
            .request(&[
                (":authority", "backend"),
                (":path", "/"),
                (":method", "GET"),
            ])
            .unwrap();
        if r.header("x-canary-upstream") == Some(V2) {
            v2 += 1;
            vm.close(&r).unwrap();
        } else {
            vm.respond(&r, &[(":status", "200")]).unwrap();
        }
    }
    assert_eq!(envoy.ejections(), 1);
    assert_eq!(envoy.metric(ERRORS_V2), 20);
}

#[test]
fn sticky_users_of_other_destinations_never_move() {
    let rules = |v| {
        config(
            v,
            vec![
                dest("v1", 40, None),
                dest("v2", 40, None),
                dest("v3", 20, guard(0.5, 20, "10s")),
            ],
            true,
        )
    };
    let mut envoy = Envoy::new(2, &rules(1));
    let users: Vec<String> = (0..300).map(|u| format!("user-{u}")).collect();
    let before: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| one(&mut envoy.vms[i % 2], Some(u), |_| 200))
        .collect();
    // v3 starts failing; its users keep trying until it is ejected.
    let fails = |c: &str| if c == V3 { 503 } else { 200 };
    for (i, u) in users.iter().enumerate().cycle().take(600) {
        one(&mut envoy.vms[i % 2], Some(u), fails);
    }
    assert_eq!(envoy.ejections(), 1);
    for (i, u) in users.iter().enumerate() {
        let now = one(&mut envoy.vms[(i + 1) % 2], Some(u), fails);
        if before[i] == V3 {
            assert!(now == V1 || now == V2, "{u} left v3 for {now}");
        } else {
            assert_eq!(now, before[i], "{u} moved although its version is fine");
        }
    }
}

#[test]
fn a_new_rule_set_resets_the_guard_and_the_same_one_does_not() {
    let mut envoy = Envoy::new(2, &fifty_fifty(1));
    while envoy.ejections() == 0 {
        one(&mut envoy.vms[0], None, v2_fails);
        one(&mut envoy.vms[1], None, v2_fails);
    }
    // The same bytes again (an ECDS re-push): still ejected.
    envoy.configure(&fifty_fifty(1));
    assert_eq!(envoy.metric(GAUGE_V2), 1);
    for i in 0..100 {
        assert_eq!(one(&mut envoy.vms[i % 2], None, |_| 200), V1);
    }
    // New rules: v2 is back, and the gauge says so.
    envoy.configure(&fifty_fifty(2));
    assert_eq!(envoy.metric(GAUGE_V2), 0);
    let back = (0..200)
        .filter(|i| one(&mut envoy.vms[i % 2], None, |_| 200) == V2)
        .count();
    assert!(back > 50, "v2 serves again: {back} of 200");
    // And going back to the first rules starts over too (not its old window).
    envoy.configure(&fifty_fifty(1));
    let back = (0..200)
        .filter(|i| one(&mut envoy.vms[i % 2], None, |_| 200) == V2)
        .count();
    assert!(back > 50, "v2 serves again: {back} of 200");
    assert_eq!(envoy.ejections(), 1);
}

#[test]
fn a_rule_set_without_the_guarded_rule_leaves_no_ejection_or_window_shown() {
    let window_v2 = GAUGE_V2.replace(".ejected.", ".window_requests.");
    let mut envoy = Envoy::new(2, &fifty_fifty(1));
    while envoy.ejections() == 0 {
        one(&mut envoy.vms[0], None, v2_fails);
        one(&mut envoy.vms[1], None, v2_fails);
    }
    envoy.clock.advance(Duration::from_secs(1));
    for vm in &mut envoy.vms {
        vm.tick().unwrap();
    }
    assert_eq!(envoy.metric(GAUGE_V2), 1);
    assert!(envoy.metric(&window_v2) > 0, "the window is shown");
    // The rule `split` is gone: nothing of it is ejected or counted now.
    let renamed = serde_json::to_vec(&json!({
        "version": 2,
        "services": [{"hosts": ["backend"], "http": [{"name": "other", "route": [
            dest("v1", 50, None), dest("v2", 50, guard(0.5, 20, "10s"))]}]}]
    }))
    .unwrap();
    envoy.configure(&renamed);
    assert_eq!(envoy.metric(GAUGE_V2), 0);
    assert_eq!(envoy.metric(&window_v2), 0);
}

#[test]
fn a_lost_compare_and_swap_is_retried_and_counted_once() {
    let mut envoy = Envoy::new(2, &fifty_fifty(1));
    let mut v2 = 0u64;
    for i in 0..200 {
        // Every few requests another worker's write wins the race.
        envoy.vms[i % 2].fail_host_call_times("proxy_set_shared_data", Status::CasMismatch, 2);
        let cluster = one(&mut envoy.vms[i % 2], None, v2_fails);
        v2 += u64::from(cluster == V2);
    }
    assert_eq!(envoy.ejections(), 1);
    assert_eq!(envoy.metric(ERRORS_V2), v2, "each failure counted once");
}

#[test]
fn workers_on_two_threads_eject_exactly_once() {
    // Two VMs on two threads, one shared store: every round a new rule set,
    // and both send failing requests to v2 at the same time.
    let mut envoy = Envoy::new(2, &fifty_fifty(100));
    for round in 0..30u64 {
        envoy.configure(&fifty_fifty(100 + round));
        let before = envoy.ejections();
        let mut vms = std::mem::take(&mut envoy.vms);
        std::thread::scope(|s| {
            for vm in &mut vms {
                s.spawn(move || {
                    for _ in 0..40 {
                        one(vm, None, |_| 503);
                    }
                });
            }
        });
        envoy.vms = vms;
        assert_eq!(envoy.ejections() - before, 1, "round {round}: one ejection");
        assert_eq!(envoy.metric(GAUGE_V2), 1);
        // A VM whose last v2 answer came before the ejection learns of it on
        // its next tick.
        envoy.clock.advance(Duration::from_secs(1));
        for vm in &mut envoy.vms {
            vm.tick().unwrap();
        }
        for i in 0..20 {
            assert_eq!(
                one(&mut envoy.vms[i % 2], None, v2_fails),
                V1,
                "round {round}"
            );
        }
    }
}

#[test]
fn without_a_guard_the_response_path_makes_no_host_call() {
    let cfg = config(1, vec![dest("v1", 50, None), dest("v2", 50, None)], false);
    let mut envoy = Envoy::new(1, &cfg);
    let vm = &mut envoy.vms[0];
    let before = vm.host_call_count("proxy_get_header_map_value");
    for _ in 0..100 {
        one(vm, None, |_| 503);
    }
    assert_eq!(vm.host_call_count("proxy_get_header_map_value"), before);
    assert_eq!(vm.host_call_count("proxy_get_shared_data"), 0);
    assert_eq!(vm.host_call_count("proxy_set_shared_data"), 0);
    assert_eq!(vm.tick_period(), None);
}

#[test]
fn bad_guards_are_refused_with_their_path() {
    let vm_refuses = |g: Value, expect: &str| {
        let cfg = config(
            1,
            vec![dest("v1", 50, None), dest("v2", 50, Some(g))],
            false,
        );
        let mut vm = Vm::new(module(), VmOptions::default()).unwrap();
        assert!(!vm.configure(&cfg).unwrap());
        let logs = vm.logs_containing("configuration rejected");
        assert!(
            logs.iter().any(|l| l.contains(expect)),
            "{logs:?} lacks {expect}"
        );
    };
    let p = "services[0].http[0].route[1].guard";
    vm_refuses(
        json!({"maxErrorRate": 0, "minRequests": 1, "interval": "1s"}),
        &format!("{p}.maxErrorRate: must be above 0"),
    );
    vm_refuses(
        json!({"maxErrorRate": 1.5, "minRequests": 1, "interval": "1s"}),
        &format!("{p}.maxErrorRate: must be above 0"),
    );
    vm_refuses(
        json!({"maxErrorRate": 0.5, "minRequests": 0, "interval": "1s"}),
        &format!("{p}.minRequests: 0 is below 1"),
    );
    vm_refuses(
        json!({"maxErrorRate": 0.5, "minRequests": 1, "interval": "30"}),
        &format!("{p}.interval: `30` is not a duration"),
    );
    vm_refuses(
        json!({"maxErrorRate": 0.5, "minRequests": 1, "interval": "100ms"}),
        &format!("{p}.interval: must be between 500 and 3600000 milliseconds"),
    );
    vm_refuses(
        json!({"maxErrorRate": 0.5, "minRequests": 1, "interval": "2h"}),
        &format!("{p}.interval: must be between"),
    );
    vm_refuses(
        json!({"maxErrorRate": 0.5, "interval": "1s"}),
        &format!("{p}: missing field `minRequests`"),
    );
    vm_refuses(
        json!({"maxErrorRate": "x", "minRequests": 1, "interval": "1s"}),
        &format!("{p}.maxErrorRate: invalid type: string \"x\", expected f64"),
    );
}
