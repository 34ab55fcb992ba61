//! What Envoy does when the dynamic module cannot start, observed in the
//! real binary: the module's counterpart of `e2e_fail_policy` (whose wasm
//! `failure_policy` and VM have no equivalent here: a `DynamicModuleFilter`
//! has no failure policy, and there is no VM that can die; a panic inside
//! a hook is caught at the ABI boundary and the request continues as Envoy
//! routes it).
//!
//! - at startup, a `.so` that is not a shared object, or the module
//!   refusing its rules: Envoy refuses the configuration and exits 1 (no
//!   signal), naming why; a truncated `.so` kills Envoy (SIGBUS inside
//!   `dlopen`, before any module code runs: a hazard of native modules
//!   that module/README.md warns about);
//! - on a listener update (LDS) bringing bad rules or a corrupt `.so`:
//!   Envoy rejects the update and the last good filter keeps serving;
//! - an Envoy of the previous dynamic-module ABI (1.39.3, ABI `v0.1.0`,
//!   installed by `scripts/setup.sh`): the module refuses to load, naming
//!   the missing callback and the ABI it needs, and Envoy exits 1.
//!
//! These run against the module whatever `CANARY_ROUTER_BUILD` says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_runner::{
    bootstrap_to_module, build_filter_module, envoy_version, find_envoy_previous_abi, repo_root,
    Build, Envoy, EnvoyConfig, EnvoyOptions, Request, PREVIOUS_ABI_ENVOY,
};
use serde_json::{json, Value};

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

const BAD_RULES: &str = r#"{"services": [{"hosts": ["backend"], "http": [{"route": []}]}]}"#;

fn scratch() -> PathBuf {
    let dir = repo_root().join("target/reliability/module");
    or_panic(std::fs::create_dir_all(&dir));
    dir
}

/// A file that is not a shared object, and the module cut in half.
fn broken_modules() -> (PathBuf, PathBuf) {
    let good = or_panic(std::fs::read(or_panic(build_filter_module())));
    let dir = scratch();
    let corrupt = dir.join("libcorrupt.so");
    or_panic(std::fs::write(
        &corrupt,
        b"\x7fELF this is not a shared object",
    ));
    let truncated = dir.join("libtruncated.so");
    or_panic(std::fs::write(&truncated, &good[..good.len() / 2]));
    (corrupt, truncated)
}

/// The weighted example with the module (loaded from `so`) in place of the
/// wasm filter, and `rules` if given.
fn weighted(so: &Path, rules: Option<&str>) -> EnvoyConfig {
    let mut config = or_panic(EnvoyConfig::from_example("weighted"));
    if let Some(rules) = rules {
        or_panic(config.set_wasm_configuration(rules));
    }
    bootstrap_to_module(config.value_mut(), so);
    config
}

/// Starts `config` as written (its filters are the module's already).
fn start(config: EnvoyConfig, opts: EnvoyOptions) -> Result<Envoy, String> {
    let opts = EnvoyOptions {
        ready_timeout: Duration::from_secs(20),
        ..opts
    }
    .build(Build::Wasm);
    Envoy::start(config, &opts).map_err(|e| e.to_string())
}

