//! What Envoy does when the filter cannot start or dies, with each
//! `failure_policy` of the wasm filter's `PluginConfig`, observed in the real
//! binary and asserted:
//! - at startup, a corrupt `.wasm`, a truncated one, or a good module whose
//!   `on_configure` rejects its rules;
//! - on a listener update (LDS) bringing bad rules or a corrupt module;
//! - a VM that dies at runtime (the harness's probe module, asked to panic:
//!   the filter itself has no panic path to trigger).
//!
//! Each test writes what it saw to `target/reliability/fail_policy_*.tsv`
//! for docs/reliability.md (through `scripts/reliability-report.sh`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envoy_runner::{repo_root, Envoy, EnvoyConfig, EnvoyOptions, Request, WASM_FILTER_TYPE};
use serde_json::{json, Value};

/// What a start of Envoy came to.
#[derive(Debug)]
enum Seen {
    /// Envoy did not become ready; the log line that says why.
    Refused(String),
    /// Envoy served: statuses of the requests, and the backend versions reached.
    Served {
        statuses: BTreeMap<u16, u64>,
        versions: BTreeMap<String, u64>,
        log: String,
    },
}

/// Sets `failure_policy` in every wasm filter's plugin config.
fn set_policy(v: &mut Value, policy: &str) {
    match v {
        Value::Object(map) => {
            if map.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE) {
                if let Some(Value::Object(config)) = map.get_mut("config") {
                    config.insert("failure_policy".into(), json!(policy));
                }
            }
            for child in map.values_mut() {
                set_policy(child, policy);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| set_policy(i, policy)),
        _ => {}
    }
}

fn observe(policy: &str, wasm: &Path, rules: Option<&str>) -> Seen {
    // The weighted example: 90/10 to v1/v2 with the filter, all to v1 without it.
    let mut config = EnvoyConfig::from_example("weighted").expect("the example");
    if let Some(rules) = rules {
        config.set_wasm_configuration(rules).expect("rules");
    }
    set_policy(config.value_mut(), policy);
    let opts = EnvoyOptions {
        ready_timeout: Duration::from_secs(20),
        ..EnvoyOptions::default()
    }
    .wasm(wasm);
    let envoy = match Envoy::start(config, &opts) {
        Ok(e) => e,
        Err(e) => {
            let msg = e.to_string();
            return Seen::Refused(why_refused(&msg));
        }
    };
    let mut client = envoy.client(10000).expect("client");
    let mut statuses = BTreeMap::new();
    let mut versions = BTreeMap::new();
    for _ in 0..200 {
        let r = client
            .send(&Request::get("/").host("backend"))
            .expect("a response");
        *statuses.entry(r.status).or_default() += 1;
        let v = r.header("x-version").unwrap_or_else(|| "none".into());
        *versions.entry(v).or_default() += 1;
    }
    let log = std::fs::read_to_string(envoy.log_path()).unwrap_or_default();
    Seen::Served {
        statuses,
        versions,
        log,
    }
}

/// The reason Envoy gives in its log, without the timestamp.
fn why_refused(log: &str) -> String {
    log.lines()
        .rev()
        .filter(|l| l.contains("Wasm") || l.contains("wasm"))
        .filter(|l| l.contains("critical") || l.contains("error"))
        .filter_map(|l| l.rsplit("] ").next())
        .map(|l| l.split(" initializing config").next().unwrap_or(l).trim())
        .next()
        .unwrap_or("Envoy did not become ready")
        .to_string()
}

