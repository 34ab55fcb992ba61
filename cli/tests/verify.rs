//! `canaryctl verify`, end to end: two real Envoys (two workers each) with
//! the built filter, read through their admin endpoints and through a real
//! Prometheus (Debian's `prometheus`, which `scripts/setup.sh` installs)
//! scraping their `/stats/prometheus` every second. Both apply the rules:
//! verify passes. Only one is updated: verify of the new rules names the
//! other, verify of the old rules names the updated one.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{canaryctl, TempFile};
use envoy_runner::{Envoy, EnvoyConfig, EnvoyOptions};
use serde_json::{json, Value};

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Rules of the weighted example, v2 at `v2` of 100 and a ramp of its own
/// that already ran (a step in the past, so the weights are its last).
fn rules(v2: u32, ramp_to: f64) -> String {
    json!({
        "routeHeader": "x-canary-upstream",
        "services": [{"hosts": ["backend.default.svc.cluster.local"], "http": [{
            "name": "split",
            "route": [
                {"destination": {"host": "backend.default.svc.cluster.local", "subset": "v1", "port": {"number": 80}}, "weight": 100 - v2},
                {"destination": {"host": "backend.default.svc.cluster.local", "subset": "v2", "port": {"number": 80}}, "weight": v2}
            ],
            "ramp": {"canary": "v2", "start": "2026-01-01T00:00:00Z", "steps": [{"setWeight": ramp_to}]}
        }]}]
    })
    .to_string()
}

fn envoy(rules: &str) -> Envoy {
    let mut cfg = or_panic(EnvoyConfig::from_example("weighted"));
    or_panic(cfg.set_wasm_configuration(rules));
    or_panic(Envoy::start(
        cfg,
        &EnvoyOptions::default().concurrency(2).reloadable(),
    ))
}

/// A Prometheus scraping `targets`, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn prometheus_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMETHEUS_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!("no prometheus binary (PATH or $PROMETHEUS_BIN): scripts/setup.sh installs Debian's `prometheus`")
    })
}

