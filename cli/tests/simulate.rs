//! `canaryctl simulate`, end to end: the examples' rules through the
//! compiled filter (the release .wasm in the in-process host), shares within
//! 5-sigma binomial bounds of the weights.

mod common;

use common::{canaryctl_env, canaryctl_wasm, repo, TempFile};
use envoy_runner::check_binomial;
use serde_json::Value;

/// `(rule, destination) → count` of a JSON report.
fn counts(report: &Value) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for rule in report["rules"].as_array().expect("rules") {
        for d in rule["destinations"].as_array().expect("destinations") {
            out.push((
                rule["rule"].as_str().unwrap().to_string(),
                d["destination"].as_str().unwrap().to_string(),
                d["count"].as_u64().unwrap(),
            ));
        }
    }
    out
}

fn count(report: &Value, rule: &str, dest: &str) -> u64 {
    counts(report)
        .into_iter()
        .find(|(r, d, _)| r == rule && d == dest)
        .map(|(_, _, c)| c)
        .unwrap_or_else(|| panic!("no {rule}/{dest} in {report:#}"))
}

#[track_caller]
fn within(n: u64, p: f64, k: u64) {
    if let Err(e) = check_binomial(n, p, k) {
        panic!("{e}");
    }
}

#[test]
fn weighted_shares_are_within_binomial_bounds() {
    let n = 20_000u64;
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/weighted/rules.json"),
        "-n",
        &n.to_string(),
        "-o",
        "json",
    ])
    .expect_code(0);
    let r = run.json();
    assert_eq!(r["sent"], n);
    assert_eq!(r["unrouted"], 0);
    let v1 = count(&r, "split", "v1");
    let v2 = count(&r, "split", "v2");
    assert_eq!(v1 + v2, n);
    within(n, 0.1, v2);
    let d = &r["rules"][0]["destinations"][1];
    assert_eq!(
        d["cluster"],
        "outbound|80|v2|backend.default.svc.cluster.local"
    );
    assert!((d["expected"].as_f64().unwrap() - 0.1).abs() < 1e-12);

    // 50/50 and 0/100 too.
    let r = canaryctl_wasm(&[
        "simulate",
        &repo("examples/weighted/rules-50-50.json"),
        "-n",
        "4000",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    within(4000, 0.5, count(&r, "split", "v2"));
    let r = canaryctl_wasm(&[
        "simulate",
        &repo("examples/weighted/rules-100-v2.json"),
        "-n",
        "3000",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(count(&r, "split", "v1"), 0);
    assert_eq!(count(&r, "split", "v2"), 3000);
}

#[test]
fn default_destination_requests_count_as_routed() {
    // v1 is the defaultDestination: the filter writes no header for it, and
    // simulate still counts those requests as v1 (the filter's stats agree).
    let n = 20_000u64;
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/default-destination/rules.json"),
        "-n",
        &n.to_string(),
        "-o",
        "json",
    ])
    .expect_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["unrouted"], 0, "{r:#}");
    let (v1, v2) = (count(&r, "split", "v1"), count(&r, "split", "v2"));
    assert_eq!(v1 + v2, n);
    within(n, 0.1, v2);

    // Sticky keys against the same rules without the field: nobody moves.
    let mut rules: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("examples/sticky/rules.json")).unwrap())
            .unwrap();
    rules["services"][0]["defaultDestination"] = serde_json::json!(
        { "host": "backend.default.svc.cluster.local", "subset": "v1", "port": { "number": 80 } }
    );
    let with = TempFile::new("with-default.json", &rules.to_string());
    let r = canaryctl_wasm(&[
        "simulate",
        &with.path(),
        "--sticky-keys",
        "2000",
        "--against",
        &repo("examples/sticky/rules.json"),
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(r["unrouted"], 0, "{r:#}");
    assert_eq!(r["against"]["moved"], 0, "{r:#}");
    within(2000, 0.5, count(&r, "split", "v1"));
}

#[test]
fn the_text_report_draws_bars_with_counts() {
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/weighted/rules.json"),
        "-n",
        "5000",
        "--seed",
        "42",
    ])
    .expect_code(0);
    let out = &run.stdout;
    assert!(out.contains("5000 requests through "), "{out}");
    assert!(out.contains("seed:    42"), "{out}");
    assert!(
        out.contains("service backend.default.svc.cluster.local  rule split  (5000 requests)"),
        "{out}"
    );
    let v1 = out
        .lines()
        .find(|l| l.trim_start().starts_with("v1 "))
        .expect("a v1 line");
    assert!(v1.contains('█'), "{v1}");
    assert!(v1.contains("weights ask  90.00%"), "{v1}");
    assert!(
        v1.contains("outbound|80|v1|backend.default.svc.cluster.local"),
        "{v1}"
    );
    // Same seed, same counts.
    let again = canaryctl_wasm(&[
        "simulate",
        &repo("examples/weighted/rules.json"),
        "-n",
        "5000",
        "--seed",
        "42",
    ])
    .expect_code(0);
    assert_eq!(run.stdout, again.stdout);
}

