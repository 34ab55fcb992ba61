//! End to end, in a real Envoy (`--concurrency 2`) under steady traffic:
//! changing the rules while requests flow, with no failed request.
//!
//! - `examples/ecds-reload`: the filter's configuration delivered by ECDS from
//!   a watched file. A new file changes the split; a rule set the filter
//!   refuses is rejected by Envoy and the previous one keeps serving.
//! - `examples/configmap-poll`: the filter polls a rule file from a small
//!   HTTP server (`support/rule_server.rs`). A new file shows within one poll
//!   interval; a broken file, an error status, a hanging server, a server
//!   that closes connections and a dead server all leave the last good rules
//!   serving, are counted, and are logged once each.

mod support;

use std::time::{Duration, Instant};

use envoy_runner::{check_binomial, example_dir, Envoy, EnvoyConfig, EnvoyOptions, Request, Stats};
use support::ecds::{ecds_config, install_ecds, temp_dir};
use support::load::{count, failures, Load, Sample};
use support::rule_server::{Mode, RuleServer};
use support::stats::wait_stats;

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Two workers, and Envoy's log flushed every 50 ms (not every 10 s) so
/// that the tests can read what it says about each step.
fn options() -> EnvoyOptions {
    EnvoyOptions::default()
        .concurrency(2)
        .args(["--file-flush-interval-msec", "50"])
}

fn backend() -> Request {
    Request::get("/").host("backend")
}

/// Lines of Envoy's log written since byte `from` (after waiting for a
/// flush of what was logged until now).
fn log_since(envoy: &Envoy, from: u64) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read(envoy.log_path()).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    String::from_utf8_lossy(&text[start..])
        .lines()
        .map(str::to_string)
        .collect()
}

fn log_len(envoy: &Envoy) -> u64 {
    std::fs::metadata(envoy.log_path()).map_or(0, |m| m.len())
}

fn assert_no_failures(samples: &[Sample], what: &str) {
    let failed = failures(samples);
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, first: {:?}",
        failed.len(),
        samples.len(),
        failed.first()
    );
}

/// Checks that `samples` split between v1 and v2 with v2 share `p`.
fn assert_split(samples: &[Sample], p: f64, what: &str) {
    let v1 = count(samples, "v1") as u64;
    let v2 = count(samples, "v2") as u64;
    assert!(v1 + v2 >= 1000, "{what}: only {} answers", v1 + v2);
    let check = check_binomial(v1 + v2, p, v2).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: {check}");
}

// ---------------------------------------------------------------------------
// ECDS

const ECDS_STATS: &str = "extension_config_discovery.http_filter.canary-router";

