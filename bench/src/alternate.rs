//! Alternating pairs: two Envoys under test in short runs one after the
//! other, the order swapped every pair, each pair on two fresh processes.
//! The close comparison of the report (the wasm floor against canary-router)
//! and `canary-bench compare` (any two modules).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::configs::{sticky_pairs, Kind, LISTENER_PORT};
use crate::envoys::Starter;
use crate::load::{Load, Proto, Sample, DEFAULT_H2_CONNECTIONS, DEFAULT_IN_FLIGHT};
use crate::report::{self, AbResult};
use crate::{cores, in_scratch, load_generator, progress};

/// How to alternate.
#[derive(Clone, Debug)]
pub struct Alternation {
    /// Pairs per protocol.
    pub pairs: usize,
    /// Length of one measured run.
    pub run: Duration,
    /// Warm-up of each fresh Envoy, per protocol (zero: none).
    pub warmup: Duration,
    pub protos: Vec<Proto>,
}

impl Default for Alternation {
    /// 16 pairs of 2 s runs per protocol, HTTP/1.1 and HTTP/2, each Envoy
    /// warmed up 1 s.
    fn default() -> Self {
        Alternation {
            pairs: 16,
            run: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            protos: vec![Proto::H1, Proto::H2],
        }
    }
}

/// Runs `alt.pairs` pairs of `kinds[0]` (the base) and `kinds[1]`; for each
/// pair two fresh Envoys, warmed up, then one run of each per protocol, the
/// base first in even pairs and second in odd ones. One result per protocol,
/// pairs as (base, other).
pub fn alternate<'a>(
    starter: &Starter<'a>,
    load: &Load,
    scratch: &Path,
    kinds: &'a [Kind; 2],
    alt: &Alternation,
) -> Result<Vec<AbResult>, String> {
    let mut pairs: Vec<Vec<(Sample, Sample)>> = vec![Vec::new(); alt.protos.len()];
    for k in 0..alt.pairs {
        let envoys = starter.start_all(kinds)?;
        let run = |i: usize, proto: Proto, d: Duration| {
            let envoy = &envoys[i];
            let addr = envoy.addr(LISTENER_PORT).map_err(|e| e.to_string())?;
            load.for_kind(&kinds[i])
                .run(proto, addr, envoy.pid(), d, scratch)
                .map_err(|e| format!("{} ({}): {e}", kinds[i].name(), proto.label()))
        };
        for (p, &proto) in alt.protos.iter().enumerate() {
            if !alt.warmup.is_zero() {
                run(0, proto, alt.warmup)?;
                run(1, proto, alt.warmup)?;
            }
            let pair = if k % 2 == 0 {
                let base = run(0, proto, alt.run)?;
                (base, run(1, proto, alt.run)?)
            } else {
                let other = run(1, proto, alt.run)?;
                (run(0, proto, alt.run)?, other)
            };
            progress(format!(
                "pair {}/{} {:<22} {} / {}: Envoy CPU {:.3}  req/s {:.3}  p99 {:+.0} µs",
                k + 1,
                alt.pairs,
                proto.label(),
                kinds[1].name(),
                kinds[0].name(),
                report::cpu_ratio(&pair.1, &pair.0),
                pair.1.rps / pair.0.rps,
                pair.1.p99_us - pair.0.p99_us,
            ));
            if let Some(v) = pairs.get_mut(p) {
                v.push(pair);
            }
        }
    }
    Ok(alt
        .protos
        .iter()
        .zip(pairs)
        .map(|(&proto, pairs)| AbResult {
            other: kinds[1].clone(),
            proto,
            run: alt.run,
            pairs,
        })
        .collect())
}

/// Runs two builds of a filter side by side in alternating pairs of fresh
/// Envoys (the benchmark's Envoy, upstream and load) and prints <OTHER>
/// over <BASE>: Envoy CPU per request, req/s and the p99 difference, median
/// and middle half.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The base build (a .wasm).
    base: PathBuf,
    /// The build compared with it.
    other: PathBuf,
    /// The plugin configuration both load [default: the benchmark's
    /// canary-router rules, the header rule and 90/10]; destinations
    /// without a port take the listener's port, and clusters
    /// outbound|<that port>|v1|... and |v2| exist.
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// The base's own configuration [default: --config], e.g. {} for the
    /// wasm floor.
    #[arg(long, value_name = "JSON")]
    base_config: Option<String>,
    #[command(flatten)]
    pairs: PairArgs,
}

/// How [`compare`] and [`compare_module`] alternate.
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// Pairs per protocol.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pairs: usize,
    /// One measured run, in seconds; each Envoy is warmed up 1 s.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    duration: u64,
    /// HTTP/1.1 only (default: HTTP/1.1 and HTTP/2).
    #[arg(long)]
    h1_only: bool,
    /// Do not pin Envoy and the load generator to cores.
    #[arg(long)]
    no_pin: bool,
}

impl PairArgs {
    /// The alternation, and whether to pin to cores.
    fn alternation(&self) -> (Alternation, bool) {
        let mut alt = Alternation {
            pairs: self.pairs.max(1),
            run: Duration::from_secs(self.duration.max(1)),
            ..Alternation::default()
        };
        if self.h1_only {
            alt.protos = vec![Proto::H1];
        }
        (alt, !self.no_pin && cores() >= 2)
    }
}

