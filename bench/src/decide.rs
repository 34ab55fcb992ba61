//! The cost of one decision outside Envoy: `RuleSet::decide` over the same
//! zero-copy header view the filter uses, timed natively and counted in
//! instructions under callgrind (deterministic, so a busy machine does not
//! blur it).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use canary_router::adapters::proxy_wasm::pairs::{serialize, Pairs};
use canary_router::domain::pick::Rng;
use canary_router::{Outcome, Plugin, RuleSet, Workload};

use crate::configs::{rules_json_with, Filler, HOST};

/// The request headers as Envoy hands them to the filter (wrk's request
/// after Envoy's HTTP connection manager added its own).
pub fn request_headers() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b":authority", HOST.as_bytes()),
        (b":path", b"/"),
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b"x-forwarded-proto", b"http"),
        (b"x-request-id", b"4c7ee0f6-6a41-4c43-9d63-0b8d6e3d2d4f"),
        (b"x-envoy-expected-rq-timeout-ms", b"15000"),
    ]
}

/// Compiles the rule set of `n` rules.
pub fn rule_set(n: usize, filler: Filler) -> Result<RuleSet, String> {
    let json = rules_json_with(n, filler);
    Plugin::from_bytes(json.as_bytes(), &Workload::default())
        .map_err(|e| format!("{n} rules: {e}"))?
        .rules
        .map(|r| r.set)
        .ok_or_else(|| "no rules".to_string())
}

/// Runs `iters` decisions; returns how many were routed by the last rule
/// (all of them, or the rule set is not what the benchmark claims).
pub fn run(set: &RuleSet, iters: u64) -> u64 {
    let buf = serialize(request_headers());
    let mut rng = Rng::new(0x5eed);
    let last = set.services().first().map_or(0, |s| s.rules.len() - 1);
    let mut by_last = 0;
    for _ in 0..iters {
        let pairs = Pairs::parse(black_box(&buf)).unwrap_or_else(|| unreachable!());
        let outcome = set.decide(&pairs, || rng.next_u64());
        if let Outcome::Routed(d) = black_box(outcome) {
            by_last += u64::from(d.rule == last);
        }
    }
    by_last
}

/// Nanoseconds per decision: the median of `batches` timed batches.
pub fn time_per_decision(set: &RuleSet, budget: Duration) -> Result<f64, String> {
    // Calibrate a batch to ~1/10 of the budget.
    let mut iters = 64u64;
    loop {
        let t = Instant::now();
        check(run(set, iters), iters)?;
        if t.elapsed() * 10 >= budget || iters >= 1 << 30 {
            break;
        }
        iters *= 2;
    }
    let mut per: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let routed = run(set, iters);
            let ns = t.elapsed().as_nanos() as f64 / iters as f64;
            check(routed, iters).map(|()| ns)
        })
        .collect::<Result<_, _>>()?;
    per.sort_by(f64::total_cmp);
    Ok(per[per.len() / 2])
}

fn check(routed: u64, iters: u64) -> Result<(), String> {
    if routed == iters {
        Ok(())
    } else {
        Err(format!(
            "only {routed} of {iters} decisions were made by the last rule"
        ))
    }
}

/// Instructions per decision under callgrind: the difference of two runs of
/// `canary-bench decide-loop` (`exe`) that differ only in iterations.
pub fn instructions_per_decision(exe: &Path, rules: usize, filler: Filler) -> Result<f64, String> {
    let (few, many) = (1_000u64, 21_000u64);
    let a = callgrind_total(exe, rules, filler, few)?;
    let b = callgrind_total(exe, rules, filler, many)?;
    Ok((b as f64 - a as f64) / (many - few) as f64)
}

fn callgrind_total(exe: &Path, rules: usize, filler: Filler, iters: u64) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args([
            "decide-loop",
            &rules.to_string(),
            filler.arg(),
            &iters.to_string(),
        ])
        .output()
        .map_err(|e| format!("running valgrind: {e} (apt-get install -y valgrind)"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("valgrind failed ({}): {err}", out.status));
    }
    err.lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no instruction count in callgrind's output:\n{err}"))
}

/// `canary-bench decide-loop <rules> <header|prefix> <iterations>`.
#[derive(Debug, clap::Args)]
pub struct DecideLoopArgs {
    /// Rules in the set.
    rules: usize,
    /// What the rules that never match test.
    #[arg(value_enum)]
    filler: Filler,
    /// Decisions to make.
    iterations: u64,
}

/// `canary-bench decide-loop`: what callgrind counts.
pub fn decide_loop(args: &DecideLoopArgs) -> Result<(), String> {
    let set = rule_set(args.rules, args.filler)?;
    check(run(&set, args.iterations), args.iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_request_runs_through_every_rule() {
        for filler in [Filler::Header, Filler::Prefix] {
            for n in [1, 2, 10, 1000] {
                let set = rule_set(n, filler).unwrap();
                assert_eq!(run(&set, 50), 50, "{n} rules ({filler:?})");
            }
        }
    }
}
