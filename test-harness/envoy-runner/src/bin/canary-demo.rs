//! The demo: runs each example in a real Envoy and prints the split it saw.
//!
//! `scripts/demo.sh` builds the filter and runs this. Every number printed is
//! counted from real responses of the upstream versions (`x-version`). Step
//! 7 runs the dynamic module (built here unless
//! `$CANARY_ROUTER_MODULE` names one), with cargo's progress shown, as an
//! HTTP filter and as the route's cluster specifier.

use std::process::ExitCode;

use std::path::PathBuf;

use envoy_runner::{
    self, count_split, example_dir, repo_root, Build, Envoy, EnvoyConfig, EnvoyOptions, Request,
    Split, SplitKey, FILTER_MODULE_RELATIVE,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const N: usize = 1000;

fn bar(count: u64, total: u64) -> String {
    let width = 40;
    let filled = (count * width + total / 2).checked_div(total).unwrap_or(0);
    let filled = usize::try_from(filled).unwrap_or(0);
    format!(
        "{}{}",
        "█".repeat(filled),
        "·".repeat(40usize.saturating_sub(filled))
    )
}

fn show(title: &str, split: &Split) {
    println!("   {title}");
    let total = split.total();
    let width = split
        .counts
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(10);
    for (version, count) in &split.counts {
        let pct = if total == 0 {
            0.0
        } else {
            100.0 * *count as f64 / total as f64
        };
        println!(
            "     {version:<width$} {} {count:>5}  {pct:5.1}%",
            bar(*count, total)
        );
    }
}

fn start(example: &str, rules: Option<&str>, opts: &EnvoyOptions) -> Result<Envoy> {
    let mut config = EnvoyConfig::from_example(example)?;
    if let Some(file) = rules {
        config.set_rules_file(example_dir(example).join(file))?;
    }
    Ok(Envoy::start(config, opts)?)
}

fn run() -> Result<()> {
    let bin = envoy_runner::find_envoy()?;
    println!(
        "canary-router demo: {} ({})",
        bin.display(),
        envoy_runner::envoy_version(&bin)?
    );
    println!("each line counts {N} requests answered by backend v1 / v2 through the filter\n");
    let opts = EnvoyOptions::default().without_access_logs();
    let backend = Request::get("/").host("backend");
    let by_version = SplitKey::version();

    println!("1. weights, stepped like an Istio canary (examples/weighted)");
    for (file, title) in [
        ("rules.json", "90/10"),
        ("rules-50-50.json", "50/50"),
        ("rules-100-v2.json", "0/100"),
    ] {
        let e = start("weighted", Some(file), &opts)?;
        let split = count_split(&mut e.client(10000)?, N, &backend, &by_version)?;
        show(&format!("{title}  ({file})"), &split);
    }

    println!("\n2. header override (examples/header-override)");
    let e = start("header-override", None, &opts)?;
    let mut c = e.client(10000)?;
    let tester = backend.clone().header("canary", "canary-tester");
    show(
        "with `canary: canary-tester`",
        &count_split(&mut c, N, &tester, &by_version)?,
    );
    show(
        "without it",
        &count_split(&mut c, N, &backend, &by_version)?,
    );
    drop(e);

    println!("\n3. source labels: the sidecar's own workload (examples/source-labels)");
    for version in ["v2", "v1"] {
        let labels =
            format!("{{node: {{metadata: {{LABELS: {{app: frontend, version: {version}}}}}}}}}");
        let e = start("source-labels", None, &opts.clone().config_yaml(&labels))?;
        let split = count_split(&mut e.client(10000)?, N, &backend, &by_version)?;
        show(&format!("from a frontend {version} sidecar"), &split);
    }

    println!("\n4. sticky canary, 50/50 by x-user-id (examples/sticky)");
    let e = start("sticky", None, &opts)?;
    let mut c = e.client(10000)?;
    let (mut users, mut stuck) = (Split::default(), 0);
    for user in 0..200 {
        let req = backend.clone().header("x-user-id", format!("user-{user}"));
        let seen = count_split(&mut c, 5, &req, &by_version)?;
        if seen.counts.len() == 1 {
            stuck += 1;
        }
        if let Some(version) = seen.counts.keys().next() {
            users.add(version.clone());
        }
    }
    show("users per version (200 users, 5 requests each)", &users);
    println!("     {stuck} of 200 users saw one version only");
    drop(e);

    println!("\n5. a client cannot choose the cluster (examples/weighted, 90/10)");
    let e = start("weighted", None, &opts)?;
    let spoof = backend.clone().header(
        "x-canary-upstream",
        "outbound|80|v2|backend.default.svc.cluster.local",
    );
    show(
        "every request sends x-canary-upstream: outbound|80|v2|...",
        &count_split(&mut e.client(10000)?, N, &spoof, &by_version)?,
    );
    let stats = e.stats()?;
    let removed = stats.get("wasmcustom.canary_router.spoofed_header_removed");
    println!("     canary_router.spoofed_header_removed = {removed}");
    drop(e);

    println!(
        "\n6. v1 left on Envoy's own route: defaultDestination (examples/default-destination)"
    );
    let e = start("default-destination", None, &opts)?;
    // Each route names itself in `x-route`: `default` (no header written)
    // or `canary` (the filter wrote the header and re-selected the route).
    let mut c = e.client(10000)?;
    let mut paths = Split::default();
    for _ in 0..N {
        let resp = c.send(&backend)?;
        let header = |name: &str| resp.header(name).unwrap_or_else(|| "-".into());
        paths.add(format!("{} via {}", header("x-version"), header("x-route")));
    }
    show("version, and the route that took it there", &paths);
    println!("\nstats of the last Envoy, as Prometheus sees them:");
    print_request_counters(&e)?;
    drop(e);
    native_module(&opts, &backend, &by_version)?;
    self_driving()
}

/// Prints `e`'s `canary_router_requests` lines of `/stats/prometheus`.
fn print_request_counters(e: &Envoy) -> Result<()> {
    let prom = e.admin_get("/stats/prometheus")?;
    for line in prom
        .lines()
        .filter(|l| l.starts_with("canary_router_requests{"))
    {
        println!("   {line}");
    }
    Ok(())
}

/// The `.so` of the dynamic module: `$CANARY_ROUTER_MODULE`, or built now
/// with cargo's progress shown (`scripts/build-module.sh`'s build).
fn module_so() -> Result<PathBuf> {
    if let Some(so) = std::env::var_os("CANARY_ROUTER_MODULE") {
        return Ok(PathBuf::from(so));
    }
    println!("   building it: cargo build --profile module -p canary-router-module");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "--profile", "module", "-p", "canary-router-module"])
        .status()?;
    if !status.success() {
        return Err(format!("building the module failed ({status})").into());
    }
    Ok(repo_root().join(FILTER_MODULE_RELATIVE))
}

