//! A rule's scheduled ramp, in the compiled filter with the host's manual
//! clock: each step takes effect at its boundary to the millisecond (the
//! filter asks for a tick there), the weights and the step show in gauges,
//! a reload with the same ramp continues, a changed ramp follows its own
//! schedule, two VMs configured at different times agree, sticky users on
//! the canary never move back, and the baseline guard's ejection stops the
//! ramp until the rule set changes.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wasm_host::{Clock, Module, SharedData, Stats, Vm, VmOptions};

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
const SERVICE: &str = "backend.default.svc.cluster.local";

/// 2026-12-07T10:00:00Z, and the clock's start ten seconds before it.
const START_MS: u64 = 1_796_637_600_000;

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::load(test_tools::filter_wasm()).expect("filter loads"))
}

fn clock_at(ms: u64) -> Clock {
    Clock::at(UNIX_EPOCH + Duration::from_millis(ms))
}

fn weight(destination: &str) -> String {
    format!("canary_router.weight.service={SERVICE};.rule=split;.destination={destination};")
}

fn rule_gauge(kind: &str) -> String {
    format!("canary_router.{kind}.service={SERVICE};.rule=split;")
}

/// 100/0 before the ramp, then 10% → 5 s → 50% → 5 s → 100%, from `start`.
fn ramp(start: &str) -> Value {
    json!({
        "canary": "v2",
        "start": start,
        "steps": [
            {"setWeight": 10}, {"pause": {"duration": "5s"}},
            {"setWeight": 50}, {"pause": {"duration": "5s"}},
            {"setWeight": 100}
        ]
    })
}

fn rules(version: u64, ramp: Value, guard: Option<Value>, sticky: Option<Value>) -> Vec<u8> {
    let mut v2 = json!({"destination": {"host": "backend", "subset": "v2", "port": {"number": 80}}, "weight": 0});
    if let Some(g) = guard {
        v2["guard"] = g;
    }
    let mut rule = json!({
        "name": "split",
        "route": [
            {"destination": {"host": "backend", "subset": "v1", "port": {"number": 80}}, "weight": 100},
            v2
        ],
        "ramp": ramp
    });
    if let Some(s) = sticky {
        rule["sticky"] = s;
    }
    serde_json::to_vec(&json!({
        "version": version,
        "services": [{"hosts": ["backend"], "http": [rule]}]
    }))
    .unwrap()
}

fn vm(clock: &Clock, shared: &SharedData, stats: &Stats, cfg: &[u8], seed: u64) -> Vm {
    let mut vm = Vm::new(
        module(),
        VmOptions {
            clock: clock.clone(),
            shared: shared.clone(),
            stats: stats.clone(),
            random_seed: seed,
            ..VmOptions::default()
        },
    )
    .unwrap();
    assert!(vm.configure(cfg).unwrap(), "{:#?}", vm.logs());
    vm
}

/// One request, answered with `status` (and an upstream time); the cluster.
fn one(vm: &mut Vm, user: Option<&str>, answer: impl Fn(&str) -> (u16, u64)) -> String {
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
    let (status, ms) = answer(&cluster);
    let (status, ms) = (status.to_string(), ms.to_string());
    vm.respond(
        &r,
        &[(":status", &status), ("x-envoy-upstream-service-time", &ms)],
    )
    .unwrap();
    cluster
}

fn ok(_: &str) -> (u16, u64) {
    (200, 1)
}

/// The share of `n` requests that reach v2.
fn v2_share(vm: &mut Vm, n: usize) -> f64 {
    (0..n).filter(|_| one(vm, None, ok) == V2).count() as f64 / n as f64
}

/// Within four standard deviations of a binomial share `p` over `n`.
fn near(share: f64, p: f64, n: usize) -> bool {
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    (share - p).abs() <= 4.0 * sd + 1e-9
}

