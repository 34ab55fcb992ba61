//! `canary-bench instructions`: what one request costs Envoy, counted in
//! instructions by callgrind instead of timed. The Envoy under test runs
//! under `valgrind --tool=callgrind` (1 worker, the configurations of
//! `compare-module`); after a warm-up its counters are zeroed, h2load
//! sends N requests, the counters are dumped; then again with 2N. The
//! instructions per request are the difference of the two runs over N:
//! what the connections' set-up and the run's fixed costs add cancels out.
//! Counts are of every thread of Envoy (the worker, the main thread's
//! timers); a busy machine slows the run but does not change the count.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::configs::{
    sticky_pairs, Kind, StickyKind, StickyUser, HOST, LISTENER_PORT, STICKY_PLACEMENTS,
};
use crate::envoys::{Modules, Starter};
use crate::load::parse_h2load;
use crate::progress;

/// Counts Envoy's instructions per request under callgrind for native
/// weighted routing, the dynamic module (HTTP filter, and the route's
/// cluster specifier), native `use_hash_policy` and the module in both
/// placements sticky by header (a user on v1 and a user on v2), and the
/// module with 1 and 1000
/// rules; prints a table, each configuration over its anchor, and what a
/// population of sticky users split 90/10 costs.
#[derive(Debug, clap::Args)]
pub struct InstructionsArgs {
    /// Requests of the shorter counted run (the longer sends twice as many).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    requests: u64,
    /// Rounds: in each, every configuration runs in a fresh Envoy, counted
    /// once per protocol. Envoys of one configuration differ a little
    /// (hash seeds, allocator state); the rounds show by how much.
    #[arg(long, value_name = "N", default_value_t = 3)]
    rounds: usize,
    /// The comparisons to count, comma-separated: `filter` (native, the
    /// module as an HTTP filter), `specifier` (native, the module as the
    /// route's cluster specifier), `sticky` (native use_hash_policy and the
    /// module sticky in both placements, for a user on v1 and a user on
    /// v2), `rules` (the
    /// module with 1 rule and with 1000) [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Vec<String>,
    /// HTTP/1.1 only (default: HTTP/1.1 and HTTP/2).
    #[arg(long)]
    h1_only: bool,
    /// Keep callgrind's dumps in this directory, one per counted run
    /// (`callgrind.<kind>.<protocol>.<requests>`), for `callgrind_annotate`.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// The protocols h2load speaks here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
}

impl Proto {
    fn label(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H2 => "HTTP/2",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Proto::H1 => "h1",
            Proto::H2 => "h2",
        }
    }
}

/// Requests in flight, as the benchmark's load: 16 HTTP/1.1 connections,
/// or 4 HTTP/2 connections of 4 streams.
fn h2load_args(proto: Proto) -> [&'static str; 3] {
    match proto {
        Proto::H1 => ["--h1", "-c16", "-m1"],
        Proto::H2 => ["-t1", "-c4", "-m4"],
    }
}

/// One Envoy under callgrind.
struct Counted<'a> {
    pid: u32,
    /// callgrind's output files are `<out>.<n>`, one per dump.
    out: &'a Path,
    dumps: usize,
}

impl Counted<'_> {
    fn control(&self, arg: &str) -> Result<(), String> {
        let out = Command::new("callgrind_control")
            .args([arg, &self.pid.to_string()])
            .output()
            .map_err(|e| format!("running callgrind_control: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && !text.contains("Error") {
            Ok(())
        } else {
            Err(format!("callgrind_control {arg} {}: {text}", self.pid))
        }
    }

    /// Dumps the counters; returns the dump's file and its total.
    fn dump(&mut self) -> Result<(PathBuf, u64), String> {
        self.control("-d")?;
        self.dumps += 1;
        let file = PathBuf::from(format!("{}.{}", self.out.display(), self.dumps));
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("callgrind's dump {}: {e}", file.display()))?;
        let total = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("{}: no totals line", file.display()))?;
        Ok((file, total))
    }
}

