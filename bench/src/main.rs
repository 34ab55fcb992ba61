//! `canary-bench`: what canary-router costs next to Envoy's native weighted
//! routing, a Lua filter, and a minimal wasm filter, on one machine in one
//! run. See `bench/README.md`; `bench/run.sh` runs it and writes
//! `docs/benchmarks.md`.

mod alternate;
mod configs;
mod decide;
mod envoys;
mod instructions;
mod load;
mod memory;
mod report;
mod wasmcost;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use std::process::Command;
use std::time::{Duration, Instant};

use envoy_runner::{
    build_filter_wasm, check_binomial, envoy_version, find_envoy, repo_root, Envoy, HttpClient,
    Request,
};

use alternate::{alternate, Alternation};
use configs::{Filler, Kind, StickyUser, CANARY_HEADER, HOST, LISTENER_PORT, V1, V2, V2_SHARE};
use envoys::{Modules, Starter};
use load::{Load, Proto};
use report::{ConfigResult, DecideRow, OptRow, Report};

/// What canary-router costs next to Envoy's native weighted routing, a Lua
/// filter and a minimal wasm filter, side by side on this machine.
///
/// Without a subcommand: the whole benchmark, its report printed and written
/// to docs/benchmarks.md.
#[derive(Debug, Parser)]
#[command(name = "canary-bench", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    Compare(alternate::CompareArgs),
    CompareModule(alternate::CompareModuleArgs),
    Memory(memory::MemoryArgs),
    Instructions(instructions::InstructionsArgs),
    Rules(RulesArgs),
    /// Runs `decide` in a loop, what `callgrind` counts (the benchmark runs it).
    #[command(hide = true)]
    DecideLoop(decide::DecideLoopArgs),
}

/// The whole benchmark's options.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// One short round of each configuration; checks routing and renders the
    /// table (numbers mean nothing); writes no file unless --out is given.
    #[arg(long)]
    smoke: bool,
    /// Measured rounds, configurations interleaved.
    #[arg(long, value_name = "N", default_value_t = 7)]
    rounds: u64,
    /// Length of one measured run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    duration: u64,
    /// Warm-up run per configuration and protocol, on every round's fresh
    /// Envoys, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    warmup: u64,
    /// Requests in flight (wrk connections).
    #[arg(long, value_name = "N", default_value_t = load::DEFAULT_IN_FLIGHT)]
    connections: u32,
    /// HTTP/2 connections sharing them.
    #[arg(long, value_name = "N", default_value_t = load::DEFAULT_H2_CONNECTIONS)]
    h2_connections: u32,
    /// Do not pin Envoy and the load generator to cores.
    #[arg(long)]
    no_pin: bool,
    /// Where to write the report [default: docs/benchmarks.md].
    #[arg(long, value_name = "PATH", conflicts_with = "no_out")]
    out: Option<PathBuf>,
    /// Print only.
    #[arg(long)]
    no_out: bool,
    /// Skip building the module at opt-level 3, s and z.
    #[arg(long)]
    no_opt_levels: bool,
    /// Skip instruction counts.
    #[arg(long)]
    no_callgrind: bool,
    /// Skip everything that runs Envoy (rule-set costs and sizes only).
    #[arg(long)]
    no_envoy: bool,
    /// Alternating 2 s runs of the wasm floor and canary-router, per
    /// protocol, each pair on fresh Envoys warmed up 1 s (0 skips them).
    #[arg(long, value_name = "N", default_value_t = 16)]
    ab_pairs: usize,
}

/// Prints canary-router's plugin configuration with N rules, as the
/// benchmark measures it.
#[derive(Debug, clap::Args)]
struct RulesArgs {
    /// Rules (at least 1).
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    n: u64,
    /// What the rules that never match test: a header each, or a path prefix.
    #[arg(value_enum, default_value_t = Filler::Header)]
    filler: Filler,
}

