//! Alternating pairs: two Envoys under test in short runs one after the
//! other, the order swapped every pair, each pair on two fresh processes.
//! The close comparison of the report (the wasm floor against canary-router)
//! and `canary-bench compare` (any two modules).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::configs::{Kind, LISTENER_PORT};
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
            load.run(proto, addr, envoy.pid(), d, scratch)
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
/// weighted routing (the `native` row: a header route, then
/// weighted_clusters 90/10), in alternating pairs of fresh Envoys, and
/// prints the module over native: Envoy CPU per request, req/s and the p99
/// difference.
#[derive(Debug, clap::Args)]
pub struct CompareModuleArgs {
    /// The module's rule count (the default, 2, is the header rule and the
    /// 90/10 split, the canary-router row's rules).
    #[arg(long, value_name = "N", default_value_t = 2)]
    rules: usize,
    #[command(flatten)]
    pairs: PairArgs,
}

/// `canary-bench compare-module`: the dynamic module over native routing.
pub fn compare_module(args: &CompareModuleArgs) -> Result<(), String> {
    let (alt, pin_cores) = args.pairs.alternation();
    let rules = args.rules.max(1);
    let kinds = [Kind::Native, Kind::CanaryRouterModule { rules }];
    let load = load_generator(DEFAULT_IN_FLIGHT, DEFAULT_H2_CONNECTIONS, pin_cores);
    let results = in_scratch("canary-compare-module", |scratch| {
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
    println!("{}", report::ab_table(&results, "native"));
    Ok(())
}