fn scratch() -> PathBuf {
    let dir = repo_root().join("target/reliability/fail-policy");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn record(name: &str, rows: &[(String, String, String)]) {
    let mut tsv = String::from("case\tpolicy\tobserved\n");
    for (m, p, o) in rows {
        tsv.push_str(&format!("{m}\t{p}\t{o}\n"));
    }
    let dir = repo_root().join("target/reliability");
    std::fs::create_dir_all(&dir).expect("target/reliability");
    let path = dir.join(format!("fail_policy_{name}.tsv"));
    std::fs::write(path, tsv).expect("fail_policy tsv");
}

fn summary(seen: &Seen) -> String {
    match seen {
        Seen::Refused(why) => format!("Envoy refuses the config and exits: {why}"),
        Seen::Served {
            statuses, versions, ..
        } => format!("serves: statuses {statuses:?}, backends {versions:?}"),
    }
}

fn broken_modules() -> (PathBuf, PathBuf) {
    let bytes = std::fs::read(test_tools::filter_wasm()).expect("the filter");
    let dir = scratch();
    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x01\0\0\0 this is not a module").expect("write");
    let truncated = dir.join("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    (corrupt, truncated)
}

const BAD_RULES: &str = r#"{"services": [{"hosts": ["backend"], "http": [{"route": []}]}]}"#;

#[test]
fn at_startup_envoy_refuses_a_module_that_cannot_start_whatever_the_policy() {
    let good = test_tools::filter_wasm();
    let (corrupt, truncated) = broken_modules();
    let mut rows = Vec::new();
    let cases: [(&str, &Path, Option<&str>); 3] = [
        ("startup: corrupt .wasm", &corrupt, None),
        ("startup: truncated .wasm", &truncated, None),
        (
            "startup: on_configure rejects the rules",
            good,
            Some(BAD_RULES),
        ),
    ];
    for (what, wasm, rules) in cases {
        for policy in ["FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"] {
            let seen = observe(policy, wasm, rules);
            eprintln!("{what} / {policy}: {}", summary(&seen));
            match &seen {
                Seen::Refused(why) => assert!(
                    why.contains("Unable to create Wasm plugin canary-router"),
                    "{what} / {policy}: {why}"
                ),
                Seen::Served { .. } => panic!("{what} / {policy}: {}", summary(&seen)),
            }
            rows.push((what.to_string(), policy.to_string(), summary(&seen)));
        }
    }
    // The good module with good rules, for contrast: the filter routes.
    let seen = observe("FAIL_CLOSED", good, None);
    match &seen {
        Seen::Served { versions, log, .. } => {
            assert!(versions.get("v2").copied().unwrap_or(0) > 0, "{versions:?}");
            assert!(!log.contains("panic"));
        }
        Seen::Refused(why) => panic!("the good module was refused: {why}"),
    }
    rows.push((
        "startup: good module, good rules".into(),
        "FAIL_CLOSED".into(),
        summary(&seen),
    ));
    record("startup", &rows);
}

/// Rewrites the LDS file of a reloadable Envoy with `edit`, and waits until
/// Envoy accepted or rejected it. Returns whether it was rejected.
fn push_lds(envoy: &Envoy, edit: impl Fn(&mut Value)) -> bool {
    let before = envoy.stats().expect("stats");
    let path = envoy.dir().join("lds/lds.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("lds.json")).expect("json");
    edit(&mut doc);
    let version = doc["version_info"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    doc["version_info"] = json!((version + 100).to_string());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).expect("write lds");
    std::fs::rename(&tmp, &path).expect("rename lds");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = envoy.stats().expect("stats");
        let rejected = "listener_manager.lds.update_rejected";
        let success = "listener_manager.lds.update_success";
        if now.get(rejected) > before.get(rejected) {
            return true;
        }
        if now.get(success) > before.get(success)
            && now.get("listener_manager.total_listeners_warming") == 0
        {
            return false;
        }
    }
    panic!(
        "Envoy neither applied nor rejected the update:\n{}",
        envoy.log_tail(20)
    );
}

fn set_filenames(v: &mut Value, path: &Path) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(f)) = map.get_mut("filename") {
                *f = path.display().to_string();
            }
            map.values_mut().for_each(|c| set_filenames(c, path));
        }
        Value::Array(items) => items.iter_mut().for_each(|i| set_filenames(i, path)),
        _ => {}
    }
}

