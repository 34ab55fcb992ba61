//! `canary-bench memory`: Envoy's resident memory with no wasm filter, with
//! the wasm floor, and with canary-router (2 rules and 1000 rules), at 1, 2
//! and 4 workers, side by side: every round starts one fresh Envoy of each
//! kind in a rotated order, sends each the same requests, and reads its
//! VmRSS once the requests are answered.

use std::path::PathBuf;
use std::time::Duration;

use envoy_runner::{build_filter_wasm, repo_root, HttpClient};

use crate::configs::{Kind, CANARY_HEADER, HOST, LISTENER_PORT};
use crate::envoys::{Modules, Starter};
use crate::report::median;
use crate::{build_floor, file_size, git, load, progress, utc_now};

/// Envoy's VmRSS with no filter, with the wasm floor, with canary-router
/// (the benchmark's 2-rule set, and 1000 rules) and with the same rules in
/// the dynamic module, each kind on a fresh Envoy per round, rounds
/// rotating the order; median per kind and worker count.
#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Worker counts (`--concurrency`), comma-separated.
    #[arg(long, value_name = "LIST", default_value = "1,2,4", value_parser = worker_counts)]
    workers: WorkerCounts,
    /// Fresh Envoys per kind and worker count.
    #[arg(long, value_name = "N", default_value_t = 3)]
    rounds: usize,
    /// Requests each Envoy answers before it is weighed (every tenth carries
    /// the canary header).
    #[arg(long, value_name = "N", default_value_t = 100)]
    requests: u64,
    /// Also write the table into PATH between the markers
    /// <!-- memory:begin --> and <!-- memory:end --> (e.g. docs/benchmarks.md).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Also weigh another canary-router module (2 and 1000 rules) in the
    /// same rounds, for an A/B of builds; printed only. May be repeated.
    #[arg(long, value_name = "PATH")]
    other: Vec<PathBuf>,
}

/// Worker counts, each at least 1.
#[derive(Debug, Clone)]
struct WorkerCounts(Vec<usize>);

fn worker_counts(list: &str) -> Result<WorkerCounts, String> {
    list.split(',')
        .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w >= 1))
        .collect::<Option<Vec<_>>>()
        .map(WorkerCounts)
        .ok_or_else(|| format!("{list:?}: not a list of counts >= 1"))
}

const BEGIN: &str = "<!-- memory:begin -->";
const END: &str = "<!-- memory:end -->";

/// The target of issue 14: canary-router within this much of the floor.
const TARGET_OVER_FLOOR_MIB: f64 = 5.0;

/// The target of issue 28: the dynamic module within this much of Envoy
/// without any filter.
const MODULE_OVER_NATIVE_MIB: f64 = 1.0;

/// `canary-bench memory`: prints the table, or returns an error.
pub fn memory(args: &MemoryArgs) -> Result<(), String> {
    let workers = args.workers.0.clone();
    let rounds = args.rounds.max(1);
    let requests = args.requests;
    let out = args.out.clone();
    let other = args.other.clone();

    progress("building the modules (release, wasm32-wasip1)");
    let filter = build_filter_wasm()
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let floor = build_floor(&repo_root().join("target/wasm"), None)?;
    test_tools::exports::trim_file(&floor)?;
    let modules = Modules {
        filter: &filter,
        floor: &floor,
        specifier: None,
    };
    let other_modules: Vec<Modules> = other
        .iter()
        .map(|filter| Modules {
            filter,
            floor: &floor,
            specifier: None,
        })
        .collect();
    let kinds = [
        Kind::Native,
        Kind::WasmFloor,
        Kind::CanaryRouter { rules: 2 },
        Kind::CanaryRouter { rules: 1000 },
        Kind::CanaryRouterModule { rules: 2 },
        Kind::CanaryRouterModule { rules: 1000 },
    ];
    // What each round weighs: (which other module, if any; kind); each
    // other module's two kinds come after the six of the table, in order.
    let mut entries: Vec<(Option<usize>, usize)> = (0..kinds.len()).map(|k| (None, k)).collect();
    for o in 0..other_modules.len() {
        entries.extend([(Some(o), 2), (Some(o), 3)]);
    }
    // rss[w][e]: the rounds' VmRSS in KiB.
    let mut rss = vec![vec![Vec::new(); entries.len()]; workers.len()];
    for (wi, &w) in workers.iter().enumerate() {
        let starter = Starter::new(Some(&modules), false)?.with_workers(w);
        let other_starters = other_modules
            .iter()
            .map(|m| Ok(Starter::new(Some(m), false)?.with_workers(w)))
            .collect::<Result<Vec<_>, String>>()?;
        for round in 0..rounds {
            for step in 0..entries.len() {
                let e = (step + round) % entries.len();
                let (o, k) = entries[e];
                let (starter, label) = match o {
                    Some(o) => (&other_starters[o], format!(" (other {})", o + 1)),
                    None => (&starter, String::new()),
                };
                let kib = weigh(starter, &kinds[k], requests)?;
                progress(format!(
                    "{w} worker(s), round {}/{rounds}: {:<36} {:.1} MiB",
                    round + 1,
                    format!("{}{label}", kinds[k].name()),
                    kib as f64 / 1024.0
                ));
                rss[wi][e].push(kib);
            }
        }
    }
    for (o, path) in other.iter().enumerate() {
        let first = kinds.len() + 2 * o;
        println!(
            "{}",
            render_other(&workers, &rss, first, path, file_size(path)?)
        );
    }

    let table = render(
        &workers,
        &kinds,
        &rss,
        rounds,
        requests,
        file_size(&filter)?,
        file_size(&floor)?,
    );
    println!("{table}");
    if let Some(path) = out {
        splice(&path, &table)?;
        eprintln!("canary-bench memory: wrote {}", path.display());
    }
    Ok(())
}