#[test]
fn ecds_update_changes_the_split_under_load_and_a_refused_update_keeps_the_old_rules() {
    let dir = temp_dir("ecds");
    install_ecds(&dir, "canary-router-90-10.yaml");
    let envoy = or_panic(Envoy::start(ecds_config(&dir), &options()));
    let stats = or_panic(envoy.stats());
    assert_eq!(stats.get(&format!("{ECDS_STATS}.update_success")), 1);
    assert_eq!(
        stats
            .other
            .get(&format!("{ECDS_STATS}.version_text"))
            .map(String::as_str),
        Some("\"90-10\"")
    );

    let load = Load::start(
        or_panic(envoy.addr(10000)),
        2,
        &backend(),
        Duration::from_millis(1),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_split(&load.all(), 0.1, "90-10 from the first ECDS file");

    // A new rule set: applied by every worker, with no failed request.
    install_ecds(&dir, "canary-router-50-50.yaml");
    wait_stats(&envoy, "the 50-50 update", Duration::from_secs(10), |s| {
        s.get(&format!("{ECDS_STATS}.update_success")) == 2
    });
    std::thread::sleep(Duration::from_millis(300)); // the workers get it just after
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    assert_split(&load.since(t), 0.5, "50-50 after the update");

    // A rule set the filter refuses: Envoy rejects the update and keeps 50-50.
    let log_mark = log_len(&envoy);
    let refused_at = Instant::now();
    install_ecds(&dir, "canary-router-invalid.yaml");
    let stats = wait_stats(&envoy, "the refused update", Duration::from_secs(10), |s| {
        s.get(&format!("{ECDS_STATS}.update_rejected")) == 1
    });
    assert_eq!(stats.get(&format!("{ECDS_STATS}.update_success")), 2);
    assert_eq!(
        stats
            .other
            .get(&format!("{ECDS_STATS}.version_text"))
            .map(String::as_str),
        Some("\"50-50\""),
        "the version in use is still the last good one"
    );
    assert!(stats.get("wasmcustom.canary_router.config_rejected") >= 1);
    std::thread::sleep(Duration::from_millis(2500));
    assert_split(
        &load.since(refused_at),
        0.5,
        "50-50 after the refused update",
    );
    let log = log_since(&envoy, log_mark);
    let why = "configuration rejected: services[0].http[0].route[1].weight: weight -50 is negative";
    assert!(
        log.iter().any(|l| l.contains(why)),
        "the filter says why:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("config update rejected")),
        "Envoy says it rejected the update:\n{}",
        log.join("\n")
    );

    // And a good one after it is applied.
    install_ecds(&dir, "canary-router-0-100.yaml");
    wait_stats(&envoy, "the 0-100 update", Duration::from_secs(10), |s| {
        s.get(&format!("{ECDS_STATS}.update_success")) == 3
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let after = load.since(t);
    assert!(after.len() > 200);
    assert_eq!(count(&after, "v2"), after.len(), "0-100: everything on v2");

    let all = load.stop();
    assert_no_failures(&all, "ECDS updates under load");
    eprintln!("{} requests, none failed", all.len());
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ecds_refused_first_configuration_falls_back_to_the_default_and_traffic_flows() {
    let dir = temp_dir("ecds-first");
    install_ecds(&dir, "canary-router-invalid.yaml");
    let envoy = or_panic(Envoy::start(ecds_config(&dir), &options()));
    let stats = or_panic(envoy.stats());
    assert_eq!(stats.get(&format!("{ECDS_STATS}.update_rejected")), 1);
    assert_eq!(stats.get(&format!("{ECDS_STATS}.update_success")), 0);
    // The default_config (no rules) serves: Envoy's own route, v1, no failure.
    let mut client = or_panic(envoy.client(10000));
    for _ in 0..50 {
        let r = or_panic(client.send(&backend()));
        assert_eq!(
            (r.status, r.header("x-version").as_deref()),
            (200, Some("v1"))
        );
        assert_eq!(r.header("x-canary-route"), None);
    }
    assert!(or_panic(envoy.stats()).get("wasmcustom.canary_router.passthrough") >= 50);
    // The first good file takes over.
    install_ecds(&dir, "canary-router-0-100.yaml");
    wait_stats(&envoy, "the 0-100 update", Duration::from_secs(10), |s| {
        s.get(&format!("{ECDS_STATS}.update_success")) == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut client = or_panic(envoy.client(10000));
    for _ in 0..50 {
        let r = or_panic(client.send(&backend()));
        assert_eq!(
            (r.status, r.header("x-version").as_deref()),
            (200, Some("v2"))
        );
    }
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// ConfigMap polling

const INTERVAL: Duration = Duration::from_millis(1000);
const TICK: Duration = Duration::from_millis(200);
const M: &str = "wasmcustom.canary_router";

fn rule_file(name: &str) -> Vec<u8> {
    or_panic(std::fs::read(example_dir("configmap-poll").join(name)))
}

/// Lines of the filter's rule-source warnings in `lines`.
fn source_lines<'a>(lines: &'a [String], needle: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.contains("rule source rule_server/rules.json") && l.contains(needle))
        .collect()
}

struct Poll {
    envoy: Envoy,
    server: RuleServer,
    load: Load,
}

impl Poll {
    fn stats(&self) -> Stats {
        or_panic(self.envoy.stats())
    }

    /// Breaks the source with `brk`, waits for two failed polls, checks that
    /// every answer meanwhile came from v2 (the last good rules) and that the
    /// failure was logged once, naming `why`; then repairs the source with
    /// `fix` and waits for the recovery, logged once.
    fn outage(
        &mut self,
        what: &str,
        why: &str,
        brk: impl FnOnce(&mut RuleServer),
        fix: impl FnOnce(&mut RuleServer),
    ) {
        let mark = log_len(&self.envoy);
        let failed_before = self.stats().get(&format!("{M}.rules.reload_failure"));
        let since = Instant::now();
        brk(&mut self.server);
        wait_stats(
            &self.envoy,
            &format!("two failed polls ({what})"),
            Duration::from_secs(10),
            |s| s.get(&format!("{M}.rules.reload_failure")) >= failed_before + 2,
        );
        let fixed = self.stats();
        fix(&mut self.server);
        wait_stats(
            &self.envoy,
            &format!("the recovery ({what})"),
            Duration::from_secs(10),
            |s| {
                s.get(&format!("{M}.rules.fetch_not_modified"))
                    > fixed.get(&format!("{M}.rules.fetch_not_modified"))
                    || s.get(&format!("{M}.rules.reload_success"))
                        > fixed.get(&format!("{M}.rules.reload_success"))
            },
        );
        let samples = self.load.since(since);
        assert_no_failures(&samples, what);
        assert!(samples.len() > 500, "{what}: {} answers", samples.len());
        assert_eq!(
            count(&samples, "v2"),
            samples.len(),
            "{what}: the last good rules (0-100) serve"
        );
        let log = log_since(&self.envoy, mark);
        let lines = source_lines(&log, why);
        assert_eq!(
            lines.len(),
            1,
            "{what}: logged once, naming {why:?}:\n{}",
            log.join("\n")
        );
        assert!(
            lines[0].contains("keeping the last good rules"),
            "{}",
            lines[0]
        );
        assert_eq!(
            source_lines(&log, "").len(),
            2,
            "{what}: one failure line and one recovery line:\n{}",
            log.join("\n")
        );
        assert_eq!(source_lines(&log, "recovered").len(), 1, "{what}");
        eprintln!(
            "{what}: {}",
            lines[0].rsplit("canary-router: ").next().unwrap_or("")
        );
    }
}

#[test]
fn configmap_poll_follows_the_file_and_survives_broken_files_errors_hangs_and_a_dead_server() {
    let envoy = or_panic(Envoy::start(
        or_panic(EnvoyConfig::from_example("configmap-poll")),
        &options(),
    ));
    // The rule server listens where the example's `rule_server` cluster points
    // (port 8000 in envoy.yaml, a free port in this run). It starts after
    // Envoy, like a config server that is late: the first polls fail.
    let server = or_panic(RuleServer::start(
        or_panic(envoy.addr(8000)),
        "/rules.json",
        &rule_file("rule-file-90-10.json"),
    ));
    wait_stats(
        &envoy,
        "the first rules (version 1)",
        Duration::from_secs(15),
        |s| s.get(&format!("{M}.rules_version")) == 1,
    );
    let load = Load::start(
        or_panic(envoy.addr(10000)),
        2,
        &backend(),
        Duration::from_millis(1),
    );
    let mut p = Poll {
        envoy,
        server,
        load,
    };

    // 90/10, and one fetch per interval for the whole Envoy (3 VMs: the main
    // thread's and two workers'), each sending the ETag back and getting a 304.
    let hits_before = p.server.hits().len();
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(3000));
    assert_split(&p.load.since(t), 0.1, "90-10 from the rule server");
    let hits = p.server.hits();
    let steady = &hits[hits_before..];
    assert!(
        (2..=4).contains(&steady.len()),
        "{} fetches in 3 s with a 1 s interval: {steady:?}",
        steady.len()
    );
    for hit in steady {
        assert_eq!(hit.status, 304, "{hit:?}");
        assert_eq!(hit.host.as_deref(), Some("canary-rules.local"));
    }

    // A new file: everything on v2 within one poll interval (plus the tick
    // that notices it is due, the tick on which the other workers adopt it,
    // and slack for a busy machine).
    let changed = Instant::now();
    p.server.set_body(&rule_file("rule-file-0-100.json"));
    let switched = p
        .load
        .wait_all(
            changed,
            "v2",
            Duration::from_millis(500),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("never all v2\n{}", p.envoy.failure_report()));
    let took = switched.duration_since(changed);
    eprintln!("new rules everywhere {took:?} after the file changed (poll interval {INTERVAL:?})");
    assert!(
        took <= INTERVAL + 2 * TICK + Duration::from_millis(1000),
        "the new split took {took:?}"
    );
    let stats = p.stats();
    assert_eq!(stats.get(&format!("{M}.rules_version")), 3);
    assert_eq!(stats.get(&format!("{M}.rules.reload_success")), 2);
    let after = p.load.since(switched);
    assert_eq!(count(&after, "v2"), after.len());

    // Outages: each keeps 0-100 serving, is counted, and logged once.
    let good = rule_file("rule-file-0-100.json");
    let g = good.clone();
    p.outage(
        "a broken file",
        "rule file rejected: services: EOF while parsing a list",
        |s| s.set_body(b"{\"services\": [\n"),
        move |s| s.set_body(&g),
    );
    p.outage(
        "HTTP 500",
        "rule server answered HTTP 500: error 500",
        |s| s.set_mode(Mode::Status(500)),
        |s| s.set_mode(Mode::Serve),
    );
    p.outage(
        "a server that hangs",
        "rule server answered HTTP 504: upstream request timeout",
        |s| s.set_mode(Mode::Hang),
        |s| s.set_mode(Mode::Serve),
    );
    p.outage(
        "a server that closes connections",
        "rule server answered HTTP 503: upstream connect error or disconnect/reset before headers",
        |s| s.set_mode(Mode::Close),
        |s| s.set_mode(Mode::Serve),
    );
    p.outage(
        "a dead server",
        "rule server answered HTTP 503: upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
        |s| s.stop(),
        |s| or_panic(s.restart()),
    );
    assert_eq!(p.stats().get(&format!("{M}.rules_version")), 3);

    // Back to a new file after all that: 50/50.
    let changed = Instant::now();
    p.server.set_body(&rule_file("rule-file-50-50.json"));
    wait_stats(&p.envoy, "version 2", Duration::from_secs(10), |s| {
        s.get(&format!("{M}.rules_version")) == 2
    });
    std::thread::sleep(2 * TICK);
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    assert_split(&p.load.since(t), 0.5, "50-50 at the end");
    eprintln!(
        "50-50 applied {:?} after the change",
        t.duration_since(changed)
    );

    let stats = p.stats();
    assert_eq!(stats.get(&format!("{M}.rules.reload_success")), 3);
    assert!(stats.get(&format!("{M}.rules.reload_failure")) >= 10);
    assert!(stats.get(&format!("{M}.rules.fetch_not_modified")) >= 5);
    assert_eq!(stats.get(&format!("{M}.config_rejected")), 0);
    let Poll {
        envoy,
        server,
        load,
    } = p;
    let all = load.stop();
    assert_no_failures(&all, "the whole run");
    eprintln!(
        "{} requests, none failed; {} fetches",
        all.len(),
        server.hits().len()
    );
    drop(envoy);
}
