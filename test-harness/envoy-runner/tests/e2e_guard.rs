//! The guard in a real Envoy with two workers (`examples/weighted`'s
//! Envoy, whose v2 upstream answers 503 through Envoy's fault filter):
//!
//! - a failing canary at 50/50, guarded at 0.5 over 20 responses, is
//!   ejected at its threshold: sequentially at most one more request
//!   (the other worker's next) reaches v2, under 16 concurrent
//!   connections at most 2 × 16 more; afterwards v1 answers everything;
//!   the gauge reads 1 and Envoy's log has exactly one warning;
//! - a canary failing 10% of its requests under a 0.5 guard keeps its half
//!   over a long run;
//! - a failing destination that is a rule's only one keeps its traffic;
//! - a new rule set (a listener update, so every worker configures again)
//!   resets the guard, and round after round, both workers racing under
//!   load, there is exactly one ejection per rule set; rules without the
//!   guarded rule show it ejected no more.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_runner::{set_listener_rules, Envoy, EnvoyConfig, EnvoyOptions, HttpClient, Request};
use serde_json::{json, Value};

/// The name of the filter's stat `name` of `rule`'s `destination`.
fn stat(name: &str, rule: &str, destination: &str) -> String {
    format!(
        "wasmcustom.canary_router.{name}.service=backend.default.svc.cluster.local;.rule={rule};.destination={destination};"
    )
}

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn dest(subset: &str, weight: u32, guard: Option<(f64, u32)>) -> Value {
    let mut d = json!({
        "destination": {"host": "backend", "subset": subset, "port": {"number": 80}},
        "weight": weight
    });
    if let Some((rate, min)) = guard {
        d["guard"] = json!({"maxErrorRate": rate, "minRequests": min, "interval": "30s"});
    }
    d
}

fn rules(version: u64, route: Vec<Value>) -> String {
    json!({
        "version": version,
        "services": [{"hosts": ["backend"], "http": [{"name": "split", "route": route}]}]
    })
    .to_string()
}

fn fifty_fifty(version: u64) -> String {
    rules(
        version,
        vec![dest("v1", 50, None), dest("v2", 50, Some((0.5, 20)))],
    )
}

/// `examples/weighted`'s Envoy with `rules`, v2's upstream failing
/// `v2_fails` percent of its requests with a 503 (Envoy's fault filter).
fn start(rules: &str, v2_fails: u32, reloadable: bool) -> Envoy {
    let mut cfg = or_panic(EnvoyConfig::from_example("weighted"));
    or_panic(cfg.set_wasm_configuration(rules));
    let fault = json!({
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {"http_status": 503, "percentage": {"numerator": v2_fails, "denominator": "HUNDRED"}}
        }
    });
    let listeners = cfg.value_mut()["static_resources"]["listeners"]
        .as_array_mut()
        .expect("listeners");
    let v2 = listeners
        .iter_mut()
        .find(|l| l["name"] == "backend_v2")
        .expect("the v2 upstream listener");
    let filters = v2["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        .as_array_mut()
        .expect("http_filters");
    filters.insert(0, fault);
    let mut opts = EnvoyOptions::default()
        .concurrency(2)
        .args(["--file-flush-interval-msec", "50"]);
    if reloadable {
        opts = opts.reloadable();
    }
    or_panic(Envoy::start(cfg, &opts))
}

/// Which version answered (`x-version`; the fault filter keeps the route's
/// response headers off, so a 503 without it is v2's fault).
fn version(r: &envoy_runner::Response) -> String {
    match (r.status, r.header("x-version")) {
        (200, Some(v)) => v,
        (503, _) => "v2".into(),
        (s, v) => format!("status {s} {v:?}"),
    }
}

/// One request on a new connection (so that both workers serve).
fn once(envoy: &Envoy) -> String {
    let mut c = HttpClient::new(or_panic(envoy.addr(10000)));
    version(&or_panic(c.send(&Request::get("/").host("backend"))))
}

/// `threads` connections sending `each` requests back to back; the
/// versions in the order the answers arrived.
fn concurrent(envoy: &Envoy, threads: usize, each: usize) -> Vec<String> {
    let addr = or_panic(envoy.addr(10000));
    let out = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let out = out.clone();
            s.spawn(move || {
                let mut c = HttpClient::new(addr);
                for _ in 0..each {
                    let v = version(&or_panic(c.send(&Request::get("/").host("backend"))));
                    out.lock().unwrap().push(v);
                }
            });
        }
    });
    Arc::try_unwrap(out).unwrap().into_inner().unwrap()
}

