//! A plugin configuration many pieces long, in a real Envoy: the filter
//! reads its configuration from Envoy a piece at a time
//! (`proxy_get_buffer_bytes` with a start and a length, 8 KiB each) and
//! never holds it whole. Delivered by ECDS (`examples/ecds-reload`):
//!
//! - a rule set of about 130 KiB, one rule per line: the first rule,
//!   one in the middle and the last route as their rules say (a piece
//!   stitched in the wrong place would break a name, a value or the JSON);
//! - the same rule set with one byte wrong near its end: Envoy rejects the
//!   update, the filter's log names the path, the message and the line and
//!   column the filter's own parser gives the whole document as one slice
//!   (itself held to serde_json's by `filter/tests/json_parity.rs`), and
//!   the rules before it keep serving.

mod support;

use std::time::Duration;

use canary_router::{Plugin, Workload};
use envoy_runner::{example_dir, Envoy, EnvoyOptions, Request};
use serde_json::{json, Value};
use support::ecds::{ecds_config, install_ecds_bytes, temp_dir};
use support::stats::wait_stats;

const ECDS_STATS: &str = "extension_config_discovery.http_filter.canary-router";
const RULES: usize = 700;
const HOST: &str = "backend.default.svc.cluster.local";

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn subset(i: usize) -> &'static str {
    if i % 2 == 1 {
        "v2"
    } else {
        "v1"
    }
}

/// `RULES` exact-header rules (`x-user: user-<i>` to v1 or v2), then a
/// split, one rule per line and no other whitespace: a byte lost or
/// repeated at a piece boundary breaks the document or a value.
fn rules() -> String {
    let dest =
        |s: &str| json!({ "destination": { "host": HOST, "subset": s, "port": { "number": 80 } } });
    let mut http: Vec<Value> = (0..RULES)
        .map(|i| {
            json!({
                "name": format!("user-{i}"),
                "match": [{ "headers": { "x-user": { "exact": format!("user-{i}") } } }],
                "route": [dest(subset(i))]
            })
        })
        .collect();
    let mut v1 = dest("v1");
    v1["weight"] = json!(90);
    let mut v2 = dest("v2");
    v2["weight"] = json!(10);
    http.push(json!({ "name": "split", "route": [v1, v2] }));
    let http: Vec<String> = http.iter().map(Value::to_string).collect();
    format!(
        r#"{{"routeHeader":"x-canary-upstream","debugHeader":"x-canary-route","namespace":"default","services":[{{"hosts":["{HOST}"],"http":[
{}
]}}]}}"#,
        http.join(",\n")
    )
}

/// The ecds-reload example's resource file with `json` as the filter's configuration.
fn resource(version: &str, json: &str) -> Vec<u8> {
    let template = or_panic(std::fs::read_to_string(
        example_dir("ecds-reload").join("canary-router-90-10.yaml"),
    ));
    let head = template
        .split_inclusive('\n')
        .take_while(|l| !l.trim_end().ends_with("value: |"))
        .collect::<String>()
        .replace(
            "version_info: \"90-10\"",
            &format!("version_info: \"{version}\""),
        );
    let mut out = head + "        value: |\n";
    for line in json.lines() {
        out.push_str("            ");
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Sends `x-user: user-<i>` and checks that rule `user-<i>` routed it, to its version.
fn check(envoy: &Envoy, i: usize) {
    let mut client = or_panic(envoy.client(10000));
    let user = format!("user-{i}");
    let r = or_panic(client.send(&Request::get("/").host("backend").header("x-user", &user)));
    assert_eq!(r.status, 200, "{user}");
    let route = r.header("x-canary-route").unwrap_or_default();
    assert_eq!(route, format!("{HOST}/{user}/{}", subset(i)), "{user}");
    assert_eq!(r.header("x-version").as_deref(), Some(subset(i)), "{user}");
}

#[test]
fn a_configuration_many_pieces_long_routes_and_its_errors_say_where() {
    let json = rules();
    assert!(json.len() > 100 * 1024, "{} bytes", json.len());
    // The rule set the filter is expected to apply, read natively from one slice.
    let plugin = or_panic(Plugin::from_bytes(json.as_bytes(), &Workload::default()));
    assert_eq!(
        plugin.rules.expect("rules").set.services()[0].rules.len(),
        RULES + 1
    );

    let dir = temp_dir("large-config");
    install_ecds_bytes(&dir, &resource("large", &json));
    let envoy = or_panic(Envoy::start(
        ecds_config(&dir),
        &EnvoyOptions::default()
            .concurrency(2)
            .args(["--file-flush-interval-msec", "50"]),
    ));
    let stats = or_panic(envoy.stats());
    assert_eq!(stats.get(&format!("{ECDS_STATS}.update_success")), 1);
    for i in [0, 1, RULES / 2, RULES - 2, RULES - 1] {
        check(&envoy, i);
    }

    // One byte wrong in the last rule, far past the first piece: a quote
    // taken off its value.
    let at = json
        .rfind(&format!("\"exact\":\"user-{}\"", RULES - 1))
        .expect("the last rule's value");
    let mut bad = json.clone();
    bad.replace_range(at + 8..at + 9, " ");
    assert!(at > 64 * 1024);
    let native = Plugin::from_bytes(bad.as_bytes(), &Workload::default())
        .expect_err("refused natively")
        .to_string();
    assert!(
        native.contains(" at line ") && !native.contains(" at line 1 "),
        "{native}"
    );
    let log_mark = std::fs::metadata(envoy.log_path()).map_or(0, |m| m.len());
    install_ecds_bytes(&dir, &resource("broken", &bad));
    let stats = wait_stats(&envoy, "the refused update", Duration::from_secs(20), |s| {
        s.get(&format!("{ECDS_STATS}.update_rejected")) == 1
    });
    assert_eq!(stats.get(&format!("{ECDS_STATS}.update_success")), 1);
    std::thread::sleep(Duration::from_millis(300));
    let log = or_panic(std::fs::read(envoy.log_path()));
    let log = String::from_utf8_lossy(&log[usize::try_from(log_mark).unwrap_or(0)..]);
    let why = format!("configuration rejected: {native}");
    assert!(log.contains(&why), "the filter says {why:?}:\n{log}");
    // The last good rules keep serving.
    for i in [0, RULES - 1] {
        check(&envoy, i);
    }
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}