/// Sends `n` requests with h2load; fails unless every one succeeded with a 2xx.
fn send(
    proto: Proto,
    addr: std::net::SocketAddr,
    header: Option<(&str, &str)>,
    n: u64,
) -> Result<(), String> {
    let out = Command::new("h2load")
        .args(h2load_args(proto))
        .args(["-n", &n.to_string()])
        .args(["-H", &format!(":authority: {HOST}")])
        .args(
            header
                .iter()
                .flat_map(|(k, v)| ["-H".to_string(), format!("{k}: {v}")]),
        )
        .arg(format!("http://{addr}/"))
        .output()
        .map_err(|e| format!("running h2load: {e} (apt-get install -y nghttp2-client)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("h2load failed ({}): {text}", out.status));
    }
    let sample = parse_h2load(&text)?;
    if sample.requests != n {
        return Err(format!(
            "h2load: {} of {n} requests succeeded",
            sample.requests
        ));
    }
    Ok(())
}

/// A script that runs Envoy (its arguments passed on) under callgrind,
/// instrumentation off until `callgrind_control -i on`, dumps to `out.<n>`.
fn wrapper(dir: &Path, out: &Path) -> Result<PathBuf, String> {
    let envoy = envoy_runner::find_envoy().map_err(|e| e.to_string())?;
    let path = dir.join("envoy-under-callgrind.sh");
    let script = format!(
        "#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file='{}' '{}' \"$@\"\n",
        out.display(),
        envoy.display()
    );
    std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// One configuration's counts per protocol: instructions per request of
/// each round.
struct Row {
    kind: Kind,
    per_proto: Vec<(Proto, Vec<f64>)>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Counts one configuration once: a fresh Envoy under callgrind, each
/// protocol warmed up, then N and 2N requests counted. Returns the
/// instructions per request of each protocol.
fn count(
    kind: &Kind,
    modules: &Modules<'_>,
    args: &InstructionsArgs,
    protos: &[Proto],
    round: usize,
    scratch: &Path,
) -> Result<Vec<f64>, String> {
    let tag = kind_tag(kind);
    let out = scratch.join(format!("callgrind.out.{tag}.{round}"));
    let starter = Starter::new(Some(modules), false)?.with_wrapper(wrapper(scratch, &out)?);
    let envoy = starter.start(kind)?;
    let addr = envoy.addr(LISTENER_PORT).map_err(|e| e.to_string())?;
    let mut cg = Counted {
        pid: envoy.pid(),
        out: &out,
        dumps: 0,
    };
    cg.control("--instr=on")
        .map_err(|e| format!("{}: {e}", kind.name()))?;
    let header = kind.load_header();
    let n = args.requests.max(1);
    let mut per_proto = Vec::new();
    for &proto in protos {
        send(proto, addr, header, n / 2 + 100)?;
        let mut totals = [0u64; 2];
        for (i, reqs) in [n, 2 * n].into_iter().enumerate() {
            cg.control("-z")?;
            send(proto, addr, header, reqs)?;
            let (file, total) = cg.dump()?;
            totals[i] = total;
            if let Some(dir) = &args.keep {
                let to = dir.join(format!("callgrind.{tag}.{}.{reqs}.{round}", proto.short()));
                std::fs::copy(&file, &to).map_err(|e| format!("keeping {}: {e}", to.display()))?;
            }
            let _ = std::fs::remove_file(&file);
        }
        let per = (totals[1] as f64 - totals[0] as f64) / n as f64;
        progress(format!(
            "round {}: {} {}: {per:.0} instructions per request ({} for {n}, {} for {})",
            round + 1,
            kind.name(),
            proto.label(),
            totals[0],
            totals[1],
            2 * n
        ));
        per_proto.push(per);
    }
    // Envoy stops with `envoy` (its process group is killed).
    drop(envoy);
    Ok(per_proto)
}

/// A file-name tag for a kind.
fn kind_tag(kind: &Kind) -> &'static str {
    match kind {
        Kind::Native => "native",
        Kind::NativeSticky(StickyUser::Stable) => "native-sticky-v1",
        Kind::NativeSticky(StickyUser::Canary) => "native-sticky-v2",
        Kind::CanaryRouterModuleSticky(StickyUser::Stable) => "module-sticky-v1",
        Kind::CanaryRouterModuleSticky(StickyUser::Canary) => "module-sticky-v2",
        Kind::CanaryRouterModuleSpecifier => "specifier",
        Kind::CanaryRouterModuleSpecifierSticky(StickyUser::Stable) => "specifier-sticky-v1",
        Kind::CanaryRouterModuleSpecifierSticky(StickyUser::Canary) => "specifier-sticky-v2",
        Kind::CanaryRouterModule { rules: 1 } => "module-1-rule",
        Kind::CanaryRouterModule { rules: 1000 } => "module-1000-rules",
        _ => "module",
    }
}

/// `canary-bench instructions`: prints the table, or returns an error.
pub fn instructions(args: &InstructionsArgs) -> Result<(), String> {
    // Each comparison: pairs of (anchor, configuration over it).
    let comparisons: [(&str, Vec<[Kind; 2]>); 4] = [
        (
            "filter",
            vec![[Kind::Native, Kind::CanaryRouterModule { rules: 2 }]],
        ),
        (
            "specifier",
            vec![[Kind::Native, Kind::CanaryRouterModuleSpecifier]],
        ),
        ("sticky", sticky_pairs()),
        (
            "rules",
            vec![[
                Kind::CanaryRouterModule { rules: 1 },
                Kind::CanaryRouterModule { rules: 1000 },
            ]],
        ),
    ];
    let names: Vec<&str> = comparisons.iter().map(|(n, _)| *n).collect();
    if let Some(bad) = args.only.iter().find(|o| !names.contains(&o.trim())) {
        return Err(format!(
            "--only: no comparison {bad:?} (there are {})",
            names.join(", ")
        ));
    }
    for tool in ["valgrind", "callgrind_control", "h2load"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "{tool} not found (apt-get install -y valgrind nghttp2-client)"
            ));
        }
    }
    if let Some(dir) = &args.keep {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let protos: Vec<Proto> = if args.h1_only {
        vec![Proto::H1]
    } else {
        vec![Proto::H1, Proto::H2]
    };
    // The module kinds are the wasm filter's configuration rewritten by the
    // runner (Build::Module): the .wasm path only fills the filter's place.
    // The cluster specifier's route loads the same .so by its path.
    let wasm = envoy_runner::build_filter_wasm()
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let so = envoy_runner::build_filter_module()
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let modules = Modules {
        filter: &wasm,
        floor: &wasm,
        specifier: Some(&so),
    };
    let pairs: Vec<&[Kind; 2]> = comparisons
        .iter()
        .filter(|(n, _)| args.only.is_empty() || args.only.iter().any(|x| x.trim() == *n))
        .flat_map(|(_, pairs)| pairs.iter())
        .collect();
    // Each configuration is counted once, however many pairs it is in.
    let mut rows: Vec<Row> = Vec::new();
    for kind in pairs.iter().flat_map(|p| p.iter()) {
        if !rows.iter().any(|r| r.kind == *kind) {
            rows.push(Row {
                kind: kind.clone(),
                per_proto: protos.iter().map(|p| (*p, Vec::new())).collect(),
            });
        }
    }
    crate::in_scratch("canary-instructions", |scratch| {
        for round in 0..args.rounds.max(1) {
            for row in rows.iter_mut() {
                let counts = count(&row.kind, &modules, args, &protos, round, scratch)?;
                for ((_, rounds), c) in row.per_proto.iter_mut().zip(counts) {
                    rounds.push(c);
                }
            }
        }
        Ok(())
    })?;
    println!(
        "Envoy instructions per request under callgrind (1 worker; per round, a fresh \
         Envoy: the difference of {} and {} requests over {}; median of {} rounds, and the rounds):\n",
        args.requests,
        2 * args.requests,
        args.requests,
        args.rounds.max(1)
    );
    println!("| configuration | protocol | instructions per request | rounds |");
    println!("|---|---|---:|---|");
    for row in &rows {
        for (proto, rounds) in &row.per_proto {
            let each: Vec<String> = rounds.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "| {} | {} | {:.0} | {} |",
                row.kind.name(),
                proto.label(),
                median(rounds),
                each.join(", ")
            );
        }
    }
    println!();
    let row = |kind: &Kind| rows.iter().find(|r| r.kind == *kind);
    for [base, other] in pairs {
        let (Some(base), Some(other)) = (row(base), row(other)) else {
            continue;
        };
        for ((proto, b), (_, o)) in base.per_proto.iter().zip(&other.per_proto) {
            let ratios: Vec<String> = b
                .iter()
                .zip(o)
                .map(|(b, o)| format!("{:.3}", o / b))
                .collect();
            let (b, o) = (median(b), median(o));
            println!(
                "{} over {}, {}: {:.3} ({:+.0} instructions per request; by round {})",
                other.kind.name(),
                base.kind.name(),
                proto.label(),
                o / b,
                o - b,
                ratios.join(", ")
            );
        }
    }
    print_sticky_mix(&rows);
    Ok(())
}

/// What a population of sticky users costs, each user's path weighted by
/// its share of the split (90% of users on v1, 10% on v2): each placement
/// of the module over `use_hash_policy`, from the medians of the sticky
/// rows.
fn print_sticky_mix(rows: &[Row]) {
    for (i, (proto, _)) in rows
        .first()
        .map_or(&[][..], |r| &r.per_proto[..])
        .iter()
        .enumerate()
    {
        let cost = |kind: StickyKind| {
            StickyUser::population(|u| {
                let row = rows.iter().find(|r| r.kind == kind(u))?;
                Some(median(&row.per_proto[i].1))
            })
        };
        let Some(native) = cost(Kind::NativeSticky) else {
            return;
        };
        for (placement, kind) in STICKY_PLACEMENTS {
            if let Some(module) = cost(kind) {
                println!(
                    "sticky users split {} (each user's path by its share), module as {placement} \
                     over use_hash_policy, {}: {:.3} ({:+.0} instructions per request)",
                    StickyUser::split_label(),
                    proto.label(),
                    module / native,
                    module - native
                );
            }
        }
    }
}