#[test]
fn each_step_takes_effect_at_its_boundary_to_the_millisecond() {
    let clock = clock_at(START_MS - 10_000);
    let stats = Stats::new();
    let mut vm = vm(
        &clock,
        &SharedData::new(),
        &stats,
        &rules(1, ramp("2026-12-07T10:00:00Z"), None, None),
        7,
    );
    let g = |name: &str| stats.value(name).unwrap_or(u64::MAX);
    // Before the start: the route's own weights, and a tick asked for at the start.
    assert_eq!((g(&weight("v1")), g(&weight("v2"))), (10_000, 0));
    assert_eq!(g(&rule_gauge("ramp_step")), 0);
    assert_eq!(g(&rule_gauge("ramp_next_step_ms")), START_MS);
    assert_eq!(vm.tick_period(), Some(Duration::from_secs(10)));
    assert_eq!(v2_share(&mut vm, 200), 0.0);
    // Each boundary, one millisecond before and at it.
    for (at, before, after, step) in [
        (START_MS, 0, 1_000, 1),
        (START_MS + 5_000, 1_000, 5_000, 3),
        (START_MS + 10_000, 5_000, 10_000, 5),
    ] {
        let now = clock.now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        vm.advance(Duration::from_millis(at - 1 - now)).unwrap();
        assert_eq!(g(&weight("v2")), before, "1 ms before {at}");
        vm.advance(Duration::from_millis(1)).unwrap();
        assert_eq!(g(&weight("v2")), after, "at {at}");
        assert_eq!(g(&weight("v1")), 10_000 - after, "at {at}");
        assert_eq!(g(&rule_gauge("ramp_step")), step, "at {at}");
        // What requests see, within binomial bounds.
        let share = v2_share(&mut vm, 2_000);
        let p = after as f64 / 10_000.0;
        assert!(
            near(share, p, 2_000),
            "at {at}: v2 took {share}, the step says {p}"
        );
    }
    // After the last step: its weights stay, and no more ticks are due for the ramp.
    assert_eq!(g(&rule_gauge("ramp_next_step_ms")), 0);
    assert_eq!(vm.tick_period(), None);
    vm.advance(Duration::from_secs(3600)).unwrap();
    assert_eq!(v2_share(&mut vm, 100), 1.0);
    // The request path never read the clock: only configure and ticks did.
    let reads = vm.host_call_count("proxy_get_current_time_nanoseconds");
    v2_share(&mut vm, 500);
    assert_eq!(
        vm.host_call_count("proxy_get_current_time_nanoseconds"),
        reads
    );
}

#[test]
fn a_reload_with_the_same_ramp_continues_and_a_changed_ramp_follows_its_own() {
    let clock = clock_at(START_MS + 6_000);
    let stats = Stats::new();
    let start = "2026-12-07T10:00:00Z";
    let mut vm = vm(
        &clock,
        &SharedData::new(),
        &stats,
        &rules(1, ramp(start), None, None),
        3,
    );
    let g = |name: &str| stats.value(name).unwrap_or(u64::MAX);
    assert_eq!(g(&weight("v2")), 5_000, "configured mid-ramp: in its step");
    // The same ramp in a new rule set (another version): the same step.
    assert!(vm.configure(&rules(2, ramp(start), None, None)).unwrap());
    assert_eq!(g(&weight("v2")), 5_000);
    assert_eq!(g(&rule_gauge("ramp_step")), 3);
    // A ramp starting later: back to the route's weights until its start.
    assert!(vm
        .configure(&rules(3, ramp("2026-12-07T10:01:00Z"), None, None))
        .unwrap());
    assert_eq!(g(&weight("v2")), 0);
    assert_eq!(g(&rule_gauge("ramp_step")), 0);
    assert_eq!(vm.tick_period(), Some(Duration::from_secs(54)));
    vm.advance(Duration::from_secs(54)).unwrap();
    assert_eq!(g(&weight("v2")), 1_000);
    // A refused rule set keeps the one that serves, and its schedule.
    assert!(!vm
        .configure(&rules(
            4,
            json!({"canary": "v3", "start": start, "steps": [{"setWeight": 5}]}),
            None,
            None
        ))
        .unwrap());
    assert!(
        vm.logs_containing("services[0].http[0].ramp.canary: `v3` does not name one destination")
            .len()
            == 1,
        "{:#?}",
        vm.logs()
    );
    vm.advance(Duration::from_secs(5)).unwrap();
    assert_eq!(g(&weight("v2")), 5_000);
}