/// Step 7: the same rules in the dynamic module (examples/native-module),
/// in both of its placements: the HTTP filter (`envoy.yaml`) and the
/// cluster specifier of the route (`envoy-specifier.yaml`).
fn native_module(opts: &EnvoyOptions, backend: &Request, by_version: &SplitKey) -> Result<()> {
    println!(
        "\n7. the same rules as an Envoy dynamic module, a native .so instead of V8 (examples/native-module)"
    );
    let so = module_so()?;
    for (file, placement) in [
        (
            "envoy.yaml",
            "as an HTTP filter (DynamicModuleFilter: the route header, then the glue route)",
        ),
        (
            "envoy-specifier.yaml",
            "as the route's cluster specifier (DynamicModuleClusterSpecifier: no header, no glue route)",
        ),
    ] {
        println!("\n   {placement}, {file}");
        let mut config = EnvoyConfig::from_file(example_dir("native-module").join(file))?;
        // The example names the .so relative to the repository root.
        config.load_module_from(&so);
        let e = Envoy::start(config, &opts.clone().build(Build::Wasm))?;
        let mut c = e.client(10000)?;
        show("90/10", &count_split(&mut c, N, backend, by_version)?);
        let tester = backend.clone().header("canary", "canary-tester");
        show(
            "with `canary: canary-tester`",
            &count_split(&mut c, N, &tester, by_version)?,
        );
        let (mut users, mut stuck) = (Split::default(), 0);
        for user in 0..200 {
            let req = backend.clone().header("x-user-id", format!("user-{user}"));
            let seen = count_split(&mut c, 5, &req, by_version)?;
            if seen.counts.len() == 1 {
                stuck += 1;
            }
            if let Some(version) = seen.counts.keys().next() {
                users.add(version.clone());
            }
        }
        show(
            "sticky by x-user-id: users per version (200 users, 5 requests each)",
            &users,
        );
        println!("     {stuck} of 200 users saw one version only");
        println!("   its stats, as Prometheus sees them:");
        print_request_counters(&e)?;
    }
    Ok(())
}

