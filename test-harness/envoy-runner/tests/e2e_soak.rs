//! Faults under load, in a real Envoy with two workers: `wrk` keeps 64
//! connections busy for a minute (`CANARY_SOAK_SECONDS`) while the rules
//! change every second, both ways they can change, with faults mixed in:
//!
//! - ECDS (the WasmPlugin path): a new filter configuration every second,
//!   every sixth one a rule set the filter refuses;
//! - the polled rule file (the ConfigMap path): a new file every second,
//!   broken files, HTTP 500s, a hanging server and a dead server.
//!
//! Every good rule set guards v2 (`maxErrorRate` 0.05 over 50 answers in
//! 10 s): the guard counts through every change and, v2 being healthy,
//! ejects nothing. Every response must be a 2xx (wrk's non-2xx count and
//! socket errors are 0), and after the last change the split matches the
//! last good rules.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use envoy_runner::{
    check_binomial, count_split, example_dir, Envoy, EnvoyConfig, EnvoyOptions, Request, SplitKey,
};
use support::ecds::{ecds_config, install_ecds, install_ecds_bytes, temp_dir};
use support::rule_server::{Mode, RuleServer};
use support::stats::wait_stats;

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn soak_seconds() -> u64 {
    std::env::var("CANARY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .max(10)
}

/// What wrk reported.
#[derive(Debug)]
struct Wrk {
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
    text: String,
}

/// Runs wrk against `addr` in a thread; join it for the report.
fn wrk(addr: SocketAddr, seconds: u64) -> std::thread::JoinHandle<Wrk> {
    std::thread::spawn(move || {
        let out = Command::new("wrk")
            .args(["-t2", "-c64", "--timeout", "10s", "--latency"])
            .arg(format!("-d{seconds}s"))
            .args(["-H", "Host: backend"])
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap_or_else(|e| panic!("wrk: {e} (scripts/setup.sh installs it)"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let number_after = |needle: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(needle))
                .and_then(|rest| rest.trim().split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let requests = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // "Socket errors: connect 0, read 0, write 0, timeout 0"
        let socket_errors = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map_or(0, |rest| {
                rest.split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            });
        Wrk {
            requests,
            non_2xx: number_after("Non-2xx or 3xx responses:").unwrap_or(0),
            socket_errors,
            text,
        }
    })
}

/// v2's weight in the templates, replaced whole: a plain `"weight": 10`
/// also matched the start of v1's `"weight": 100` when v2's step was 0
/// (the rules then did not parse and were refused).
const V2_WEIGHT: &str = r#""subset": "v2", "port": { "number": 80 } }, "weight": 10"#;
const V1_WEIGHT: &str = r#""subset": "v1", "port": { "number": 80 } }, "weight": 90"#;
const V1_AT: &str = r#""subset": "v1", "port": { "number": 80 } }, "weight": "#;
const V2_AT: &str = r#""subset": "v2", "port": { "number": 80 } }, "weight": "#;

/// A guard on v2 in every good rule set: counting every v2 answer, through
/// every rule change, and never ejecting (v2 never fails).
const GUARD: &str = r#", "guard": { "maxErrorRate": 0.05, "minRequests": 50, "interval": "10s" }"#;

/// The guard counted v2's answers and ejected nothing.
fn assert_guarded(envoy: &Envoy, what: &str) {
    let stats = or_panic(envoy.stats());
    let counted = stats.sum_prefix("wasmcustom.canary_router.guard.requests");
    let ejected = stats.sum_prefix("wasmcustom.canary_router.guard.ejected");
    let errors = stats.sum_prefix("wasmcustom.canary_router.guard.errors");
    eprintln!("{what}: the guard counted {counted} v2 answers, {errors} errors");
    assert!(counted > 100, "{what}: the guard counted {counted}");
    assert_eq!(ejected, 0, "{what}: a healthy v2 was ejected");
    // wrk's requests in flight when it stops end without a response: the
    // only errors a healthy v2 can have (one per connection at most).
    assert!(errors <= 64, "{what}: {errors} errors from a healthy v2");
}

fn options() -> EnvoyOptions {
    EnvoyOptions::default().concurrency(2).without_access_logs()
}

/// The v2 share of 4000 requests after the load, checked against `p`.
fn assert_final_split(envoy: &Envoy, p: f64, what: &str) {
    let mut client = or_panic(envoy.client(10000));
    let split = or_panic(count_split(
        &mut client,
        4000,
        &Request::get("/").host("backend"),
        &SplitKey::version(),
    ));
    assert_eq!(
        split.count("v1") + split.count("v2"),
        4000,
        "{what}: {split:?}"
    );
    let check = check_binomial(4000, p, split.count("v2"))
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", envoy.failure_report()));
    eprintln!("{what}: final split {check}");
}

fn assert_clean(w: &Wrk, envoy: &Envoy, what: &str) {
    eprintln!(
        "{what}: wrk sent {} requests: {} non-2xx, {} socket errors",
        w.requests, w.non_2xx, w.socket_errors
    );
    assert!(
        w.requests > 1000,
        "{what}: wrk sent too little:\n{}",
        w.text
    );
    assert_eq!(
        w.non_2xx,
        0,
        "{what}: failed requests:\n{}\n{}",
        w.text,
        envoy.failure_report()
    );
    assert_eq!(
        w.socket_errors,
        0,
        "{what}: socket errors:\n{}\n{}",
        w.text,
        envoy.failure_report()
    );
    let stats = or_panic(envoy.stats());
    assert_eq!(
        stats.get("wasmcustom.canary_router.host_call_errors"),
        0,
        "{what}"
    );
}

/// The v2 weight of step `i`: a walk over 0..=100 that never repeats the previous one.
fn v2_weight(i: u64) -> u64 {
    (i * 37 + 11) % 101
}

#[test]
fn soak_ecds_updates_every_second_under_wrk() {
    let seconds = soak_seconds();
    let dir = temp_dir("soak-ecds");
    install_ecds(&dir, "canary-router-90-10.yaml");
    let envoy = or_panic(Envoy::start(ecds_config(&dir), &options()));
    let template = or_panic(std::fs::read_to_string(
        example_dir("ecds-reload").join("canary-router-90-10.yaml"),
    ));
    assert!(
        template.contains(V1_WEIGHT) && template.contains(V2_WEIGHT),
        "the template changed"
    );
    let invalid = or_panic(std::fs::read(
        example_dir("ecds-reload").join("canary-router-invalid.yaml"),
    ));
    let load = wrk(or_panic(envoy.addr(10000)), seconds);
    let started = Instant::now();
    let (mut good, mut refused, mut last_v2) = (0u64, 0u64, 10u64);
    let mut step = 0u64;
    while started.elapsed() < Duration::from_secs(seconds.saturating_sub(3)) {
        std::thread::sleep(Duration::from_secs(1));
        step += 1;
        if step.is_multiple_of(6) {
            install_ecds_bytes(&dir, &invalid);
            refused += 1;
        } else {
            let v2 = v2_weight(step);
            let file = template
                .replace(
                    "version_info: \"90-10\"",
                    &format!("version_info: \"soak-{step}\""),
                )
                .replace(V2_WEIGHT, &format!("{V2_AT}{v2}{GUARD}"))
                .replace(V1_WEIGHT, &format!("{V1_AT}{}", 100 - v2));
            install_ecds_bytes(&dir, file.as_bytes());
            good += 1;
            last_v2 = v2;
        }
    }
    let report = or_panic(load.join().map_err(|_| "wrk thread panicked"));
    eprintln!("ecds: {good} good and {refused} refused updates under load");
    assert_clean(&report, &envoy, "ecds");
    assert_guarded(&envoy, "ecds");
    let ecds = "extension_config_discovery.http_filter.canary-router";
    wait_stats(&envoy, "ECDS to settle", Duration::from_secs(10), |s| {
        s.get(&format!("{ecds}.update_success")) >= 1
            && s.get(&format!("{ecds}.update_rejected")) >= 1
    });
    // If the last file installed was refused, the one before it serves.
    let stats = or_panic(envoy.stats());
    eprintln!(
        "ecds: update_success {} update_rejected {}",
        stats.get(&format!("{ecds}.update_success")),
        stats.get(&format!("{ecds}.update_rejected"))
    );
    assert_final_split(&envoy, last_v2 as f64 / 100.0, "ecds");
}

#[test]
fn soak_polled_rule_file_changes_and_faults_under_wrk() {
    let seconds = soak_seconds();
    let envoy = or_panic(Envoy::start(
        or_panic(EnvoyConfig::from_example("configmap-poll")),
        &options(),
    ));
    let template = or_panic(std::fs::read_to_string(
        example_dir("configmap-poll").join("rule-file-90-10.json"),
    ));
    assert!(
        template.contains(V1_WEIGHT)
            && template.contains(V2_WEIGHT)
            && template.contains("\"version\": 1,"),
        "the template changed"
    );
    let file = |version: u64, v2: u64| {
        template
            .replace("\"version\": 1,", &format!("\"version\": {version},"))
            .replace(V2_WEIGHT, &format!("{V2_AT}{v2}{GUARD}"))
            .replace(V1_WEIGHT, &format!("{V1_AT}{}", 100 - v2))
    };
    let mut server = or_panic(RuleServer::start(
        or_panic(envoy.addr(8000)),
        "/rules.json",
        file(1, 10).as_bytes(),
    ));
    wait_stats(&envoy, "the first rules", Duration::from_secs(15), |s| {
        s.get("wasmcustom.canary_router.rules_version") == 1
    });
    let load = wrk(or_panic(envoy.addr(10000)), seconds);
    let started = Instant::now();
    let (mut faults, mut changes, mut last) = (0u64, 0u64, (1u64, 10u64));
    let mut step = 0u64;
    let end = Duration::from_secs(seconds.saturating_sub(3));
    while started.elapsed() < end {
        std::thread::sleep(Duration::from_secs(1));
        step += 1;
        // A ten-second cycle: 6 good files, then a broken file, a 500, a hang, a dead server.
        match step % 10 {
            6 => {
                server.set_body(b"{\"services\": [");
                faults += 1;
            }
            7 => {
                server.set_mode(Mode::Status(500));
                faults += 1;
            }
            8 => {
                server.set_mode(Mode::Hang);
                faults += 1;
            }
            9 => {
                server.stop();
                faults += 1;
            }
            _ => {
                if step.is_multiple_of(10) {
                    or_panic(server.restart());
                }
                server.set_mode(Mode::Serve);
                let v2 = v2_weight(step);
                server.set_body(file(step + 1, v2).as_bytes());
                last = (step + 1, v2);
                changes += 1;
            }
        }
    }
    // End on good rules, whatever step the clock stopped at.
    if step % 10 >= 6 {
        if step % 10 == 9 {
            or_panic(server.restart());
        }
        server.set_mode(Mode::Serve);
        let v2 = 30;
        server.set_body(file(1000, v2).as_bytes());
        last = (1000, v2);
        changes += 1;
    }
    let report = or_panic(load.join().map_err(|_| "wrk thread panicked"));
    eprintln!("configmap: {changes} new files and {faults} faults under load");
    assert_clean(&report, &envoy, "configmap");
    assert_guarded(&envoy, "configmap");
    // Backoff after the faults is at most 30 s; the last good file then shows.
    wait_stats(
        &envoy,
        "the last good rules",
        Duration::from_secs(40),
        |s| s.get("wasmcustom.canary_router.rules_version") == last.0,
    );
    let stats = or_panic(envoy.stats());
    assert!(
        stats.get("wasmcustom.canary_router.rules.reload_failure") >= 1,
        "faults were counted"
    );
    assert!(
        stats.get("wasmcustom.canary_router.rules.reload_success") >= 2,
        "changes were taken"
    );
    assert_final_split(&envoy, last.1 as f64 / 100.0, "configmap");
}