#[test]
fn two_proxies_configured_at_different_times_agree_in_every_step() {
    let clock = clock_at(START_MS - 2_000);
    let (a_stats, b_stats) = (Stats::new(), Stats::new());
    let cfg = rules(1, ramp("2026-12-07T10:00:00Z"), None, None);
    let mut a = vm(&clock, &SharedData::new(), &a_stats, &cfg, 1);
    let mut b: Option<Vm> = None;
    for step in 0..32 {
        // Half a second at a time through the whole ramp; b starts 3.5 s late.
        a.advance(Duration::from_millis(500)).unwrap();
        if let Some(b) = &mut b {
            b.advance(Duration::ZERO).unwrap();
        }
        if step == 7 {
            b = Some(vm(&clock, &SharedData::new(), &b_stats, &cfg, 2));
        }
        if let Some(b) = &mut b {
            // b's own ticks fall due on the same clock.
            b.advance(Duration::ZERO).unwrap();
            for d in ["v1", "v2"] {
                assert_eq!(
                    a_stats.value(&weight(d)),
                    b_stats.value(&weight(d)),
                    "step {step}, {d}"
                );
            }
        }
    }
    assert_eq!(a_stats.value(&weight("v2")), Some(10_000));
}

#[test]
fn sticky_users_on_the_canary_never_move_back() {
    let clock = clock_at(START_MS - 1_000);
    let stats = Stats::new();
    let cfg = rules(
        1,
        ramp("2026-12-07T10:00:00Z"),
        None,
        Some(json!({"header": "x-user"})),
    );
    let mut vm = vm(&clock, &SharedData::new(), &stats, &cfg, 5);
    let users: Vec<String> = (0..1_000).map(|u| format!("user-{u}")).collect();
    let mut on_v2 = vec![false; users.len()];
    let mut counts = Vec::new();
    for _ in 0..4 {
        let mut n = 0;
        for (i, u) in users.iter().enumerate() {
            let now = one(&mut vm, Some(u), ok) == V2;
            assert!(!on_v2[i] || now, "{u} moved back from v2");
            on_v2[i] = now;
            n += usize::from(now);
        }
        counts.push(n);
        vm.advance(Duration::from_secs(5)).unwrap();
    }
    // 0%, 10%, 50%, 100% of the users, within binomial bounds.
    for (n, p) in counts.iter().zip([0.0, 0.1, 0.5, 1.0]) {
        assert!(near(*n as f64 / 1_000.0, p, 1_000), "{counts:?}");
    }
}

fn baseline_guard(ratio: Option<f64>) -> Value {
    let mut g =
        json!({"baseline": "v1", "maxErrorRate": 0.05, "minRequests": 20, "interval": "10s"});
    if let Some(r) = ratio {
        g["maxLatencyRatio"] = json!(r);
    }
    g
}

/// Two VMs of one Envoy past the ramp's first step (50%).
fn envoy_at_half(guard: Value) -> (Vec<Vm>, Stats, Clock) {
    let clock = clock_at(START_MS + 5_000);
    let (shared, stats) = (SharedData::new(), Stats::new());
    let cfg = rules(1, ramp("2026-12-07T10:00:00Z"), Some(guard), None);
    let vms = (0..2)
        .map(|i| vm(&clock, &shared, &stats, &cfg, 20 + i))
        .collect();
    (vms, stats, clock)
}