/// Starts a fresh Envoy of `kind`, has it answer `requests` requests (every
/// tenth with the canary header), waits a moment, and returns its VmRSS.
fn weigh(starter: &Starter<'_>, kind: &Kind, requests: u64) -> Result<u64, String> {
    let envoy = starter.start(kind)?;
    let addr = envoy.addr(LISTENER_PORT).map_err(|e| e.to_string())?;
    let mut client = HttpClient::new(addr).with_timeout(Duration::from_secs(10));
    for i in 0..requests {
        let headers: &[(&[u8], &[u8])] = if i % 10 == 9 {
            &[(CANARY_HEADER.0.as_bytes(), CANARY_HEADER.1.as_bytes())]
        } else {
            &[]
        };
        let resp = client
            .get(HOST, "/", headers)
            .map_err(|e| format!("{}: request {i}: {e}", kind.name()))?;
        if resp.status != 200 {
            return Err(format!(
                "{}: request {i} answered {}",
                kind.name(),
                resp.status
            ));
        }
    }
    drop(client);
    // Let the workers settle (the VM of each is created at start).
    std::thread::sleep(Duration::from_millis(500));
    load::rss_kib(envoy.pid()).ok_or_else(|| format!("{}: no VmRSS", kind.name()))
}

/// An other module's rows (its 2- and 1000-rule entries at `first` and
/// `first + 1`): its medians and how far they sit from the floor and from
/// the table's module, measured in the same rounds.
fn render_other(
    workers: &[usize],
    rss: &[Vec<Vec<u64>>],
    first: usize,
    path: &std::path::Path,
    bytes: u64,
) -> String {
    let mut s = format!(
        "Other module {} ({bytes} bytes), weighed in the same rounds:\n\n\
         | workers | 2 rules | 1000 rules | 2 rules − floor | 1000 rules − floor | 2 rules − this module's |\n\
         |---:|---:|---:|---:|---:|---:|\n",
        path.display()
    );
    for (wi, w) in workers.iter().enumerate() {
        let med = |e: usize| mib(median(rss[wi][e].iter().map(|&k| k as f64)));
        s.push_str(&format!(
            "| {w} | {:.1} | {:.1} | {:+.1} | {:+.1} | {:+.1} |\n",
            med(first),
            med(first + 1),
            med(first) - med(1),
            med(first + 1) - med(1),
            med(first) - med(2)
        ));
    }
    s
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn render(
    workers: &[usize],
    kinds: &[Kind],
    rss: &[Vec<Vec<u64>>],
    rounds: usize,
    requests: u64,
    filter_bytes: u64,
    floor_bytes: u64,
) -> String {
    let mut s = format!(
        "Measured by `canary-bench memory` on {} at commit {} (a run of its own: \
         the tables above may come from an earlier full run).\n\n",
        utc_now(),
        git(&["rev-parse", "--short=12", "HEAD"])
    );
    s.push_str(&format!(
        "Envoy's VmRSS in MiB, median of {rounds} fresh Envoys per cell (each answered {requests} \
         requests first); `canary_router.wasm` {filter_bytes} bytes, the floor {floor_bytes} bytes. \
         Targets: canary-router with the 2-rule set at most the floor + {TARGET_OVER_FLOOR_MIB} MiB; \
         the dynamic module (2 rules) at most Envoy without any filter + {MODULE_OVER_NATIVE_MIB} MiB.\n\n"
    ));
    s.push_str("| workers |");
    for k in kinds {
        s.push_str(&format!(" {} |", k.name()));
    }
    s.push_str(
        " 2 rules − floor | 1000 rules − floor | target | module − native | module, 1000 rules − native | module target |\n|---:|",
    );
    for _ in kinds {
        s.push_str("---:|");
    }
    s.push_str("---:|---:|---|---:|---:|---|\n");
    for (wi, w) in workers.iter().enumerate() {
        let med: Vec<f64> = rss[wi]
            .iter()
            .take(kinds.len())
            .map(|v| mib(median(v.iter().map(|&k| k as f64))))
            .collect();
        s.push_str(&format!("| {w} |"));
        for m in &med {
            s.push_str(&format!(" {m:.1} |"));
        }
        let over2 = med[2] - med[1];
        let over1000 = med[3] - med[1];
        let verdict = |met: bool| if met { "met" } else { "**missed**" };
        let module2 = med[4] - med[0];
        let module1000 = med[5] - med[0];
        s.push_str(&format!(
            " {over2:+.1} | {over1000:+.1} | {} | {module2:+.1} | {module1000:+.1} | {} |\n",
            verdict(over2 <= TARGET_OVER_FLOOR_MIB),
            verdict(module2 <= MODULE_OVER_NATIVE_MIB),
        ));
    }
    s
}

/// Replaces what lies between the markers in `path` with `table` (appends
/// the markers and the table when they are missing).
fn splice(path: &std::path::Path, table: &str) -> Result<(), String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{table}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{old}\n## Memory\n\n{block}\n"),
    };
    std::fs::write(path, new).map_err(|e| format!("writing {}: {e}", path.display()))
}