fn ejection_lines(envoy: &Envoy) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(envoy.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("guard ejected"))
        .map(str::to_string)
        .collect()
}

fn gauge(envoy: &Envoy) -> u64 {
    or_panic(envoy.stats()).get(&stat("guard.ejected", "split", "v2"))
}

#[test]
fn a_failing_canary_is_ejected_at_its_threshold_sequentially() {
    let envoy = start(&fifty_fifty(1), 100, false);
    let mut v2 = 0;
    let mut after = 0;
    for _ in 0..400 {
        let v = once(&envoy);
        if v == "v2" {
            if v2 >= 20 {
                after += 1;
            }
            v2 += 1;
        } else {
            assert_eq!(v, "v1");
        }
    }
    eprintln!("sequential: {v2} requests reached v2, {after} of them after the 20th");
    assert!(v2 >= 20, "v2 got {v2}\n{}", envoy.failure_report());
    // The worker that counted the 20th failure ejects at once; the other
    // learns at its next v2 answer, or its next tick.
    assert!(
        after <= 1,
        "{after} after the threshold\n{}",
        envoy.failure_report()
    );
    assert_eq!(gauge(&envoy), 1);
    assert_eq!(
        or_panic(envoy.stats()).get(&stat("guard.errors", "split", "v2")),
        v2
    );
    let lines = ejection_lines(&envoy);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("service backend.default.svc.cluster.local, rule split, destination v2")
            && lines[0].contains("20 of 20 responses failed (100.0%)"),
        "{}",
        lines[0]
    );
    for _ in 0..200 {
        assert_eq!(once(&envoy), "v1");
    }
}