#[test]
fn a_canary_failing_against_its_baseline_is_ejected_and_the_ramp_stops() {
    let (mut vms, stats, clock) = envoy_at_half(baseline_guard(None));
    let fails = |c: &str| if c == V2 { (503, 1) } else { (200, 1) };
    let mut v2_answers = 0;
    for i in 0..400 {
        if one(&mut vms[i % 2], None, fails) == V2 {
            v2_answers += 1;
        }
    }
    let lines: Vec<String> = vms
        .iter()
        .flat_map(|vm| vm.logs_containing("guard ejected"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0]
            .contains("destination v2 (errors significantly over the baseline's by maxErrorRate)")
            && lines[0].contains("responses failed (100.0%)")
            && lines[0].contains("baseline v1: 0 of "),
        "{}",
        lines[0]
    );
    // Ejected once both sides count minRequests (20): the baseline's
    // successes in the other VM wait for its next flush (at most 15), so
    // at most 20 + 15 failures, and one more the other VM picked.
    assert!(v2_answers <= 36, "{v2_answers} answers from v2");
    let stopped = vms
        .iter()
        .flat_map(|vm| vm.logs_containing("stopped at step 3 of 5"))
        .count();
    assert!(stopped >= 1, "{:#?}", vms[0].logs());
    let g = |name: &str| stats.value(name).unwrap_or(u64::MAX);
    assert_eq!((g(&weight("v1")), g(&weight("v2"))), (10_000, 0));
    assert_eq!(g(&rule_gauge("ramp_aborted")), 1);
    // Later steps do not bring it back.
    for vm in &mut vms {
        vm.advance(Duration::from_secs(20)).unwrap();
    }
    assert_eq!(g(&weight("v2")), 0);
    assert_eq!(g(&rule_gauge("ramp_step")), 3);
    assert!((0..200).all(|i| one(&mut vms[i % 2], None, ok) == V1));
    // A new rule set starts over, at the schedule's step for now.
    let _ = clock;
    let cfg = rules(
        2,
        ramp("2026-12-07T10:00:00Z"),
        Some(baseline_guard(None)),
        None,
    );
    for vm in &mut vms {
        assert!(vm.configure(&cfg).unwrap());
    }
    assert_eq!(
        (g(&weight("v2")), g(&rule_gauge("ramp_aborted"))),
        (10_000, 0)
    );
}

#[test]
fn a_shared_outage_ejects_nothing() {
    let (mut vms, stats, _) = envoy_at_half(baseline_guard(None));
    for i in 0..4_000 {
        one(&mut vms[i % 2], None, |_| (503, 1));
        if i % 400 == 0 {
            for vm in &mut vms {
                vm.advance(Duration::from_millis(500)).unwrap();
            }
        }
    }
    assert!(vms
        .iter()
        .all(|vm| vm.logs_containing("guard ejected").is_empty()));
    assert_eq!(stats.value(&rule_gauge("ramp_aborted")), Some(0));
}