#[derive(Clone, Debug)]
struct Opts {
    smoke: bool,
    rounds: usize,
    duration: Duration,
    warmup: Duration,
    in_flight: u32,
    h2_connections: u32,
    pin: bool,
    out: Option<PathBuf>,
    opt_levels: bool,
    callgrind: bool,
    envoy: bool,
    /// Alternating short runs of the floor and canary-router (no pairs: none).
    ab: Alternation,
}

impl Opts {
    fn new(a: &RunArgs) -> Opts {
        let mut o = Opts {
            smoke: a.smoke,
            rounds: a.rounds.max(1) as usize,
            duration: Duration::from_secs(a.duration.max(1)),
            warmup: Duration::from_secs(a.warmup),
            in_flight: a.connections.max(1),
            h2_connections: a.h2_connections.max(1),
            pin: !a.no_pin,
            out: match (&a.out, a.no_out) {
                (Some(out), _) => Some(out.clone()),
                (None, true) => None,
                (None, false) => Some(repo_root().join("docs/benchmarks.md")),
            },
            opt_levels: !a.no_opt_levels,
            callgrind: !a.no_callgrind,
            envoy: !a.no_envoy,
            // The report alternates one request at a time too: its p99
            // target is judged from the pairs.
            ab: Alternation {
                pairs: a.ab_pairs,
                protos: vec![Proto::H1, Proto::H2, Proto::Serial],
                ..Alternation::default()
            },
        };
        if o.smoke {
            o.rounds = 1;
            o.duration = Duration::from_secs(1);
            o.warmup = Duration::ZERO;
            o.opt_levels = false;
            o.callgrind = false;
            o.ab.pairs = 1;
            o.ab.run = Duration::from_secs(1);
            o.ab.warmup = Duration::ZERO;
            if a.out.is_none() {
                o.out = None;
            }
        }
        o
    }
}

