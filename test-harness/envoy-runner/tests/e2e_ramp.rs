//! A canary that drives itself, in real Envoys with two workers each
//! (`examples/weighted`'s Envoy, its upstreams changed with Envoy's fault
//! filter):
//!
//! - **the schedule**: a ramp 0 → 10 → 50 → 100 % with pauses of seconds;
//!   two Envoys started at different times agree in every step (their
//!   weight gauges), the traffic sampled in each step is within binomial
//!   bounds of the step's share, and sticky users — by header, and by the
//!   cookie the filter issues — never move from v2 back to v1;
//! - **errors**: a canary answering 503 while v1 answers 200 is ejected by
//!   its baseline guard within a stated number of its requests, the ramp
//!   stops (weight 0, the next steps do not bring it back, the gauges say
//!   so, one log line with both sides' figures); both answering 503 (a
//!   shared outage) ejects nothing over a long run; a canary failing 2%
//!   more than v1, under `maxErrorRate` 5%, is not ejected;
//! - **latency**: a canary slowed by 300 ms (the fault filter's delay in
//!   front of its upstream) is ejected by `maxLatencyRatio`; one as slow as
//!   v1 is not.
//!
//! - **examples/self-driving** as its run.sh runs it (the ramps' `start`
//!   moved to a few seconds ahead, the pauses shortened): `backend` v2
//!   walks to 100%, `reviews` v2 (a quarter of its answers 503) is caught
//!   at its first step and its ramp stops.
//!
//! - **from the rule source** (`examples/configmap-poll`'s Envoy, the rule
//!   file served by `support/rule_server.rs`): a ramp fetched after start
//!   walks its steps, and its gauges show them (the dynamic module counts
//!   such rules under labelled stats).
//!
//! Each test starts its own Envoys, so they run side by side; the pauses
//! are seconds long. `CANARY_ROUTER_BUILD=module` runs them against the
//! dynamic module (`scripts/test.sh` runs both builds).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_runner::{check_binomial, Build, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request};
use serde_json::{json, Value};
use support::rule_server::RuleServer;

const SERVICE: &str = "backend.default.svc.cluster.local";

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Builds the filter under test (once per process) before a test takes
/// the time its schedule starts from, so that a build on a busy machine
/// does not eat the schedule's first step.
fn built() {
    or_panic(Build::from_env().prebuild());
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `ms` since the epoch as RFC 3339 in UTC, with milliseconds.
fn rfc3339(ms: u64) -> String {
    canary_router::domain::ramp::format_time(ms)
}

fn dest(subset: &str, weight: u32) -> Value {
    json!({"destination": {"host": "backend", "subset": subset, "port": {"number": 80}}, "weight": weight})
}

/// A rule `name` from v1 to v2 with `ramp`, v2 guarded by `guard`.
fn rule(name: &str, ramp: &Value, guard: Option<&Value>) -> Value {
    let mut v2 = dest("v2", 0);
    if let Some(g) = guard {
        v2["guard"] = g.clone();
    }
    json!({"name": name, "route": [dest("v1", 100), v2], "ramp": ramp})
}

fn rules(http: Vec<Value>) -> String {
    json!({"services": [{"hosts": ["backend"], "http": http}]}).to_string()
}

fn steps_from(start_ms: u64, steps: Value) -> Value {
    json!({"canary": "v2", "start": rfc3339(start_ms), "steps": steps})
}

/// The weighted example's Envoy with `rules`, Envoy's fault filter first on
/// the v1 and v2 upstream listeners when given (an `abort` or `delay`).
fn start(rules: &str, v1_fault: Option<Value>, v2_fault: Option<Value>) -> Envoy {
    let mut cfg = or_panic(EnvoyConfig::from_example("weighted"));
    or_panic(cfg.set_wasm_configuration(rules));
    let listeners = cfg.value_mut()["static_resources"]["listeners"]
        .as_array_mut()
        .expect("listeners");
    for (name, fault) in [("backend_v1", v1_fault), ("backend_v2", v2_fault)] {
        let Some(fault) = fault else { continue };
        let l = listeners
            .iter_mut()
            .find(|l| l["name"] == name)
            .expect("an upstream listener");
        let filters = l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_array_mut()
            .expect("http_filters");
        filters.insert(
            0,
            json!({
                "name": "envoy.filters.http.fault",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
                }
            }),
        );
        let tc = filters[0]["typed_config"].as_object_mut().unwrap();
        for (k, v) in fault.as_object().unwrap() {
            tc.insert(k.clone(), v.clone());
        }
    }
    let opts = EnvoyOptions::default()
        .concurrency(2)
        .args(["--file-flush-interval-msec", "50"]);
    or_panic(Envoy::start(cfg, &opts))
}

