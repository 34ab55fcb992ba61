//! `canaryctl watch`, end to end against a real Envoy running the examples
//! with the built filter: the split it shows is the split the clients got.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::canaryctl;
use envoy_runner::{check_binomial, count_split, Envoy, Request, SplitKey};
use serde_json::Value;

const SERVICE: &str = "backend.default.svc.cluster.local";

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn start(example: &str) -> Envoy {
    or_panic(Envoy::example(example))
}

/// Sends `n` requests for `backend` with `headers`; returns the split by the
/// backend's `x-version` answer.
fn traffic(envoy: &Envoy, n: usize, headers: &[(&str, &str)]) -> (u64, u64) {
    let mut client = or_panic(envoy.client(10000));
    let mut req = Request::get("/").host("backend");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let split = or_panic(count_split(&mut client, n, &req, &SplitKey::version()));
    assert_eq!(split.total(), n as u64, "{split}");
    (split.count("v1"), split.count("v2"))
}

/// The destinations of `rule` in a `watch -o json` view: `name → total`.
fn totals(view: &Value, rule: &str) -> Vec<(String, u64)> {
    let svc = view["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == SERVICE)
        .unwrap_or_else(|| panic!("no {SERVICE} in {view:#}"));
    let rule = svc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no rule {rule} in {view:#}"));
    rule["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap().to_string(),
                d["total"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn once_shows_the_split_the_clients_got() {
    let envoy = start("weighted");
    let n = 2000;
    let (v1, v2) = traffic(&envoy, n, &[]);
    if let Err(e) = check_binomial(n as u64, 0.1, v2) {
        panic!("{e}");
    }
    let admin = format!("http://{}", envoy.admin_addr());

    let run = canaryctl(&["watch", "--admin", &admin, "--once", "-o", "json"], None).expect_code(0);
    let view = run.json();
    assert_eq!(
        totals(&view, "split"),
        [("v1".to_string(), v1), ("v2".to_string(), v2)]
    );
    assert_eq!(view["counters"]["passthrough"], 0);
    assert!(view["counters"]["rules_version"].as_u64().unwrap() > 0);
    let share = view["services"][0]["rules"][0]["destinations"][1]["share"]
        .as_f64()
        .unwrap();
    assert!((share - v2 as f64 / n as f64).abs() < 1e-9);

    // The Prometheus page (with the example's stats_tags) says the same.
    let run = canaryctl(
        &[
            "watch",
            "--admin",
            &admin,
            "--once",
            "--source",
            "prometheus",
            "-o",
            "json",
        ],
        None,
    )
    .expect_code(0);
    assert_eq!(
        totals(&run.json(), "split"),
        [("v1".to_string(), v1), ("v2".to_string(), v2)]
    );

    // And the text view draws it.
    let run = canaryctl(&["watch", "--admin", &admin, "--once"], None).expect_code(0);
    let out = &run.stdout;
    assert!(
        out.contains(&format!("service {SERVICE}  total {n}")),
        "{out}"
    );
    assert!(
        out.contains("rule split  2000 requests, 100.00% of the service"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("v2 "))
        .expect("a v2 line");
    assert!(
        line.contains(&format!("{:6.2}%", 100.0 * v2 as f64 / n as f64)),
        "{line}"
    );
    assert!(line.trim_end().ends_with(&v2.to_string()), "{line}");
    assert!(line.contains('█'), "{line}");
}

#[test]
fn rules_and_destinations_are_shown_separately() {
    let envoy = start("header-override");
    let (_, testers_v2) = traffic(&envoy, 300, &[("canary", "canary-tester")]);
    assert_eq!(testers_v2, 300);
    let (v1, v2) = traffic(&envoy, 700, &[]);
    let admin = format!("http://{}", envoy.admin_addr());
    let view = canaryctl(&["watch", "--admin", &admin, "--once", "-o", "json"], None)
        .expect_code(0)
        .json();
    assert_eq!(totals(&view, "testers"), [("v2".to_string(), 300)]);
    assert_eq!(
        totals(&view, "split"),
        [("v1".to_string(), v1), ("v2".to_string(), v2)]
    );
    let svc = &view["services"][0];
    assert_eq!(svc["total"], 1000);
    let testers = svc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "testers")
        .unwrap();
    assert!((testers["share"].as_f64().unwrap() - 0.3).abs() < 1e-9);
}

#[test]
fn the_live_view_shows_the_last_interval() {
    let envoy = start("weighted");
    traffic(&envoy, 500, &[]);
    let admin = format!("http://{}", envoy.admin_addr());
    // Two frames 4 s apart: the first has the totals, the second also what
    // happened in between (the 200 requests sent after the first frame).
    let mut child = Command::new(env!("CARGO_BIN_EXE_canaryctl"))
        .args([
            "watch",
            "--admin",
            &admin,
            "--count",
            "2",
            "--interval",
            "4s",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(first.get("interval_seconds").is_none(), "{first:#}");
    assert_eq!(first["services"][0]["total"], 500);
    let (v1, v2) = traffic(&envoy, 200, &[]);
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let secs = second["interval_seconds"].as_f64().unwrap();
    assert!((3.0..6.0).contains(&secs), "{secs}");
    let svc = &second["services"][0];
    assert_eq!(svc["total"], 700);
    assert_eq!(svc["interval"], 200, "{second:#}");
    let dests = svc["rules"][0]["destinations"].as_array().unwrap();
    assert_eq!(dests[0]["interval"], v1);
    assert_eq!(dests[1]["interval"], v2);
    let share = dests[1]["interval_share"].as_f64().unwrap();
    assert!((share - v2 as f64 / 200.0).abs() < 1e-9);
}

#[test]
fn an_unreachable_admin_is_a_clear_error() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("http://127.0.0.1:{port}");
    let run = canaryctl(
        &["watch", "--admin", &admin, "--once", "--timeout", "500ms"],
        None,
    )
    .expect_code(2);
    assert!(run.stderr.contains(&admin), "{}", run.stderr);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    let run =
        canaryctl(&["watch", "--admin", "https://127.0.0.1:1", "--once"], None).expect_code(2);
    assert!(run.stderr.contains("only plain http://"), "{}", run.stderr);
}

#[test]
fn help_shows_an_example() {
    let run = canaryctl(&["watch", "--help"], None).expect_code(0);
    assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
    assert!(run.stdout.contains("--once"));
}

#[test]
fn once_shows_the_ramp_step_and_each_guard_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A ramp that started a second ago: 20% for an hour, then 100%.
    let start = canary_router::domain::ramp::format_time((now - 1) * 1000);
    let rules = serde_json::json!({
        "services": [{"hosts": ["backend.default.svc.cluster.local"], "http": [{
            "name": "split",
            "route": [
                {"destination": {"host": "backend.default.svc.cluster.local", "subset": "v1", "port": {"number": 80}}, "weight": 90},
                {"destination": {"host": "backend.default.svc.cluster.local", "subset": "v2", "port": {"number": 80}}, "weight": 10,
                 "guard": {"baseline": "v1", "maxErrorRate": 0.05, "minRequests": 50, "interval": "30s"}}
            ],
            "ramp": {"canary": "v2", "start": start, "steps": [{"setWeight": 20}, {"pause": {"duration": "1h"}}, {"setWeight": 100}]}
        }]}]
    })
    .to_string();
    let mut cfg = or_panic(envoy_runner::EnvoyConfig::from_example("weighted"));
    or_panic(cfg.set_wasm_configuration(&rules));
    let envoy = or_panic(Envoy::start(cfg, &envoy_runner::EnvoyOptions::default()));
    let (v1, v2) = traffic(&envoy, 1000, &[]);
    if let Err(e) = check_binomial(1000, 0.2, v2) {
        panic!("{e}");
    }
    // The guards' windows show at the next tick (every 3 s bucket, at most 1 s).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let admin = format!("http://{}", envoy.admin_addr());
    let text = canaryctl(&["watch", "--admin", &admin, "--once"], None)
        .expect_code(0)
        .stdout;
    assert!(text.contains("ramp at step 1, next step in 59m"), "{text}");
    assert!(
        text.contains("weight 80.00%") && text.contains("weight 20.00%"),
        "{text}"
    );
    // The baseline's answers are sampled, one in 4 at 80/20 (each worker
    // counts its first, so up to one more per worker); v2's all counted.
    assert!(
        (v1 / 4..=v1 / 4 + 2).any(|n| text.contains(&format!("window 0/{n} errors (0.00%)")))
            && text.contains(&format!("window 0/{v2} errors (0.00%)")),
        "{text}"
    );
    let view = canaryctl(&["watch", "--admin", &admin, "--once", "-o", "json"], None)
        .expect_code(0)
        .json();
    let rule = &view["services"][0]["rules"][0];
    assert_eq!(rule["ramp"]["step"], 1);
    assert_eq!(rule["destinations"][1]["weight_bp"], 2000);
    assert_eq!(rule["destinations"][1]["window"]["requests"], v2);
}