/// `canary-bench compare`: prints the comparison, or returns an error.
pub fn compare(args: &CompareArgs) -> Result<(), String> {
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| crate::configs::rules_json(2));
    let base_config = args.base_config.clone();
    let (alt, pin_cores) = args.pairs.alternation();
    let (base, other) = (args.base.clone(), args.other.clone());
    for p in [&base, &other] {
        if !p.is_file() {
            return Err(format!("{}: no such file", p.display()));
        }
    }
    let label = |p: &Path, other: &Path| {
        // The file name, or the whole path when both have the same name.
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        match name {
            Some(n) if other.file_name() != p.file_name() => n,
            _ => p.display().to_string(),
        }
    };
    let kinds = [
        Kind::Module {
            name: label(&base, &other),
            path: base.clone(),
            config: base_config.unwrap_or_else(|| config.clone()),
        },
        Kind::Module {
            name: label(&other, &base),
            path: other.clone(),
            config,
        },
    ];
    let load = load_generator(DEFAULT_IN_FLIGHT, DEFAULT_H2_CONNECTIONS, pin_cores);
    let results = in_scratch("canary-compare", |scratch| {
        let starter = Starter::new(None, pin_cores)?;
        alternate(&starter, &load, scratch, &kinds, &alt)
    })?;
    println!(
        "{} over {} ({} pairs of fresh Envoys per protocol, {} s runs):\n",
        kinds[1].name(),
        kinds[0].name(),
        alt.pairs,
        alt.run.as_secs()
    );
    println!("{}", report::ab_table(&results, "base"));
    Ok(())
}

/// Runs canary-router as the Envoy dynamic module against Envoy's native
/// routing in alternating pairs of fresh Envoys, and prints each
/// comparison: Envoy CPU per request, req/s and the p99 difference (median
/// and middle half). The comparisons: `filter`, the module (HTTP filter,
/// the canary-router row's 2 rules) over native weighted routing (a header
/// route, then weighted_clusters 90/10); `specifier`, the same decision at
/// a route's cluster specifier (the module's second placement, the same
/// `.so`) over native; `placement`, the cluster
/// specifier over the HTTP filter; `sticky`, the module split sticky by
/// x-user-id over native weighted_clusters with use_hash_policy on the
/// same header, in each placement, twice: every request carrying the
/// x-user-id of a user the module keeps on v1 (its default route), then of
/// one it sends to v2 (for the HTTP filter, a route header and a second
/// route selection), and what a population split 90/10 costs; `rules`,
/// the module with 1000 rules over the module with 1.
#[derive(Debug, clap::Args)]
pub struct CompareModuleArgs {
    /// The comparisons to run, comma-separated [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Vec<String>,
    #[command(flatten)]
    pairs: PairArgs,
}

/// `canary-bench compare-module`: the dynamic module over native routing.
pub fn compare_module(args: &CompareModuleArgs) -> Result<(), String> {
    let (alt, pin_cores) = args.pairs.alternation();
    let all: [(&str, Vec<[Kind; 2]>); 5] = [
        (
            "filter",
            vec![[Kind::Native, Kind::CanaryRouterModule { rules: 2 }]],
        ),
        (
            "specifier",
            vec![[Kind::Native, Kind::CanaryRouterModuleSpecifier]],
        ),
        (
            "placement",
            vec![[
                Kind::CanaryRouterModule { rules: 2 },
                Kind::CanaryRouterModuleSpecifier,
            ]],
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
    if let Some(bad) = args
        .only
        .iter()
        .find(|o| !all.iter().any(|(n, _)| n == &o.trim()))
    {
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "--only: no comparison {bad:?} (there are {})",
            names.join(", ")
        ));
    }
    let chosen: Vec<&(&str, Vec<[Kind; 2]>)> = all
        .iter()
        .filter(|(n, _)| args.only.is_empty() || args.only.iter().any(|x| x.trim() == *n))
        .collect();
    // The module kinds are the wasm filter's configuration rewritten by the
    // runner (Build::Module): the .wasm path only fills the filter's place.
    let wasm = envoy_runner::build_filter_wasm()
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let specifier = if chosen
        .iter()
        .flat_map(|(_, pairs)| pairs.iter())
        .any(|k| k.iter().any(Kind::is_specifier))
    {
        crate::progress("building the dynamic module");
        Some(
            envoy_runner::build_filter_module()
                .map_err(|e| e.to_string())?
                .to_path_buf(),
        )
    } else {
        None
    };
    let modules = crate::envoys::Modules {
        filter: &wasm,
        floor: &wasm,
        specifier: specifier.as_deref(),
    };
    let load = load_generator(DEFAULT_IN_FLIGHT, DEFAULT_H2_CONNECTIONS, pin_cores);
    let load_before = crate::load::loadavg();
    for (name, pairs) in chosen {
        let mut all_results = Vec::new();
        for kinds in pairs {
            let results = in_scratch("canary-compare-module", |scratch| {
                let starter = Starter::new(Some(&modules), pin_cores)?;
                for kind in kinds {
                    let envoy = starter.start(kind)?;
                    let seen = crate::verify(kind, &envoy, 2000, 100)?;
                    crate::progress(format!("{}: {seen}", kind.name()));
                }
                alternate(&starter, &load, scratch, kinds, &alt)
            })?;
            let table = format!(
                "{name}: {} over {} ({} pairs of fresh Envoys per protocol, {} s runs):\n\n{}",
                kinds[1].name(),
                kinds[0].name(),
                alt.pairs,
                alt.run.as_secs(),
                report::ab_table(&results, "base")
            );
            println!("{table}");
            all_results.extend(results);
        }
        let mix = report::sticky_mix_text(&all_results);
        if !mix.is_empty() {
            println!("{mix}");
        }
    }
    println!(
        "load average (1 min): {load_before:.2} at start, {:.2} at end\n",
        crate::load::loadavg()
    );
    Ok(())
}