#[test]
fn headers_and_labels_choose_the_rule() {
    let file = repo("examples/header-override/rules.json");
    let r = canaryctl_wasm(&[
        "simulate",
        &file,
        "-n",
        "500",
        "-H",
        "canary: canary-tester",
        "--authority",
        "backend",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(count(&r, "testers", "v2"), 500);
    assert_eq!(r["rules"].as_array().unwrap().len(), 1);
    let r = canaryctl_wasm(&[
        "simulate",
        &file,
        "-n",
        "2000",
        "-H",
        "canary: someone-else",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    within(2000, 0.1, count(&r, "split", "v2"));

    let file = repo("examples/source-labels/rules.json");
    let r = canaryctl_wasm(&[
        "simulate",
        &file,
        "-n",
        "500",
        "--labels",
        "app=frontend,version=v2",
        "--namespace",
        "default",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(count(&r, "frontend-v2", "v2"), 500);
    let r = canaryctl_wasm(&[
        "simulate",
        &file,
        "-n",
        "2000",
        "--labels",
        "app=frontend,version=v1",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    within(2000, 0.1, count(&r, "split", "v2"));
    assert!(counts(&r).iter().all(|(rule, _, _)| rule == "split"));

    // A request for no configured service is not routed: Envoy's default route takes it.
    let r = canaryctl_wasm(&[
        "simulate",
        &file,
        "-n",
        "100",
        "--authority",
        "elsewhere",
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(r["unrouted"], 100);
    assert_eq!(r["rules"].as_array().unwrap().len(), 0);
}

const STICKY_90_10: &str = r#"{
  "services": [{
    "hosts": ["backend.default.svc.cluster.local"],
    "http": [{
      "name": "split",
      "route": [
        { "destination": { "host": "backend.default.svc.cluster.local", "subset": "v1", "port": { "number": 80 } }, "weight": 90 },
        { "destination": { "host": "backend.default.svc.cluster.local", "subset": "v2", "port": { "number": 80 } }, "weight": 10 }
      ],
      "sticky": { "header": "x-user-id" }
    }]
  }]
}"#;

#[test]
fn sticky_keys_are_counted_per_destination_and_stay() {
    let keys = 3000u64;
    let r = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules.json"),
        "--sticky-keys",
        &keys.to_string(),
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    assert_eq!(r["unit"], "keys");
    assert_eq!(r["sent"], keys);
    assert_eq!(r["unstable_keys"], 0);
    let v1 = count(&r, "split", "v1");
    let v2 = count(&r, "split", "v2");
    assert_eq!(v1 + v2, keys);
    within(keys, 0.5, v2);
}

#[test]
fn against_counts_the_keys_that_move() {
    let old = TempFile::new("old.json", STICKY_90_10);
    let keys = 3000u64;
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules.json"),
        "--sticky-keys",
        &keys.to_string(),
        "--against",
        &old.path(),
        "-o",
        "json",
    ])
    .expect_code(0);
    let a = &run.json()["against"];
    assert_eq!(a["keys"], keys);
    assert!((a["fewest_possible"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    // Going from 90/10 to 50/50 only moves users onto v2 (the grown
    // destination), and about 40% of them.
    let moves = a["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{a:#}");
    assert_eq!(
        (moves[0]["from"].as_str(), moves[0]["to"].as_str()),
        (Some("v1"), Some("v2"))
    );
    let moved = a["moved"].as_u64().unwrap();
    within(keys, 0.4, moved);
    assert!(a.get("note").is_none(), "{a:#}");

    // Old rules that do not keep the keys sticky: said so.
    let r = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules.json"),
        "--sticky-keys",
        "300",
        "--against",
        &repo("examples/weighted/rules.json"),
        "-o",
        "json",
    ])
    .expect_code(0)
    .json();
    let note = r["against"]["note"].as_str().expect("a note");
    assert!(note.contains("do not keep these keys sticky"), "{note}");

    // The same rules move nobody; the text report says so.
    let same = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules.json"),
        "--sticky-keys",
        "500",
        "--against",
        &repo("examples/sticky/rules.json"),
    ])
    .expect_code(0);
    assert!(
        same.stdout
            .contains("0 of 500 keys moved (0.00%); the change in weights moves at least 0.00%"),
        "{}",
        same.stdout
    );
    assert!(same
        .stdout
        .contains("sticky: every key went to the same destination both times"));
}

#[test]
fn refusals_name_the_reason() {
    // Not sticky.
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/weighted/rules.json"),
        "--sticky-keys",
        "10",
    ])
    .expect_code(1);
    assert!(
        run.stderr
            .contains("rule split (the one the requests match) has no sticky key"),
        "{}",
        run.stderr
    );
    // Rejected rules: the parser's path.
    let bad = TempFile::new(
        "bad.json",
        &STICKY_90_10.replace("\"weight\": 10", "\"weight\": -10"),
    );
    let run = canaryctl_wasm(&["simulate", &bad.path()]).expect_code(1);
    assert!(
        run.stderr
            .contains("services[0].http[0].route[1].weight: weight -10 is negative"),
        "{}",
        run.stderr
    );
    // No module.
    let run = canaryctl_env(
        &["simulate", &repo("examples/weighted/rules.json")],
        None,
        &[("CANARY_ROUTER_WASM", "/no/such/filter.wasm")],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("/no/such/filter.wasm"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_shows_an_example() {
    let run = common::canaryctl(&["simulate", "--help"], None).expect_code(0);
    assert!(run.stdout.contains("Examples:"), "{}", run.stdout);
    assert!(run.stdout.contains("--sticky-keys 1000 --against"));
}

#[test]
fn port_less_destinations_take_the_port_the_requests_arrive_on() {
    let rules = TempFile::new(
        "portless.json",
        r#"{"services": [{"hosts": ["reviews"], "http": [
            {"name": "second-port", "match": [{"port": 9081}], "route": [{"destination": {"host": "reviews", "subset": "v3"}}]},
            {"name": "split", "route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9090}}, "weight": 50}]}]}]}"#,
    );
    let n = 400u64;
    let run = canaryctl_wasm(&[
        "simulate",
        &rules.path(),
        "--port",
        "9080",
        "-n",
        &n.to_string(),
        "-o",
        "json",
    ])
    .expect_code(0);
    let r = run.json();
    assert_eq!(r["unrouted"], 0, "{r:#}");
    let split = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule"] == "split")
        .unwrap_or_else(|| panic!("{r:#}"));
    let d = &split["destinations"];
    assert_eq!(
        d[0]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    assert_eq!(d[0]["request_port"], true);
    assert_eq!(
        d[1]["cluster"],
        "outbound|9090|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(d[1]["request_port"], false);
    assert_eq!(count(&r, "split", "v1") + count(&r, "split", "v2"), n);
    // On the second port the port rule matches and v3 takes that port.
    let run =
        canaryctl_wasm(&["simulate", &rules.path(), "--port", "9081", "-n", "50"]).expect_code(0);
    assert!(
        run.stdout.contains(
            "outbound|9081|v3|reviews.default.svc.cluster.local  (port: the request's, --port)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn browsers_get_the_issued_cookie_stay_and_only_move_onto_the_canary() {
    let n = 2000u64;
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules-cookie.json"),
        "--browsers",
        &n.to_string(),
        "-H",
        "cookie: theme=dark",
        "-o",
        "json",
    ])
    .expect_code(0);
    let r = run.json();
    assert_eq!(r["unit"], "browsers");
    assert_eq!(r["sent"], n);
    assert_eq!(r["unstable_keys"], 0);
    assert_eq!(r["cookies"]["name"], "canary-id");
    assert_eq!(r["cookies"]["issued"], n);
    assert_eq!(r["cookies"]["reissued"], 0);
    assert_eq!(
        r["cookies"]["attributes"],
        "; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"
    );
    let v2 = count(&r, "split", "v2");
    assert_eq!(count(&r, "split", "v1") + v2, n);
    within(n, 0.2, v2);

    // The ramp to 50/50: browsers move from v1 to v2 only, about 30% of them.
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules-cookie-50-50.json"),
        "--browsers",
        &n.to_string(),
        "--against",
        &repo("examples/sticky/rules-cookie.json"),
        "-o",
        "json",
    ])
    .expect_code(0);
    let r = run.json();
    let moves = r["against"]["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(
        (&moves[0]["from"], &moves[0]["to"]),
        (&"v1".into(), &"v2".into())
    );
    within(n, 0.3, moves[0]["keys"].as_u64().unwrap());
    within(n, 0.5, count(&r, "split", "v2"));

    // The text report says what the cookie did.
    let text = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules-cookie.json"),
        "--browsers",
        "50",
    ])
    .expect_code(0)
    .stdout;
    assert!(
        text.contains(
            "cookie: 50 of 50 first visits got Set-Cookie: canary-id=<random key>; Max-Age=604800"
        ),
        "{text}"
    );
    assert!(
        text.contains("sticky: every browser went to the same destination both times"),
        "{text}"
    );

    // A rule that issues no cookie is refused for --browsers, by name.
    let run = canaryctl_wasm(&[
        "simulate",
        &repo("examples/sticky/rules.json"),
        "--browsers",
        "10",
    ])
    .expect_code(1);
    assert!(
        run.stderr
            .contains("rule split (the one the requests match) issues no cookie"),
        "{}",
        run.stderr
    );
}

#[test]
fn at_shows_the_split_of_a_moment_of_the_ramp() {
    let rules = TempFile::new(
        "ramp.json",
        r#"{"services":[{"hosts":["backend"],"http":[{"name":"split",
            "route":[{"destination":{"host":"backend","subset":"v1","port":{"number":80}},"weight":100},
                     {"destination":{"host":"backend","subset":"v2","port":{"number":80}},"weight":0}],
            "ramp":{"canary":"v2","start":"2026-12-07T10:00:00Z","steps":[
              {"setWeight":10},{"pause":{"duration":"10m"}},{"setWeight":50},{"pause":{"duration":"30m"}},{"setWeight":100}]}}]}]}"#,
    );
    let path = rules.0.display().to_string();
    let n = 10_000u64;
    for (at, share, steps) in [
        ("2026-12-07T09:59:59.999Z", 0.0, 0),
        ("2026-12-07T10:00:00Z", 0.1, 1),
        ("2026-12-07T10:15:00Z", 0.5, 3),
        ("2026-12-07T11:00:00Z", 1.0, 5),
    ] {
        let r = canaryctl_wasm(&[
            "simulate",
            &path,
            "-n",
            &n.to_string(),
            "--at",
            at,
            "-o",
            "json",
        ])
        .expect_code(0)
        .json();
        // The compiled filter, on a clock showing `at`, routed by that step.
        within(n, share, count(&r, "split", "v2"));
        let expected = r["rules"][0]["destinations"][1]["expected"]
            .as_f64()
            .unwrap();
        assert!((expected - share).abs() < 1e-9, "{at}: {expected}");
        assert_eq!(r["ramps"][0]["steps_done"], steps, "{at}");
    }
    let text = canaryctl_wasm(&[
        "simulate",
        &path,
        "-n",
        "100",
        "--at",
        "2026-12-07T10:15:00Z",
    ])
    .expect_code(0)
    .stdout;
    assert!(
        text.contains("ramp:    rule split: step 3 of 5, v2 at 50.00%, next step in 25m00s"),
        "{text}"
    );
    let bad = canaryctl_wasm(&["simulate", &path, "--at", "tomorrow"]).expect_code(2);
    assert!(
        bad.stderr.contains("not an RFC 3339 time"),
        "{}",
        bad.stderr
    );
}