#[test]
fn a_slow_canary_is_ejected_by_latency_an_equally_slow_one_is_not() {
    let slow_v2 = |c: &str| if c == V2 { (200, 300) } else { (200, 2) };
    let (mut vms, stats, _) = envoy_at_half(baseline_guard(Some(2.0)));
    for i in 0..200 {
        one(&mut vms[i % 2], None, slow_v2);
    }
    let lines: Vec<String> = vms
        .iter()
        .flat_map(|vm| vm.logs_containing("guard ejected"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("(p90 over maxLatencyRatio times the baseline's)")
            && lines[0].contains("p90 3")
            && lines[0].contains("baseline v1: 0 of"),
        "{}",
        lines[0]
    );
    assert_eq!(stats.value(&weight("v2")), Some(0));
    // Both as slow: not ejected.
    let (mut vms, _, _) = envoy_at_half(baseline_guard(Some(2.0)));
    for i in 0..2_000 {
        one(&mut vms[i % 2], None, |_| (200, 300));
    }
    assert!(vms
        .iter()
        .all(|vm| vm.logs_containing("guard ejected").is_empty()));
}

#[test]
fn bad_ramps_and_baselines_are_refused_with_their_path() {
    let clock = clock_at(START_MS);
    let refuses = |cfg: Vec<u8>, expect: &str| {
        let mut vm = Vm::new(
            module(),
            VmOptions {
                clock: clock.clone(),
                ..VmOptions::default()
            },
        )
        .unwrap();
        assert!(!vm.configure(&cfg).unwrap());
        assert_eq!(
            vm.logs_containing(expect).len(),
            1,
            "{expect}: {:#?}",
            vm.logs()
        );
    };
    let with_steps = |steps: Value| {
        rules(
            1,
            json!({"canary": "v2", "start": "2026-12-07T10:00:00Z", "steps": steps}),
            None,
            None,
        )
    };
    refuses(
        with_steps(json!([{"setWeight": 50}, {"setWeight": 20}])),
        "services[0].http[0].ramp.steps[1].setWeight: goes down",
    );
    refuses(
        with_steps(json!([{"setWeight": 100.5}])),
        "services[0].http[0].ramp.steps[0].setWeight: must be a percentage",
    );
    refuses(
        with_steps(json!([{"pause": {"duration": "10"}}])),
        "services[0].http[0].ramp.steps[0].pause.duration: `10` is not a duration",
    );
    refuses(
        with_steps(json!([{"pause": {"duration": "1m"}}])),
        "services[0].http[0].ramp.steps: no step sets a weight",
    );
    refuses(
        with_steps(json!([])),
        "services[0].http[0].ramp.steps: no step sets a weight",
    );
    refuses(
        with_steps(json!([{}])),
        "services[0].http[0].ramp.steps[0]: give either `setWeight` or `pause`",
    );
    refuses(
        rules(
            1,
            json!({"canary": "v2", "start": "2026-12-07 10:00", "steps": [{"setWeight": 5}]}),
            None,
            None,
        ),
        "services[0].http[0].ramp.start: is not an RFC 3339 time",
    );
    refuses(
        rules(
            1,
            ramp("2026-12-07T10:00:00Z"),
            Some(
                json!({"baseline": "v9", "maxErrorRate": 0.05, "minRequests": 20, "interval": "10s"}),
            ),
            None,
        ),
        "services[0].http[0].route[1].guard.baseline: `v9` does not name one destination",
    );
    refuses(
        rules(
            1,
            ramp("2026-12-07T10:00:00Z"),
            Some(
                json!({"baseline": "v2", "maxErrorRate": 0.05, "minRequests": 20, "interval": "10s"}),
            ),
            None,
        ),
        "services[0].http[0].route[1].guard.baseline: is the guarded destination itself",
    );
    refuses(
        rules(
            1,
            ramp("2026-12-07T10:00:00Z"),
            Some(
                json!({"maxLatencyRatio": 2, "maxErrorRate": 0.05, "minRequests": 20, "interval": "10s"}),
            ),
            None,
        ),
        "services[0].http[0].route[1].guard.maxLatencyRatio: needs `baseline`",
    );
    refuses(
        rules(
            1,
            ramp("2026-12-07T10:00:00Z"),
            Some(baseline_guard(Some(1.0))),
            None,
        ),
        "services[0].http[0].route[1].guard.maxLatencyRatio: must be above 1",
    );
    let _ = SystemTime::now();
}

/// `canary_router.guard.requests` of a destination of the rule.
fn guard_requests(stats: &Stats, destination: &str) -> u64 {
    stats
        .value(&format!(
            "canary_router.guard.requests.service={SERVICE};.rule=split;.destination={destination};"
        ))
        .unwrap_or(0)
}

#[test]
fn a_baselines_answers_are_sampled_in_proportion_to_its_canarys() {
    // The ramp's first step: v2 at 10%, so one answer of v1 in 9 is counted.
    let clock = clock_at(START_MS + 1_000);
    let (shared, stats) = (SharedData::new(), Stats::new());
    let cfg = rules(
        1,
        ramp("2026-12-07T10:00:00Z"),
        Some(baseline_guard(None)),
        None,
    );
    let mut vms: Vec<Vm> = (0..2)
        .map(|i| vm(&clock, &shared, &stats, &cfg, 40 + i))
        .collect();
    let mut to_v1 = 0;
    for i in 0..4_000 {
        if one(&mut vms[i % 2], None, ok) == V1 {
            to_v1 += 1;
        }
    }
    for vm in &mut vms {
        vm.advance(Duration::from_secs(2)).unwrap();
    }
    let (v1, v2) = (guard_requests(&stats, "v1"), guard_requests(&stats, "v2"));
    assert!(to_v1 > 3_000, "{to_v1} of 4000 to v1");
    assert!(v2 > 300, "v2's answers are all counted: {v2}");
    assert!(
        v1.abs_diff(to_v1 as u64 / 9) <= 2,
        "v1 counted {v1} of its {to_v1} answers, not one in 9"
    );
    // At the 50% step every answer of v1 is counted again.
    for vm in &mut vms {
        vm.advance(Duration::from_secs(3)).unwrap();
    }
    let before = guard_requests(&stats, "v1");
    let mut to_v1 = 0;
    for i in 0..400 {
        if one(&mut vms[i % 2], None, ok) == V1 {
            to_v1 += 1;
        }
    }
    for vm in &mut vms {
        vm.advance(Duration::from_secs(2)).unwrap();
    }
    assert_eq!(guard_requests(&stats, "v1") - before, to_v1 as u64);
}