fn abort(percent: u32) -> Value {
    json!({"abort": {"http_status": 503, "percentage": {"numerator": percent, "denominator": "HUNDRED"}}})
}

fn delay(ms: u32) -> Value {
    json!({"delay": {"fixed_delay": format!("{}s", f64::from(ms) / 1000.0), "percentage": {"numerator": 100, "denominator": "HUNDRED"}}})
}

fn stat(envoy: &Envoy, kind: &str, rule: &str, destination: Option<&str>) -> u64 {
    let mut name = format!("wasmcustom.canary_router.{kind}.service={SERVICE};.rule={rule};");
    if let Some(d) = destination {
        name.push_str(&format!(".destination={d};"));
    }
    or_panic(envoy.stats()).get(&name)
}

fn log_lines(envoy: &Envoy, needle: &str) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(envoy.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Which version answered: `x-version` of a 200, `503` for a 503.
fn version(r: &envoy_runner::Response) -> String {
    match (r.status, r.header("x-version")) {
        (200, Some(v)) => v,
        (503, _) => "503".into(),
        (s, v) => format!("status {s} {v:?}"),
    }
}

/// Every answer is v1 or v2, and v2's share is `share` by binomial bounds
/// (`offset`: when, in the ramp, for the message).
fn assert_split(answers: &[String], share: f64, offset: impl std::fmt::Display) {
    let v2 = answers.iter().filter(|v| *v == "v2").count() as u64;
    assert!(
        answers.iter().all(|v| v == "v1" || v == "v2"),
        "{answers:?}"
    );
    if let Err(msg) = check_binomial(answers.len() as u64, share, v2) {
        panic!("at {offset} ms: {msg}");
    }
}

/// `threads` connections sending `each` requests (with `headers`) back to
/// back; every answer's version.
fn concurrent(envoy: &Envoy, threads: usize, each: usize, headers: &[(&str, &str)]) -> Vec<String> {
    let addr = or_panic(envoy.addr(10000));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut c = HttpClient::new(addr).with_timeout(Duration::from_secs(10));
                    let mut req = Request::get("/").host("backend");
                    for (k, v) in headers {
                        req = req.header(k, v);
                    }
                    (0..each)
                        .map(|_| version(&or_panic(c.send(&req))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// A browser of the cookie rule: its cookie once the filter issued one.
#[derive(Default, Clone)]
struct Browser {
    cookie: Option<String>,
}

/// One request of a user: by header (`x-user-id`), or as a browser.
fn visit(c: &mut HttpClient, user: Option<&str>, browser: Option<&mut Browser>) -> String {
    let mut req = Request::get("/").host("backend");
    if let Some(u) = user {
        req = req.header("x-user-id", u);
    }
    let cookie = browser.as_ref().and_then(|b| b.cookie.clone());
    if let Some(k) = &cookie {
        req = req.header("cookie", format!("canary-id={k}"));
    }
    let r = or_panic(c.send(&req));
    if let Some(b) = browser {
        for set in r.header_all("set-cookie") {
            if let Some(v) = set.strip_prefix("canary-id=") {
                assert!(
                    cookie.is_none(),
                    "a second cookie for a browser that had one"
                );
                b.cookie = Some(v.split(';').next().unwrap().to_string());
            }
        }
    }
    version(&r)
}

#[test]
fn two_envoys_walk_the_schedule_together_and_sticky_users_stay_on_the_canary() {
    built();
    // Steps of 6 s from a start far enough ahead for both Envoys to be up.
    let launched = now_ms();
    let start_ms = launched + 20_000;
    let ramp = steps_from(
        start_ms,
        json!([
            {"setWeight": 10}, {"pause": {"duration": "6s"}},
            {"setWeight": 50}, {"pause": {"duration": "6s"}},
            {"setWeight": 100}
        ]),
    );
    let cfg = rules(vec![
        // Users by header; first-time browsers get a cookie.
        json!({"name": "users", "match": [{"headers": {"x-user-id": {}}}], "route": [dest("v1", 100), dest("v2", 0)],
               "sticky": {"header": "x-user-id"}, "ramp": ramp}),
        json!({"name": "browsers", "route": [dest("v1", 100), dest("v2", 0)],
               "sticky": {"cookie": "canary-id", "setCookie": {}}, "ramp": ramp}),
    ]);
    let a = start(&cfg, None, None);
    std::thread::sleep(Duration::from_secs(2));
    let b = start(&cfg, None, None);
    assert!(
        now_ms() + 2_000 < start_ms,
        "the Envoys took {} ms to start: too slow for this schedule",
        now_ms() - launched
    );
    let users: Vec<String> = (0..60).map(|u| format!("user-{u}")).collect();
    let mut browsers = vec![Browser::default(); 60];
    let (mut ca, mut cb) = (or_panic(a.client(10000)), or_panic(b.client(10000)));
    let mut user_on_v2 = vec![false; users.len()];
    let mut browser_on_v2 = vec![false; browsers.len()];
    // Sample each step from 1 s into it; (share, steps done) per step.
    for (offset, share, steps) in [
        (-3_000i64, 0.0, 0),
        (1_000, 0.1, 1),
        (7_000, 0.5, 3),
        (13_000, 1.0, 5),
    ] {
        let at = (start_ms as i64 + offset) as u64;
        if let Some(wait) = at.checked_sub(now_ms()) {
            std::thread::sleep(Duration::from_millis(wait));
        }
        let bp = (share * 10_000.0) as u64;
        for rule in ["users", "browsers"] {
            for e in [&a, &b] {
                assert_eq!(
                    stat(e, "ramp_step", rule, None),
                    steps,
                    "{rule} at {offset} ms"
                );
                assert_eq!(
                    stat(e, "weight", rule, Some("v2")),
                    bp,
                    "{rule} at {offset} ms"
                );
                assert_eq!(stat(e, "weight", rule, Some("v1")), 10_000 - bp);
            }
        }
        // Traffic: first-time browsers (a fresh key each), from both Envoys.
        for e in [&a, &b] {
            assert_split(&concurrent(e, 8, 40, &[]), share, offset);
        }
        // Sticky users and browsers, each in both Envoys: one version, and
        // once on v2 never back.
        for (i, u) in users.iter().enumerate() {
            let (va, vb) = (visit(&mut ca, Some(u), None), visit(&mut cb, Some(u), None));
            assert_eq!(va, vb, "{u} at {offset} ms: the Envoys disagree");
            assert!(
                !user_on_v2[i] || va == "v2",
                "{u} moved back to {va} at {offset} ms"
            );
            user_on_v2[i] = va == "v2";
        }
        for (i, br) in browsers.iter_mut().enumerate() {
            let va = visit(&mut ca, None, Some(br));
            let vb = visit(&mut cb, None, Some(br));
            assert_eq!(va, vb, "browser {i} at {offset} ms: the Envoys disagree");
            assert!(
                !browser_on_v2[i] || va == "v2",
                "browser {i} moved back at {offset} ms"
            );
            browser_on_v2[i] = va == "v2";
        }
        // Still in the same step after sampling.
        for e in [&a, &b] {
            assert_eq!(
                stat(e, "ramp_step", "users", None),
                steps,
                "sampling outlasted the step at {offset} ms"
            );
        }
        eprintln!(
            "step at {offset} ms: {} of 60 users and {} of 60 browsers on v2",
            user_on_v2.iter().filter(|x| **x).count(),
            browser_on_v2.iter().filter(|x| **x).count()
        );
    }
    assert!(
        user_on_v2.iter().chain(&browser_on_v2).all(|x| *x),
        "at 100% everyone is on v2"
    );
}

fn baseline_guard(ratio: Option<f64>) -> Value {
    let mut g =
        json!({"baseline": "v1", "maxErrorRate": 0.05, "minRequests": 20, "interval": "30s"});
    if let Some(r) = ratio {
        g["maxLatencyRatio"] = json!(r);
    }
    g
}

/// A 50% step from `start_ms`, then 100% `pause` later.
fn half_then_all(start_ms: u64, pause: &str) -> Value {
    steps_from(
        start_ms,
        json!([{"setWeight": 50}, {"pause": {"duration": pause}}, {"setWeight": 100}]),
    )
}

#[test]
fn a_failing_canary_is_ejected_by_its_baseline_and_the_ramp_stops() {
    built();
    // 50% now, 100% in 15 s (after the ejection, whenever the Envoy is up).
    let start_ms = now_ms();
    let envoy = start(
        &rules(vec![rule(
            "split",
            &half_then_all(start_ms, "15s"),
            Some(&baseline_guard(None)),
        )]),
        None,
        Some(abort(100)),
    );
    const CONNS: usize = 16;
    let answers = concurrent(&envoy, CONNS, 25, &[]);
    let failed = answers.iter().filter(|v| *v == "503").count();
    eprintln!("{failed} answers of v2 (503) among {}", answers.len());
    // minRequests (20) on each side; the other worker's baseline successes
    // wait for its batch of 16 (15 at most); and what was in flight on the
    // 16 connections.
    assert!(
        (20..=20 + 15 + 2 * CONNS).contains(&failed),
        "{failed} 503s\n{}",
        envoy.failure_report()
    );
    let lines = log_lines(&envoy, "guard ejected");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0]
            .contains("destination v2 (errors significantly over the baseline's by maxErrorRate)")
            && lines[0].contains("responses failed (100.0%)")
            && lines[0].contains("baseline v1: 0 of"),
        "{}",
        lines[0]
    );
    assert!(!log_lines(&envoy, "stopped at step 1 of 3").is_empty());
    // Past the next step's time: still stopped.
    let next = start_ms + 15_500;
    assert!(
        now_ms() < next,
        "the ejection came after the next step was due"
    );
    std::thread::sleep(Duration::from_millis(next - now_ms()));
    assert_eq!(stat(&envoy, "weight", "split", Some("v2")), 0);
    assert_eq!(stat(&envoy, "weight", "split", Some("v1")), 10_000);
    assert_eq!(stat(&envoy, "ramp_aborted", "split", None), 1);
    assert_eq!(stat(&envoy, "ramp_step", "split", None), 1);
    let after = concurrent(&envoy, 4, 50, &[]);
    assert!(after.iter().all(|v| v == "v1"), "{after:?}");
}

#[test]
fn a_shared_outage_and_a_small_excess_eject_nothing() {
    // Both failing every request; and v2 failing 2% (v1 none) under
    // maxErrorRate 5%. A long run each: 8,000 requests.
    let outage = start(
        &rules(vec![rule(
            "split",
            &half_then_all(now_ms(), "10m"),
            Some(&baseline_guard(None)),
        )]),
        Some(abort(100)),
        Some(abort(100)),
    );
    let small = start(
        &rules(vec![rule(
            "split",
            &half_then_all(now_ms(), "10m"),
            Some(&baseline_guard(None)),
        )]),
        None,
        Some(abort(2)),
    );
    for (envoy, what) in [(&outage, "shared outage"), (&small, "small excess")] {
        let answers = concurrent(envoy, 16, 500, &[]);
        assert_eq!(answers.len(), 8_000);
        assert!(log_lines(envoy, "guard ejected").is_empty(), "{what}");
        assert_eq!(stat(envoy, "ramp_aborted", "split", None), 0, "{what}");
        assert_eq!(
            stat(envoy, "weight", "split", Some("v2")),
            5_000,
            "{what}: the canary keeps its step"
        );
        let failed = answers.iter().filter(|v| *v == "503").count();
        eprintln!("{what}: {failed} of 8000 answers were 503, no ejection");
    }
}

#[test]
fn a_slow_canary_is_ejected_by_latency_an_equally_slow_one_is_not() {
    let slow = start(
        &rules(vec![rule(
            "split",
            &half_then_all(now_ms(), "10m"),
            Some(&baseline_guard(Some(2.0))),
        )]),
        None,
        Some(delay(300)),
    );
    let both = start(
        &rules(vec![rule(
            "split",
            &half_then_all(now_ms(), "10m"),
            Some(&baseline_guard(Some(2.0))),
        )]),
        Some(delay(300)),
        Some(delay(300)),
    );
    let answers = concurrent(&slow, 16, 8, &[]);
    assert!(
        answers.iter().all(|v| v == "v1" || v == "v2"),
        "{answers:?}"
    );
    let lines = log_lines(&slow, "guard ejected");
    assert_eq!(lines.len(), 1, "{lines:#?}\n{}", slow.failure_report());
    assert!(
        lines[0].contains("(p90 over maxLatencyRatio times the baseline's)")
            && lines[0].contains("0 of")
            && lines[0].contains("p90 3"),
        "{}",
        lines[0]
    );
    assert_eq!(stat(&slow, "weight", "split", Some("v2")), 0);
    assert_eq!(stat(&slow, "ramp_aborted", "split", None), 1);
    // As slow as v1: 400 requests, no ejection.
    let answers = concurrent(&both, 32, 13, &[]);
    assert_eq!(answers.len(), 416);
    assert!(
        log_lines(&both, "guard ejected").is_empty(),
        "{}",
        both.failure_report()
    );
    assert_eq!(stat(&both, "ramp_aborted", "split", None), 0);
}

/// Sets its flag when dropped, unwinding included: threads that loop until
/// the flag is set stop even when a check fails.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn the_self_driving_example_ramps_backend_and_catches_reviews() {
    built();
    // What run.sh does: the files' start (2026-12-07T10:00:00Z) moved ahead;
    // here the 20 s pauses are 5 s too.
    let mut cfg = or_panic(EnvoyConfig::from_example("self-driving"));
    let start_ms = now_ms() + 15_000;
    let rules = or_panic(cfg.wasm_configuration())
        .replace("2026-12-07T10:00:00Z", &rfc3339(start_ms))
        .replace("\"20s\"", "\"5s\"");
    or_panic(cfg.set_wasm_configuration(&rules));
    let envoy = or_panic(Envoy::start(
        cfg,
        &EnvoyOptions::default()
            .concurrency(2)
            .args(["--file-flush-interval-msec", "50"]),
    ));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let addr = or_panic(envoy.addr(10000));
    let fqdn = |svc: &str| format!("{svc}.default.svc.cluster.local");
    let gauge = |kind: &str, svc: &str, dest: Option<&str>| {
        let mut name = format!(
            "wasmcustom.canary_router.{kind}.service={};.rule=release;",
            fqdn(svc)
        );
        if let Some(d) = dest {
            name.push_str(&format!(".destination={d};"));
        }
        or_panic(envoy.stats()).get(&name)
    };
    assert!(
        now_ms() + 3_000 < start_ms,
        "the Envoy took too long to start for this schedule"
    );
    std::thread::scope(|s| {
        // The traffic stops however the checks end (a failed one included).
        let _stop = StopOnDrop(&stop);
        // Traffic to both services all along, 4 connections each.
        for host in ["backend", "reviews"] {
            for _ in 0..4 {
                let stop = &stop;
                s.spawn(move || {
                    let mut c = HttpClient::new(addr);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = c.send(&Request::get("/").host(host));
                    }
                });
            }
        }
        // backend: 0 before the start, then 10%, 50%, 100% (1 s into each step).
        for (offset, bp) in [
            (-2_000i64, 0u64),
            (1_000, 1_000),
            (6_000, 5_000),
            (11_000, 10_000),
        ] {
            let at = (start_ms as i64 + offset) as u64;
            if let Some(wait) = at.checked_sub(now_ms()) {
                std::thread::sleep(Duration::from_millis(wait));
            }
            assert_eq!(
                gauge("weight", "backend", Some("v2")),
                bp,
                "backend at {offset} ms"
            );
            assert_eq!(
                gauge("ramp_aborted", "backend", None),
                0,
                "backend at {offset} ms"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // reviews: caught at its first step, stopped there.
    assert_eq!(gauge("ramp_aborted", "reviews", None), 1);
    assert_eq!(gauge("ramp_step", "reviews", None), 1);
    assert_eq!(gauge("weight", "reviews", Some("v2")), 0);
    assert_eq!(gauge("guard.ejected", "reviews", Some("v2")), 1);
    assert_eq!(gauge("ramp_step", "backend", None), 5);
    let lines = log_lines(&envoy, "guard ejected");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&format!(
            "service {}, rule release, destination v2",
            fqdn("reviews")
        )),
        "{}",
        lines[0]
    );
    assert_eq!(log_lines(&envoy, "stopped at step 1 of 5").len(), 1);
}

#[test]
fn a_ramp_from_the_rule_source_walks_its_steps_and_shows_them() {
    built();
    let envoy = or_panic(Envoy::start(
        or_panic(EnvoyConfig::from_example("configmap-poll")),
        &EnvoyOptions::default()
            .concurrency(2)
            .args(["--file-flush-interval-msec", "50"]),
    ));
    let start_ms = now_ms() + 8_000;
    let file = json!({"version": 1, "services": [{"hosts": ["backend"], "http": [
        {"name": "split", "route": [dest("v1", 100), dest("v2", 0)],
         "ramp": steps_from(start_ms, json!([
             {"setWeight": 50}, {"pause": {"duration": "4s"}}, {"setWeight": 100}
         ]))}
    ]}]});
    // The rule server listens where the example's `rule_server` cluster points.
    let _server = or_panic(RuleServer::start(
        or_panic(envoy.addr(8000)),
        "/rules.json",
        file.to_string().as_bytes(),
    ));
    let deadline = now_ms() + 15_000;
    while or_panic(envoy.stats()).get("wasmcustom.canary_router.rules_version") != 1 {
        assert!(now_ms() < deadline, "the rule file was not fetched");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        now_ms() + 1_000 < start_ms,
        "the rules came too late for this schedule"
    );
    // 1 s into each step: before the start, 50%, 100%.
    for (offset, share, steps) in [(-1_000i64, 0.0, 0), (1_000, 0.5, 1), (5_000, 1.0, 3)] {
        let at = (start_ms as i64 + offset) as u64;
        if let Some(wait) = at.checked_sub(now_ms()) {
            std::thread::sleep(Duration::from_millis(wait));
        }
        let bp = (share * 10_000.0) as u64;
        assert_eq!(
            stat(&envoy, "ramp_step", "split", None),
            steps,
            "at {offset} ms"
        );
        assert_eq!(
            stat(&envoy, "weight", "split", Some("v2")),
            bp,
            "at {offset} ms"
        );
        assert_eq!(stat(&envoy, "weight", "split", Some("v1")), 10_000 - bp);
        assert_split(&concurrent(&envoy, 4, 50, &[]), share, offset);
    }
    assert_eq!(stat(&envoy, "ramp_next_step_ms", "split", None), 0);
}