/// Runs a subcommand; its error ends the process with status 1.
fn subcommand(name: &str, result: Result<(), String>) {
    if let Err(e) = result {
        eprintln!("canary-bench {name}: {e}");
        std::process::exit(1);
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Some(Sub::DecideLoop(a)) => return subcommand("decide-loop", decide::decide_loop(&a)),
        Some(Sub::CompareModule(a)) => {
            return subcommand("compare-module", alternate::compare_module(&a))
        }
        Some(Sub::Compare(a)) => return subcommand("compare", alternate::compare(&a)),
        Some(Sub::Memory(a)) => return subcommand("memory", memory::memory(&a)),
        Some(Sub::Instructions(a)) => {
            return subcommand("instructions", instructions::instructions(&a))
        }
        Some(Sub::Rules(a)) => {
            println!("{}", configs::rules_json_with(a.n as usize, a.filler));
            return;
        }
        None => {}
    }
    let opts = Opts::new(&cli.run);
    match run(&opts) {
        Ok(report) => {
            let md = report.markdown();
            println!("{md}");
            if let Some(out) = &opts.out {
                if let Err(e) = std::fs::write(out, &md) {
                    eprintln!("canary-bench: writing {}: {e}", out.display());
                    std::process::exit(1);
                }
                eprintln!("canary-bench: wrote {}", out.display());
            }
        }
        Err(e) => {
            eprintln!("canary-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Cores: Envoy under test on one, load generator and upstream on the other.
const ENVOY_CORE: u32 = 1;
const LOAD_CORE: u32 = 0;

fn progress(msg: impl AsRef<str>) {
    eprintln!("[canary-bench] {}", msg.as_ref());
}

/// Niceness given to the Envoys and load generators when running as root:
/// other work on a shared machine then disturbs the measurement less.
pub const NICE: i32 = -10;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Raises the priority of every thread of `pid` (setpriority is per thread).
fn raise_priority(pid: u32) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    for task in tasks {
        if let Ok(tid) = task.file_name().to_string_lossy().parse::<libc::id_t>() {
            // SAFETY: setpriority on a thread id; failure only leaves the niceness as it was.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
            }
        }
    }
}

fn pin(pid: u32, core: u32) -> Result<(), String> {
    if is_root() {
        raise_priority(pid);
    }
    let out = Command::new("taskset")
        .args(["-a", "-cp", &core.to_string(), &pid.to_string()])
        .output()
        .map_err(|e| format!("running taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset -a -cp {core} {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The load generator: on its own core when pinning, at [`NICE`] as root.
fn load_generator(in_flight: u32, h2_connections: u32, pin_cores: bool) -> Load {
    Load {
        in_flight,
        h2_connections,
        core: pin_cores.then_some(LOAD_CORE),
        nice: is_root().then_some(NICE),
        header: None,
    }
}

/// Runs `f` with a scratch directory of its own, removed afterwards.
fn in_scratch<T>(name: &str, f: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
    let scratch = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = f(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run(opts: &Opts) -> Result<Report, String> {
    let started = Instant::now();
    let pin_cores = opts.pin && cores() >= 2;
    in_scratch("canary-bench", |scratch| {
        run_in(opts, pin_cores, scratch, started)
    })
}

fn run_in(
    opts: &Opts,
    pin_cores: bool,
    scratch: &Path,
    started: Instant,
) -> Result<Report, String> {
    let mut report = Report {
        smoke: opts.smoke,
        ..Report::default()
    };
    let load_before = load::loadavg();

    progress("building the modules (release, wasm32-wasip1)");
    let filter = build_filter_wasm()
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let floor = build_floor(&repo_root().join("target/wasm"), None)?;
    // The floor (built with the SDK) exports only the callbacks it implements,
    // as canary-router does, so that the two differ only in what they do per request.
    test_tools::exports::trim_file(&floor)?;
    for (name, path) in [("canary_router.wasm", &filter), ("wasm_floor.wasm", &floor)] {
        report.sizes.push((name.to_string(), file_size(path)?));
    }

    let version = if opts.envoy {
        progress("building the dynamic module");
        let specifier = envoy_runner::build_filter_module()
            .map_err(|e| e.to_string())?
            .to_path_buf();
        let modules = Modules {
            filter: &filter,
            floor: &floor,
            specifier: Some(&specifier),
        };
        envoy_runs(opts, pin_cores, scratch, &modules, &mut report)?
    } else {
        "not run (--no-envoy)".into()
    };

    progress("per-decision cost outside Envoy");
    let (rows, note) = decide_costs(opts, &filter, &floor)?;
    report.decide = rows;
    report.decide_note = note;

    if opts.opt_levels {
        progress("building canary-router at opt-level 3, s and z");
        report.opt = opt_levels(budget(opts))?;
        report.opt_note =
            "Sizes of the release module (lto, codegen-units = 1, panic = abort, strip) \
                           with only `opt-level` changed."
                .into();
    } else {
        report.opt_note = "opt-level comparison skipped (--no-opt-levels or --smoke).".into();
    }

    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--", "filter", "bench"]).is_empty();
    report.meta = vec![
        ("date (UTC)".into(), utc_now()),
        (
            "commit".into(),
            format!("{commit}{}", if dirty { " (filter/ or bench/ modified)" } else { "" }),
        ),
        ("Envoy".into(), version),
        ("CPU".into(), cpu_model()),
        ("cores".into(), cores().to_string()),
        (
            "pinning".into(),
            if pin_cores {
                format!(
                    "Envoy under test on core {ENVOY_CORE}; wrk/h2load and the upstream Envoy on core {LOAD_CORE}{}",
                    if is_root() { format!("; all at niceness {NICE}") } else { String::new() }
                )
            } else {
                "none".into()
            },
        ),
        (
            "Envoy under test".into(),
            "`--concurrency 1`, log level warn, no access log; upstream: a separate Envoy (`--concurrency 1`) answering with `direct_response`".into(),
        ),
        (
            "load".into(),
            format!(
                "{} requests in flight: wrk `-t1 -c{}`; h2load `-t1 -c{} -m{}` (h2c, prior knowledge); and one request at a time, wrk `-t1 -c1`; `Host: {HOST}`",
                opts.in_flight,
                opts.in_flight,
                opts.h2_connections.min(opts.in_flight),
                (opts.in_flight / opts.h2_connections.clamp(1, opts.in_flight)).max(1),
            ),
        ),
        (
            "rounds".into(),
            format!(
                "{} × {} s per configuration and protocol, order rotated each round; every round on freshly started Envoys, {} s warm-up each",
                opts.rounds,
                opts.duration.as_secs(),
                opts.warmup.as_secs()
            ),
        ),
        (
            "load average (1 min)".into(),
            format!("{load_before:.2} at start, {:.2} at end", load::loadavg()),
        ),
        (
            "run time".into(),
            format!("{:.0} s", started.elapsed().as_secs_f64()),
        ),
    ];
    Ok(report)
}

/// Adds what an Envoy under test counted and weighed after its load.
fn collect(result: &mut ConfigResult, envoy: &Envoy) -> Result<(), String> {
    if let Some(kib) = load::rss_kib(envoy.pid()) {
        result.rss_kib.push(kib);
    }
    let stats = envoy.stats().map_err(|e| e.to_string())?;
    let rq = |c: &str| stats.get(&format!("cluster.{c}.upstream_rq_total"));
    // Destinations without a port went to the clusters named after the
    // port the listener bound (configs::clusters_json).
    let port = envoy.addr(LISTENER_PORT).map_err(|e| e.to_string())?.port();
    result.upstream_rq[0] += rq(V1) + rq(&configs::cluster_name(port, "v1"));
    result.upstream_rq[1] += rq(V2) + rq(&configs::cluster_name(port, "v2"));
    Ok(())
}

/// Starts the upstream, then for every round a fresh Envoy under test per
/// configuration (so that no configuration keeps one process's memory
/// layout, good or bad, for the whole run); checks routing, runs the load
/// rounds and the alternating pairs; returns Envoy's version.
fn envoy_runs(
    opts: &Opts,
    pin_cores: bool,
    scratch: &Path,
    modules: &Modules<'_>,
    report: &mut Report,
) -> Result<String, String> {
    let version =
        envoy_version(&find_envoy().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;

    progress("starting the upstream Envoy");
    let starter = Starter::new(Some(modules), pin_cores)?;

    // Every configuration and the protocols it runs: HTTP/1.1 for all; HTTP/2
    // for all but the rule-count rows; one request at a time for the four
    // compared configurations.
    let (all, both, h1) = (
        &[Proto::H1, Proto::H2, Proto::Serial][..],
        &[Proto::H1, Proto::H2][..],
        &[Proto::H1][..],
    );
    let planned: Vec<(Kind, &[Proto])> = vec![
        (Kind::Native, all),
        (Kind::Lua, all),
        (Kind::LuaDefaultRoute, all),
        (Kind::WasmEmpty, both),
        (Kind::WasmReadOnly, both),
        (Kind::WasmNoRead, both),
        (Kind::WasmFloor, all),
        (Kind::CanaryRouter { rules: 2 }, all),
        (Kind::CanaryRouterEveryRequest, all),
        (Kind::CanaryRouterPortless, all),
        (Kind::CanaryRouterPortlessRequestPort, both),
        (Kind::CanaryRouterGuard, all),
        (Kind::CanaryRouterRamp, all),
        (Kind::CanaryRouterBaseline, all),
        (Kind::CanaryRouter { rules: 1 }, h1),
        (Kind::CanaryRouter { rules: 10 }, h1),
        (Kind::CanaryRouter { rules: 100 }, h1),
        (Kind::CanaryRouter { rules: 1000 }, h1),
        (Kind::CanaryRouterModule { rules: 2 }, all),
        (Kind::CanaryRouterModuleSpecifier, both),
        (Kind::NativeSticky(StickyUser::Stable), both),
        (Kind::CanaryRouterModuleSticky(StickyUser::Stable), both),
        (Kind::NativeSticky(StickyUser::Canary), both),
        (Kind::CanaryRouterModuleSticky(StickyUser::Canary), both),
        (
            Kind::CanaryRouterModuleSpecifierSticky(StickyUser::Stable),
            both,
        ),
        (
            Kind::CanaryRouterModuleSpecifierSticky(StickyUser::Canary),
            both,
        ),
        (Kind::CanaryRouterModule { rules: 1 }, h1),
        (Kind::CanaryRouterModule { rules: 1000 }, h1),
    ];
    let kinds: Vec<Kind> = planned.iter().map(|(k, _)| k.clone()).collect();
    let mut results: Vec<ConfigResult> = kinds.iter().cloned().map(ConfigResult::new).collect();

    let protos = [Proto::H1, Proto::H2, Proto::Serial];
    report.protos = protos.to_vec();
    let load = load_generator(opts.in_flight, opts.h2_connections, pin_cores);
    let addr = |e: &Envoy| e.addr(LISTENER_PORT).map_err(|e| e.to_string());
    let plan = |proto: Proto| -> Vec<usize> {
        (0..planned.len())
            .filter(|&i| planned[i].1.contains(&proto))
            .collect()
    };
    let (n_split, n_header) = if opts.smoke { (300, 30) } else { (2000, 100) };
    let mut cpu: Vec<Vec<f64>> = Vec::new();
    for round in 0..opts.rounds {
        progress(format!(
            "round {}/{}: starting {} fresh Envoys under test",
            round + 1,
            opts.rounds,
            kinds.len()
        ));
        let envoys = starter.start_all(&kinds)?;
        if round == 0 {
            progress("checking that every configuration routes as it should");
            for (r, envoy) in results.iter_mut().zip(&envoys) {
                r.verified = verify(&r.kind, envoy, n_split, n_header)?;
            }
        }
        if !opts.warmup.is_zero() {
            for &proto in &protos {
                for i in plan(proto) {
                    load.for_kind(&kinds[i])
                        .run(
                            proto,
                            addr(&envoys[i])?,
                            envoys[i].pid(),
                            opts.warmup,
                            scratch,
                        )
                        .map_err(|e| format!("{} warm-up: {e}", kinds[i].name()))?;
                }
            }
        }
        for envoy in &envoys {
            envoy
                .admin_post("/reset_counters")
                .map_err(|e| e.to_string())?;
        }
        for &proto in &protos {
            let mut order = plan(proto);
            let len = order.len();
            order.rotate_left(round % len);
            for i in order {
                let s = load
                    .for_kind(&kinds[i])
                    .run(
                        proto,
                        addr(&envoys[i])?,
                        envoys[i].pid(),
                        opts.duration,
                        scratch,
                    )
                    .map_err(|e| format!("{} ({}): {e}", kinds[i].name(), proto.label()))?;
                progress(format!(
                    "round {}/{} {:<24} {:<22} {:>8.0} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs  envoy {:>5.1} µs cpu/req  cores {}",
                    round + 1,
                    opts.rounds,
                    kinds[i].name(),
                    proto.label(),
                    s.rps,
                    s.p50_us,
                    s.p99_us,
                    s.envoy_cpu_us.unwrap_or(f64::NAN),
                    s.cpu
                        .iter()
                        .map(|c| format!("{:.0}%", c * 100.0))
                        .collect::<Vec<_>>()
                        .join("/")
                ));
                cpu.push(s.cpu.clone());
                results[i].push(proto, s);
            }
        }
        for (r, envoy) in results.iter_mut().zip(&envoys) {
            collect(r, envoy)?;
        }
    }
    if let (true, Some(c0)) = (pin_cores, cpu.first()) {
        let mean =
            |core: usize| report::median(cpu.iter().filter_map(|c| c.get(core).copied())) * 100.0;
        report.cpu_note = format!(
            "CPU during the measured runs (median busy share): core {ENVOY_CORE} (Envoy under test) \
             {:.0}%, core {LOAD_CORE} (load generator and upstream Envoy) {:.0}%; {} cores seen.",
            mean(ENVOY_CORE as usize),
            mean(LOAD_CORE as usize),
            c0.len()
        );
    }
    report.configs = results;

    // The close comparison: the floor and canary-router in short runs, one
    // after the other, the order swapped every pair; each pair on two fresh
    // processes, warmed up.
    if opts.ab.pairs > 0 {
        progress(format!(
            "alternating the wasm floor and each canary-router configuration: {} pairs of {:?} runs per protocol, fresh Envoys for each pair",
            opts.ab.pairs, opts.ab.run
        ));
        for other in [
            Kind::CanaryRouter { rules: 2 },
            Kind::CanaryRouterEveryRequest,
            Kind::CanaryRouterPortless,
            Kind::CanaryRouterPortlessRequestPort,
            Kind::CanaryRouterGuard,
            Kind::CanaryRouterRamp,
            Kind::CanaryRouterBaseline,
        ] {
            let pair_kinds = [Kind::WasmFloor, other];
            report
                .ab
                .extend(alternate(&starter, &load, scratch, &pair_kinds, &opts.ab)?);
        }
        // The dynamic module against native routing, as its targets ask.
        progress("alternating native routing and the dynamic module");
        let placements = [
            [Kind::Native, Kind::CanaryRouterModule { rules: 2 }],
            [Kind::Native, Kind::CanaryRouterModuleSpecifier],
        ];
        for pair_kinds in placements.into_iter().chain(configs::sticky_pairs()) {
            let ab = Alternation {
                protos: vec![Proto::H1, Proto::H2],
                ..opts.ab.clone()
            };
            report
                .ab
                .extend(alternate(&starter, &load, scratch, &pair_kinds, &ab)?);
        }
    }
    Ok(version)
}

/// Sends traffic through one Envoy under test and checks where it went.
fn verify(kind: &Kind, envoy: &Envoy, n_split: u64, n_header: u64) -> Result<String, String> {
    let mut client: HttpClient = envoy.client(LISTENER_PORT).map_err(|e| e.to_string())?;
    let version = |client: &mut HttpClient, req: &Request| -> Result<String, String> {
        let resp = client
            .send(req)
            .map_err(|e| format!("{}: {e}", kind.name()))?;
        if resp.status != 200 {
            return Err(format!(
                "{}: status {} {}",
                kind.name(),
                resp.status,
                resp.text()
            ));
        }
        Ok(resp.header("x-version").unwrap_or_default())
    };
    let plain = Request::get("/").host(HOST);
    let (name, value) = CANARY_HEADER;
    let tagged = Request::get("/").host(HOST).header(name, value);
    let mut v2 = 0;
    for _ in 0..n_split {
        match version(&mut client, &plain)?.as_str() {
            "v1" => {}
            "v2" => v2 += 1,
            other => return Err(format!("{}: answered by {other:?}", kind.name())),
        }
    }
    let mut header_v2 = 0;
    for _ in 0..n_header {
        if version(&mut client, &tagged)? == "v2" {
            header_v2 += 1;
        }
    }
    let fail = |what: String| Err(format!("{} routes wrongly: {what}", kind.name()));
    if !kind.splits() {
        if v2 != 0 || header_v2 != 0 {
            return fail(format!(
                "{v2}/{n_split} plain and {header_v2}/{n_header} tagged requests to v2"
            ));
        }
        return Ok(format!(
            "0/{n_split} plain and 0/{n_header} `{name}: {value}` requests to v2: it routes \
             nothing, Envoy's default route sends all to v1"
        ));
    }
    // Every other configuration splits 90/10 (the floor by count).
    if let Err(e) = check_binomial(n_split, V2_SHARE, v2) {
        return fail(format!("split {v2}/{n_split} to v2: {e}"));
    }
    if kind.has_header_rule() && header_v2 != n_header {
        return fail(format!(
            "{header_v2}/{n_header} `{name}: {value}` requests to v2"
        ));
    }
    Ok(format!(
        "{v2}/{n_split} plain requests to v2 (within binomial bounds of 10%); {}",
        if kind.has_header_rule() {
            format!("{header_v2}/{n_header} `{name}: {value}` requests to v2")
        } else {
            "no header rule".into()
        }
    ))
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds a package for wasm32-wasip1 in `target_dir`, optionally at another opt-level.
fn cargo_wasm(package: &str, target_dir: &Path, opt_level: Option<&str>) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--release",
            "--target",
            "wasm32-wasip1",
        ]);
    if let Some(level) = opt_level {
        cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", level);
    }
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "building {package} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn build_floor(target_dir: &Path, opt_level: Option<&str>) -> Result<PathBuf, String> {
    cargo_wasm("wasm-floor", target_dir, opt_level)?;
    Ok(target_dir.join("wasm32-wasip1/release/wasm_floor.wasm"))
}

fn budget(opts: &Opts) -> Duration {
    if opts.smoke {
        Duration::from_millis(20)
    } else {
        Duration::from_millis(700)
    }
}

fn opt_levels(budget: Duration) -> Result<Vec<OptRow>, String> {
    let mut rows = Vec::new();
    for level in ["3", "s", "z"] {
        let dir = repo_root().join(format!("target/bench-opt-{level}"));
        cargo_wasm("canary-router", &dir, Some(level))?;
        let wasm = dir.join("wasm32-wasip1/release/canary_router.wasm");
        rows.push(OptRow {
            level: format!("\"{level}\"").replace("\"3\"", "3"),
            bytes: file_size(&wasm)?,
            us_2: Some(wasmcost::per_request_us(
                &wasm,
                configs::rules_json_every_request(2).as_bytes(),
                budget,
            )?),
            us_1000: Some(wasmcost::per_request_us(
                &wasm,
                configs::rules_json_every_request(1000).as_bytes(),
                budget,
            )?),
        });
    }
    Ok(rows)
}

fn decide_costs(
    opts: &Opts,
    filter: &Path,
    floor: &Path,
) -> Result<(Vec<DecideRow>, String), String> {
    let budget = budget(opts);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let valgrind = opts.callgrind
        && Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    let mut rows = Vec::new();
    for rules in [1, 10, 100, 1000] {
        let header = decide::rule_set(rules, Filler::Header)?;
        let prefix = decide::rule_set(rules, Filler::Prefix)?;
        let mut row = DecideRow {
            rules,
            ns_header: decide::time_per_decision(&header, budget)?,
            ns_prefix: decide::time_per_decision(&prefix, budget)?,
            wasm_us: Some(wasmcost::per_request_us(
                filter,
                configs::rules_json_every_request(rules).as_bytes(),
                budget,
            )?),
            ..DecideRow::default()
        };
        if valgrind {
            row.ir_header = Some(decide::instructions_per_decision(
                &exe,
                rules,
                Filler::Header,
            )?);
            row.ir_prefix = Some(decide::instructions_per_decision(
                &exe,
                rules,
                Filler::Prefix,
            )?);
        }
        progress(format!(
            "{rules:>4} rules: {:.1} ns/decision (header rules), {:.1} ns (uri-prefix rules); instructions {:?} / {:?}",
            row.ns_header, row.ns_prefix, row.ir_header, row.ir_prefix
        ));
        rows.push(row);
    }
    let floor_us = wasmcost::per_request_us(floor, b"{}", budget)?;
    let note = format!(
        "*decide ns*: `RuleSet::decide` natively (release), median of 7 timed batches. \
         *instructions*: per decision under callgrind (– when valgrind is missing or skipped). \
         *.wasm in-process µs*: one request (`on_request_headers` + `on_response_headers`) \
         through `canary_router.wasm` in the test harness's wasmtime host, its rules \
         without `defaultDestination` so that, like the floor, it writes the header for \
         every request; the wasm floor takes {floor_us:.2} µs there, so the difference is \
         canary-router's own work. \
         *Envoy*: HTTP/1.1 medians from the tables above (× 1 rule paired by round)."
    );
    Ok((rows, note))
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .current_dir(repo_root())
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