#[test]
fn a_failing_canary_is_ejected_under_load_once_per_rule_set() {
    // Three rule sets in a row, each ejected while 16 connections race on
    // both workers; a new rule set brings v2 back.
    let mut envoy = start(&fifty_fifty(1), 100, true);
    const CONNS: usize = 16;
    for round in 1..=3u64 {
        if round > 1 {
            or_panic(envoy.reload_rules(&fifty_fifty(round)));
            assert_eq!(
                gauge(&envoy),
                0,
                "round {round}: a new rule set resets the gauge"
            );
        }
        let answers = concurrent(&envoy, CONNS, 40);
        let v2 = answers.iter().filter(|v| *v == "v2").count();
        assert!(
            answers.iter().all(|v| v == "v1" || v == "v2"),
            "{answers:?}"
        );
        eprintln!(
            "round {round}: {v2} of {} answers from v2 under {CONNS} connections",
            answers.len()
        );
        assert!(v2 >= 20, "round {round}: v2 got {v2}");
        // In flight at the ejection, plus what the other worker routed
        // before its first answer from v2 after it.
        assert!(v2 <= 20 + 2 * CONNS, "round {round}: {v2} reached v2");
        assert_eq!(gauge(&envoy), 1, "round {round}");
        assert_eq!(
            ejection_lines(&envoy).len(),
            round as usize,
            "round {round}: one ejection per rule set\n{:#?}",
            ejection_lines(&envoy)
        );
        // Both workers know (the late one within a tick).
        std::thread::sleep(Duration::from_millis(1200));
        let after = concurrent(&envoy, 4, 50);
        assert!(after.iter().all(|v| v == "v1"), "round {round}: {after:?}");
    }
    // Rules without the rule `split`: nothing of it shows ejected or weighted
    // (the wasm filter's new configuration sets it to 0; the module's old
    // configuration takes its stats with it once its listener drained).
    let renamed = fifty_fifty(4).replace(r#""name":"split""#, r#""name":"other""#);
    or_panic(envoy.reload_rules(&renamed));
    let weight_v1 = stat("weight", "split", "v1");
    let shown = || (gauge(&envoy), or_panic(envoy.stats()).get(&weight_v1));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shown() != (0, 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(shown(), (0, 0), "a dropped rule's ejection and weight");
    // The old configuration drains (1 s) and its guard ticks meanwhile:
    // it routes its last streams but shows none of its gauges again.
    let window = stat("guard.window_requests", "split", "v2");
    std::thread::sleep(Duration::from_millis(2500));
    let stats = or_panic(envoy.stats());
    assert_eq!(
        (shown(), stats.get(&window)),
        ((0, 0), 0),
        "a dropped rule's gauges after the old configuration drained"
    );
    // The filter removed outright: none of its rule's gauges stays shown
    // (Envoy drops them with the filter's VM).
    let other = |name: &str| stat(name, "other", "v2");
    let before = or_panic(envoy.stats());
    assert_eq!(
        before.get(&other("weight")),
        5000,
        "the rule in force shows"
    );
    or_panic(envoy.reload_listeners(|listeners| {
        for listener in listeners {
            for http in http_filters(listener) {
                http.retain(|f| f["name"] != "envoy.filters.http.wasm");
            }
        }
    }));
    std::thread::sleep(Duration::from_millis(2500));
    let stats = or_panic(envoy.stats());
    let left: Vec<(String, u64)> = ["weight", "guard.ejected", "guard.window_requests"]
        .iter()
        .map(|g| (g.to_string(), stats.get(&other(g))))
        .filter(|(_, v)| *v != 0)
        .collect();
    assert!(left.is_empty(), "a removed filter's gauges: {left:?}");
}

/// The HTTP filter lists of a listener's filter chains.
fn http_filters(listener: &mut Value) -> impl Iterator<Item = &mut Vec<Value>> {
    let chains = listener["filter_chains"]
        .as_array_mut()
        .into_iter()
        .flatten();
    chains
        .flat_map(|c| c["filters"].as_array_mut().into_iter().flatten())
        .filter_map(|f| f["typed_config"]["http_filters"].as_array_mut())
}

#[test]
fn a_second_listener_of_the_plugin_shows_its_gauges_until_it_goes() {
    // The same plugin (vm_id, root_id, code) on a second listener with
    // other rules: a second root context in each worker's VM, built last.
    let mut envoy = start(&fifty_fifty(1), 0, true);
    let weight = |rule: &str| stat("weight", rule, "v2");
    let shown = |envoy: &Envoy| {
        let stats = or_panic(envoy.stats());
        (stats.get(&weight("split")), stats.get(&weight("other")))
    };
    assert_eq!(shown(&envoy), (5000, 0));
    let other = rules(2, vec![dest("v1", 90, None), dest("v2", 10, None)])
        .replace(r#""name":"split""#, r#""name":"other""#);
    or_panic(envoy.reload_listeners(|listeners| {
        let mut second = listeners
            .iter()
            .find(|l| l["name"] == "outbound_80")
            .cloned()
            .expect("the filter's listener");
        second["name"] = json!("outbound_81");
        second["address"]["socket_address"]["port_value"] = json!(0);
        set_listener_rules(&mut second, &other);
        listeners.push(second);
    }));
    // Both listeners route with their own rules, and the second one's show
    // (in the wasm filter's VM, one gauge per name: the rules built last
    // write it).
    assert_eq!(shown(&envoy).1, 1000, "the second listener's rules show");
    // The second listener goes: the first one's rules show again.
    or_panic(envoy.reload_listeners(|listeners| {
        listeners.retain(|l| l["name"] != "outbound_81");
    }));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        shown(&envoy),
        (5000, 0),
        "after the second listener drained"
    );
}

#[test]
fn a_canary_failing_below_its_rate_keeps_its_share() {
    // 10% of v2's answers fail; the guard ejects at 50% over 20.
    let envoy = start(&fifty_fifty(1), 10, false);
    let answers = concurrent(&envoy, 8, 500);
    let v2 = answers.iter().filter(|v| *v == "v2").count();
    eprintln!("healthy: {v2} of {} answers from v2", answers.len());
    assert!((1800..2200).contains(&v2), "v2 kept its half: {v2} of 4000");
    assert_eq!(gauge(&envoy), 0);
    assert!(ejection_lines(&envoy).is_empty());
    let errors = or_panic(envoy.stats()).get(&stat("guard.errors", "split", "v2"));
    assert!(errors > 100, "its failures were counted: {errors}");
}

#[test]
fn a_failing_lone_destination_keeps_its_traffic() {
    let envoy = start(&rules(1, vec![dest("v2", 1, Some((0.1, 5)))]), 100, false);
    for _ in 0..100 {
        assert_eq!(once(&envoy), "v2");
    }
    assert_eq!(gauge(&envoy), 0);
    assert!(ejection_lines(&envoy).is_empty());
}