/// Sets its flag when dropped: the traffic thread stops on every way out.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `ms` since the Unix epoch as RFC 3339 in UTC (the filter's
/// `ramp::format_time`; the demo does not build the filter natively).
fn rfc3339(ms: u64) -> String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let (day, month) = (
        doy - (153 * mp + 2) / 5 + 1,
        if mp < 10 { mp + 3 } else { mp - 9 },
    );
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{milli:03}Z")
}

/// 8: examples/self-driving as its run.sh runs it, with 3 s steps: the
/// healthy `backend` v2 walks 10% -> 50% -> 100%, the failing `reviews` v2
/// is caught at its first step and its ramp stops.
fn self_driving() -> Result<()> {
    println!("\n8. a canary that drives itself: ramp and baseline guard (examples/self-driving)");
    let mut config = EnvoyConfig::from_example("self-driving")?;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let start = now() + 4_000;
    let rules = config
        .wasm_configuration()?
        .replace("2026-12-07T10:00:00Z", &rfc3339(start))
        .replace("\"20s\"", "\"3s\"");
    config.set_wasm_configuration(&rules)?;
    let e = Envoy::start(config, &EnvoyOptions::default().without_access_logs())?;
    let addr = e.addr(10000)?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let gauge = |kind: &str, svc: &str, dest: Option<&str>| -> u64 {
        let mut name = format!(
            "wasmcustom.canary_router.{kind}.service={svc}.default.svc.cluster.local;.rule=release;"
        );
        if let Some(d) = dest {
            name.push_str(&format!(".destination={d};"));
        }
        e.stats().map(|s| s.get(&name)).unwrap_or(0)
    };
    std::thread::scope(|s| -> Result<()> {
        // The traffic stops however this ends (an error included).
        let _stop = StopOnDrop(&stop);
        // reviews gets traffic all along: its guard needs it.
        let stop = &stop;
        s.spawn(move || {
            let mut c = envoy_runner::HttpClient::new(addr);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c.send(&Request::get("/").host("reviews"));
            }
        });
        for (offset, title) in [
            (-2_000i64, "before the start: the route's own weights"),
            (1_000, "step 1: 10%"),
            (4_000, "step 3: 50%"),
            (7_000, "step 5: 100%"),
        ] {
            let at = (start as i64 + offset) as u64;
            std::thread::sleep(std::time::Duration::from_millis(at.saturating_sub(now())));
            let mut c = envoy_runner::HttpClient::new(addr);
            let split = count_split(
                &mut c,
                400,
                &Request::get("/").host("backend"),
                &SplitKey::version(),
            )?;
            show(&format!("backend, {title}"), &split);
            println!(
                "     reviews: v2 weight {:.1}%, ramp step {}, stopped {}",
                gauge("weight", "reviews", Some("v2")) as f64 / 100.0,
                gauge("ramp_step", "reviews", None),
                gauge("ramp_aborted", "reviews", None) == 1
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(e.log_path()).unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.contains("guard ejected") || l.contains("stopped at step"))
    {
        println!(
            "   {}",
            line.rsplit("canary-router: ").next().unwrap_or(line)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