/// The lines of a failed start's log that say why.
fn why(err: &str) -> String {
    err.lines()
        .filter(|l| {
            l.contains("[critical]")
                || l.contains("[error]")
                || l.contains("canary-router")
                || l.contains("Failed to")
        })
        .map(|l| l.rsplit("] ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that Envoy exited with status 1 (a refusal, not a crash).
fn assert_exit_1(err: &str, what: &str) {
    assert!(
        err.contains("Envoy exited early: exit status: 1"),
        "{what}: Envoy did not exit 1:\n{err}"
    );
}

fn split_of(envoy: &Envoy, n: u64) -> (BTreeMap<u16, u64>, BTreeMap<String, u64>) {
    let mut client = or_panic(envoy.client(10000));
    let (mut statuses, mut versions) = (BTreeMap::new(), BTreeMap::new());
    for _ in 0..n {
        let r = or_panic(client.send(&Request::get("/").host("backend")));
        *statuses.entry(r.status).or_default() += 1;
        *versions
            .entry(r.header("x-version").unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    (statuses, versions)
}

#[test]
fn at_startup_envoy_refuses_a_module_that_cannot_load_or_refuses_its_rules() {
    let good = or_panic(build_filter_module()).to_path_buf();
    let (corrupt, truncated) = broken_modules();
    let cases: [(&str, &Path, Option<&str>, &str); 2] = [
        (
            "not a shared object",
            &corrupt,
            None,
            "Failed to load dynamic module",
        ),
        (
            "the module refuses its rules",
            &good,
            Some(BAD_RULES),
            "canary-router: configuration rejected: services[0].http[0].route: must not be empty",
        ),
    ];
    for (what, so, rules, expect) in cases {
        let err = match start(weighted(so, rules), EnvoyOptions::default()) {
            Ok(_) => panic!("{what}: Envoy started"),
            Err(e) => e,
        };
        assert_exit_1(&err, what);
        let why = why(&err);
        eprintln!("startup, {what}:\n{why}\n");
        assert!(
            why.contains(expect),
            "{what}: expected {expect:?} in:\n{why}"
        );
    }
    // A truncated ELF file passes the loader's first checks and faults
    // while it is mapped: Envoy dies of SIGBUS inside dlopen, before any
    // code of the module runs. Nothing in the module can prevent it; the
    // operator's guide (module/README.md) says to replace the .so only
    // atomically and to check its digest.
    let err = match start(weighted(&truncated, None), EnvoyOptions::default()) {
        Ok(_) => panic!("truncated: Envoy started"),
        Err(e) => e,
    };
    assert!(
        err.contains("Envoy exited early: signal: 7 (SIGBUS)"),
        "truncated: {err}"
    );
    eprintln!("startup, truncated .so: Envoy dies of SIGBUS in dlopen");
    // The good module, for contrast: it routes 90/10.
    let envoy = or_panic(start(weighted(&good, None), EnvoyOptions::default()));
    let (statuses, versions) = split_of(&envoy, 200);
    assert_eq!(statuses.get(&200), Some(&200), "{statuses:?}");
    assert!(versions.get("v2").copied().unwrap_or(0) > 0, "{versions:?}");
}

/// Rewrites the LDS file of a reloadable Envoy with `edit`; whether Envoy
/// rejected the update.
fn push_lds(envoy: &Envoy, edit: impl Fn(&mut Value)) -> bool {
    let before = or_panic(envoy.stats());
    let path = envoy.dir().join("lds/lds.json");
    let mut doc: Value = or_panic(serde_json::from_str(&or_panic(std::fs::read_to_string(
        &path,
    ))));
    edit(&mut doc);
    let version = doc["version_info"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    doc["version_info"] = json!((version + 100).to_string());
    let tmp = path.with_extension("tmp");
    or_panic(std::fs::write(&tmp, doc.to_string()));
    or_panic(std::fs::rename(&tmp, &path));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = or_panic(envoy.stats());
        if now.get("listener_manager.lds.update_rejected")
            > before.get("listener_manager.lds.update_rejected")
        {
            return true;
        }
        if now.get("listener_manager.lds.update_success")
            > before.get("listener_manager.lds.update_success")
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

#[test]
fn on_an_update_envoy_rejects_it_and_the_last_good_filter_keeps_serving() {
    let (corrupt, _) = broken_modules();
    let config = or_panic(EnvoyConfig::from_example("weighted"));
    let opts = EnvoyOptions::default()
        .reloadable()
        .build(Build::Module)
        .args(["--file-flush-interval-msec", "50"]);
    let mut envoy = or_panic(Envoy::start(config, &opts));
    for what in ["bad rules", "a corrupt .so"] {
        let rejected = if what == "bad rules" {
            match envoy.reload_rules(BAD_RULES) {
                Err(e) => e.to_string().contains("rejected"),
                Ok(()) => false,
            }
        } else {
            push_lds(&envoy, |doc| set_filenames(doc, &corrupt))
        };
        assert!(rejected, "update with {what}: it was applied");
        let (statuses, versions) = split_of(&envoy, 400);
        assert_eq!(statuses.get(&200), Some(&400), "{what}: {statuses:?}");
        assert!(
            versions.get("v2").copied().unwrap_or(0) > 0,
            "{what}: the last good filter still splits 90/10: {versions:?}"
        );
        eprintln!("update with {what}: rejected; the last good filter serves {versions:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    let log = or_panic(std::fs::read_to_string(envoy.log_path()));
    assert!(
        log.contains(
            "canary-router: configuration rejected: services[0].http[0].route: must not be empty"
        ),
        "the module says why it refused the rules"
    );
}

#[test]
fn an_envoy_of_the_previous_abi_refuses_the_module_by_name_without_crashing() {
    let old = or_panic(find_envoy_previous_abi());
    let version = or_panic(envoy_version(&old));
    assert!(
        version.contains(&format!("/{PREVIOUS_ABI_ENVOY}/")),
        "{version}"
    );
    let so = or_panic(build_filter_module()).to_path_buf();
    let err = match start(weighted(&so, None), EnvoyOptions::default().envoy_bin(&old)) {
        Ok(_) => panic!("Envoy {PREVIOUS_ABI_ENVOY} ran the module"),
        Err(e) => e,
    };
    assert_exit_1(&err, "previous ABI");
    let why = why(&err);
    eprintln!("Envoy {PREVIOUS_ABI_ENVOY}:\n{why}");
    assert!(
        why.contains(
            "canary-router: this Envoy does not export envoy_dynamic_module_callback_cluster_specifier_set_cluster_name: \
             it is not of dynamic-module ABI v0.2.0 (Envoy 1.40), which this module is built for; refusing to load"
        ),
        "the module names what is missing and what it needs:\n{why}"
    );
    assert!(
        why.contains("Failed to initialize dynamic module")
            || why.contains("Failed to load dynamic module"),
        "Envoy refuses the module:\n{why}"
    );
}