fn start_prometheus(targets: &[String]) -> Prometheus {
    let dir = std::env::temp_dir().join(format!(
        "canaryctl-prometheus-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  static_configs:\n  - targets: [{}]\n",
        targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(prometheus_bin())
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// An instant query's series: (labels, value).
fn query(p: &Prometheus, q: &str) -> Vec<(Value, String)> {
    let addr = p.url.trim_start_matches("http://").parse().unwrap();
    let path = format!(
        "/api/v1/query?query={}",
        q.bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"_-.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let Ok(r) = envoy_runner::get_once(addr, &path) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&r.text()).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["metric"].clone(),
                s["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits until Prometheus has scraped every `instance` with `revision`.
fn wait_for_revisions(p: &Prometheus, want: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = query(p, "canary_router_config_revision");
        let ok = want.iter().all(|(instance, rev)| {
            got.iter()
                .any(|(m, v)| m["instance"] == *instance && v == rev)
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never showed {want:?}: {got:?}\n{}",
            std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn revision_of(file: &Path) -> String {
    // What the filter computes from the same bytes.
    let bytes = std::fs::read(file).unwrap();
    let config: Value = serde_json::from_slice(&bytes).unwrap();
    let _ = config;
    canary_router::domain::revision::revision(&bytes).to_string()
}

#[test]
fn verify_through_prometheus_and_admin_names_the_proxy_left_behind() {
    let (old, new) = (rules(10, 20.0), rules(10, 50.0));
    let (old_file, new_file) = (
        TempFile::new("old.json", &old),
        TempFile::new("new.json", &new),
    );
    let mut a = envoy(&old);
    let b = envoy(&old);
    let (ia, ib) = (a.admin_addr().to_string(), b.admin_addr().to_string());
    let prom = start_prometheus(&[ia.clone(), ib.clone()]);
    let (rev_old, rev_new) = (revision_of(&old_file.0), revision_of(&new_file.0));
    assert_ne!(rev_old, rev_new);
    wait_for_revisions(&prom, &[(&ia, &rev_old), (&ib, &rev_old)]);

    let old_path = old_file.0.display().to_string();
    let new_path = new_file.0.display().to_string();
    // Both apply the old rules.
    let run = canaryctl(&["verify", &old_path, "--prometheus", &prom.url], None).expect_code(0);
    assert!(
        run.stdout.contains("2 of 2 proxies apply revision"),
        "{}",
        run.stdout
    );
    let run = canaryctl(
        &[
            "verify",
            &old_path,
            "--admin",
            &format!("http://{ia}"),
            "--admin",
            &format!("http://{ib}"),
        ],
        None,
    )
    .expect_code(0);
    assert!(
        run.stdout.contains(&format!("ok   http://{ia}")),
        "{}",
        run.stdout
    );

    // Only A gets the new rules.
    or_panic(a.reload_rules(&new));
    wait_for_revisions(&prom, &[(&ia, &rev_new), (&ib, &rev_old)]);
    let run = canaryctl(
        &["verify", &new_path, "--prometheus", &prom.url, "-o", "json"],
        None,
    )
    .expect_code(1);
    let v = run.json();
    let verdicts = v["proxies"].as_array().unwrap();
    let verdict = |instance: &str| {
        verdicts
            .iter()
            .find(|p| p["proxy"] == instance)
            .unwrap_or_else(|| panic!("{instance} in {v:#}"))
    };
    assert_eq!(verdict(&ia)["ok"], true, "{v:#}");
    assert_eq!(verdict(&ib)["ok"], false, "{v:#}");
    let problems = verdict(&ib)["problems"].to_string();
    assert!(
        problems.contains(&format!("revision {rev_old}, not {rev_new}")),
        "{problems}"
    );
    assert!(
        problems.contains("v1 80.00%, v2 20.00% (expected v1 50.00%, v2 50.00%, step 1 of 1)"),
        "{problems}"
    );
    // The text names the one left behind; the old rules name the updated one.
    let run = canaryctl(&["verify", &new_path, "--prometheus", &prom.url], None).expect_code(1);
    assert!(
        run.stdout.contains(&format!("FAIL {ib}")) && run.stdout.contains(&format!("ok   {ia}")),
        "{}",
        run.stdout
    );
    let run = canaryctl(&["verify", &old_path, "--prometheus", &prom.url], None).expect_code(1);
    assert!(
        run.stdout.contains(&format!("FAIL {ia}")) && run.stdout.contains(&format!("ok   {ib}")),
        "{}",
        run.stdout
    );
    // The admin endpoints say the same.
    let run = canaryctl(
        &[
            "verify",
            &new_path,
            "--admin",
            &format!("http://{ia}"),
            "--admin",
            &format!("http://{ib}"),
        ],
        None,
    )
    .expect_code(1);
    assert!(
        run.stdout.contains(&format!("FAIL http://{ib}")),
        "{}",
        run.stdout
    );
    // A proxy that cannot be read is named too.
    let run = canaryctl(
        &["verify", &new_path, "--admin", "http://127.0.0.1:1"],
        None,
    )
    .expect_code(1);
    assert!(
        run.stdout.contains("FAIL http://127.0.0.1:1") && run.stdout.contains("cannot be read"),
        "{}",
        run.stdout
    );
    drop(b);
}

#[test]
fn the_revision_of_a_wasmplugin_is_what_envoy_reports_for_its_json() {
    // A WasmPlugin's YAML, and the JSON Istio would send for it (keys
    // sorted, numbers as doubles): one revision.
    let yaml = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: canary-router}\nspec:\n  url: oci://x\n  pluginConfig:\n    services:\n    - hosts: [backend]\n      http:\n      - name: split\n        route:\n        - destination: {host: backend, subset: v1}\n          weight: 90\n        - destination: {host: backend, subset: v2}\n          weight: 10\n";
    let as_istio = r#"{"services":[{"hosts":["backend"],"http":[{"name":"split","route":[{"destination":{"host":"backend","subset":"v1"},"weight":90},{"destination":{"host":"backend","subset":"v2"},"weight":10}]}]}]}"#;
    let file = TempFile::new("wasmplugin.yaml", yaml);
    let envoy = envoy(as_istio);
    let admin = format!("http://{}", envoy.admin_addr());
    let run = canaryctl(
        &["verify", &file.0.display().to_string(), "--admin", &admin],
        None,
    )
    .expect_code(0);
    assert!(
        run.stdout.contains("1 of 1 proxies apply revision"),
        "{}",
        run.stdout
    );
}