fn split_of(envoy: &Envoy, n: u64) -> (BTreeMap<u16, u64>, BTreeMap<String, u64>) {
    let mut client = envoy.client(10000).expect("client");
    let (mut statuses, mut versions) = (BTreeMap::new(), BTreeMap::new());
    for _ in 0..n {
        let r = client
            .send(&Request::get("/").host("backend"))
            .expect("a response");
        *statuses.entry(r.status).or_default() += 1;
        *versions
            .entry(r.header("x-version").unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    (statuses, versions)
}

#[test]
fn on_an_update_envoy_rejects_it_and_the_last_good_filter_keeps_serving() {
    let (corrupt, _) = broken_modules();
    let mut rows = Vec::new();
    for policy in ["FAIL_CLOSED", "FAIL_OPEN"] {
        let mut config = EnvoyConfig::from_example("weighted").expect("the example");
        set_policy(config.value_mut(), policy);
        let mut envoy =
            Envoy::start(config, &EnvoyOptions::default().reloadable()).expect("Envoy starts");
        for (what, bad) in [
            ("update: bad rules", true),
            ("update: corrupt .wasm", false),
        ] {
            let rejected = if bad {
                match envoy.reload_rules(BAD_RULES) {
                    Err(e) => e.to_string().contains("rejected"),
                    Ok(()) => false,
                }
            } else {
                push_lds(&envoy, |doc| set_filenames(doc, &corrupt))
            };
            assert!(rejected, "{what} / {policy}: the update was applied");
            let (statuses, versions) = split_of(&envoy, 400);
            assert_eq!(
                statuses.get(&200),
                Some(&400),
                "{what} / {policy}: {statuses:?}"
            );
            assert!(
                versions.get("v2").copied().unwrap_or(0) > 0,
                "{what} / {policy}: the old filter still splits 90/10: {versions:?}"
            );
            rows.push((
                what.to_string(),
                policy.to_string(),
                format!(
                    "update rejected (listener_manager.lds.update_rejected); the last good filter keeps serving: statuses {statuses:?}, backends {versions:?}"
                ),
            ));
        }
    }
    record("update", &rows);
}

#[test]
fn when_the_vm_dies_at_runtime_the_policy_decides() {
    let probe = test_tools::probe_wasm();
    let mut rows = Vec::new();
    for policy in ["FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"] {
        let mut config = EnvoyConfig::from_example("weighted").expect("the example");
        config.set_wasm_configuration("").expect("config");
        set_policy(config.value_mut(), policy);
        let envoy = Envoy::start(config, &EnvoyOptions::default().concurrency(1).wasm(probe))
            .expect("Envoy starts");
        let mut client = envoy.client(10000).expect("client");
        let dying = client
            .send(&Request::get("/").host("backend").header("x-probe", "panic"))
            .expect("a response");
        assert_eq!(
            dying.status, 503,
            "{policy}: the request that crashed the VM"
        );
        let (statuses, versions) = split_of(&envoy, 50);
        let mut seen = format!(
            "the request that crashed the VM: {}; the next 50: statuses {statuses:?}, backends {versions:?}",
            dying.status
        );
        match policy {
            "FAIL_CLOSED" => assert_eq!(statuses.get(&503), Some(&50), "{statuses:?}"),
            "FAIL_OPEN" => assert_eq!(versions.get("v1"), Some(&50), "{versions:?}"),
            _ => {
                // FAIL_RELOAD: a new VM after a backoff (1 s by default).
                let start = Instant::now();
                let mut back = None;
                while start.elapsed() < Duration::from_secs(15) {
                    let (st, _) = split_of(&envoy, 1);
                    if st.contains_key(&200) {
                        back = Some(start.elapsed());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let back = back.expect("FAIL_RELOAD brings a new VM within 15 s");
                let (st, _) = split_of(&envoy, 50);
                assert_eq!(st.get(&200), Some(&50), "{st:?}");
                seen.push_str(&format!(
                    "; serving again (200) {:.1} s later, with a new VM",
                    back.as_secs_f64()
                ));
            }
        }
        eprintln!("runtime panic / {policy}: {seen}");
        rows.push((
            "runtime: the VM panics".to_string(),
            policy.to_string(),
            seen,
        ));
    }
    record("runtime", &rows);
}

/// Adds an early header mutation removing `header` to every HTTP connection
/// manager that runs the wasm filter: it runs before the route is chosen and
/// before any filter, so a client's copy never reaches the route table.
fn guard_route_header(v: &mut Value, header: &str) {
    match v {
        Value::Object(map) => {
            let runs_wasm = map
                .get("http_filters")
                .and_then(Value::as_array)
                .is_some_and(|filters| {
                    filters.iter().any(|f| {
                        f.pointer("/typed_config/@type").and_then(Value::as_str)
                            == Some(WASM_FILTER_TYPE)
                    })
                });
            if runs_wasm {
                map.insert(
                    "early_header_mutation_extensions".into(),
                    json!([{
                        "name": "envoy.http.early_header_mutation.header_mutation",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                            "mutations": [{"remove": header}]
                        }
                    }]),
                );
            }
            map.values_mut().for_each(|c| guard_route_header(c, header));
        }
        Value::Array(items) => items.iter_mut().for_each(|i| guard_route_header(i, header)),
        _ => {}
    }
}

/// With FAIL_OPEN and a dead VM nothing removes a client's copy of the route
/// header, and the route that trusts it follows it; an early header mutation
/// of the HTTP connection manager (before routing and filters) closes that
/// hole.
#[test]
fn fail_open_needs_the_route_header_removed_in_front_of_the_filter() {
    const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
    let probe = test_tools::probe_wasm();
    let mut rows = Vec::new();
    for guarded in [false, true] {
        let mut config = EnvoyConfig::from_example("weighted").expect("the example");
        config.set_wasm_configuration("").expect("config");
        set_policy(config.value_mut(), "FAIL_OPEN");
        if guarded {
            guard_route_header(config.value_mut(), "x-canary-upstream");
        }
        let envoy = Envoy::start(config, &EnvoyOptions::default().concurrency(1).wasm(probe))
            .expect("Envoy starts");
        let mut client = envoy.client(10000).expect("client");
        let dying = client
            .send(&Request::get("/").host("backend").header("x-probe", "panic"))
            .expect("a response");
        assert_eq!(dying.status, 503);
        let mut versions: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..50 {
            let r = client
                .send(
                    &Request::get("/")
                        .host("backend")
                        .header("x-canary-upstream", V2),
                )
                .expect("a response");
            assert_eq!(r.status, 200);
            *versions
                .entry(r.header("x-version").unwrap_or_default())
                .or_default() += 1;
        }
        let what = if guarded {
            "FAIL_OPEN, VM dead, an early header mutation removes x-canary-upstream"
        } else {
            "FAIL_OPEN, VM dead, no guard"
        };
        eprintln!("{what}: spoofed requests reached {versions:?}");
        if guarded {
            assert_eq!(
                versions.get("v1"),
                Some(&50),
                "the default route: {versions:?}"
            );
        } else {
            assert_eq!(
                versions.get("v2"),
                Some(&50),
                "the spoof is followed: {versions:?}"
            );
        }
        rows.push((
            what.to_string(),
            "FAIL_OPEN".to_string(),
            format!("50 requests with a spoofed x-canary-upstream reached {versions:?}"),
        ));
    }
    // The guard does not get in the filter's way while it runs: the split
    // is the rules' (90/10), spoofed header or not.
    let mut config = EnvoyConfig::from_example("weighted").expect("the example");
    set_policy(config.value_mut(), "FAIL_OPEN");
    guard_route_header(config.value_mut(), "x-canary-upstream");
    let envoy = Envoy::start(config, &EnvoyOptions::default()).expect("Envoy starts");
    let mut client = envoy.client(10000).expect("client");
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..400 {
        let r = client
            .send(
                &Request::get("/")
                    .host("backend")
                    .header("x-canary-upstream", V2),
            )
            .expect("a response");
        *versions
            .entry(r.header("x-version").unwrap_or_default())
            .or_default() += 1;
    }
    let v2 = versions.get("v2").copied().unwrap_or(0);
    envoy_runner::check_binomial(400, 0.1, v2)
        .unwrap_or_else(|e| panic!("the rules' 90/10 split with the guard: {e}"));
    rows.push((
        "FAIL_OPEN, filter running, early header mutation in front".into(),
        "FAIL_OPEN".into(),
        format!(
            "400 requests with a spoofed x-canary-upstream reached {versions:?} (the rules' 90/10)"
        ),
    ));
    record("guard", &rows);
}
