//! The results and their Markdown rendering (printed, and written to
//! `docs/benchmarks.md`).

use std::fmt::Write as _;

use crate::configs::{sticky_pairs, Kind, StickyKind, StickyUser, STICKY_PLACEMENTS};
use crate::load::{Proto, Sample};

/// One Envoy under test and what was measured on it.
#[derive(Clone, Debug)]
pub struct ConfigResult {
    pub kind: Kind,
    pub h1: Vec<Sample>,
    pub h2: Vec<Sample>,
    /// HTTP/1.1, one request at a time.
    pub serial: Vec<Sample>,
    /// VmRSS after the load, KiB: one value per process (round).
    pub rss_kib: Vec<u64>,
    /// Requests the Envoys sent to v1 and to v2 during the load, all rounds.
    pub upstream_rq: [u64; 2],
    /// What the routing check saw.
    pub verified: String,
}

impl ConfigResult {
    /// Nothing measured yet.
    pub fn new(kind: Kind) -> Self {
        ConfigResult {
            kind,
            h1: Vec::new(),
            h2: Vec::new(),
            serial: Vec::new(),
            rss_kib: Vec::new(),
            upstream_rq: [0, 0],
            verified: String::new(),
        }
    }

    /// Records one measured run.
    pub fn push(&mut self, proto: Proto, sample: Sample) {
        match proto {
            Proto::H1 => self.h1.push(sample),
            Proto::H2 => self.h2.push(sample),
            Proto::Serial => self.serial.push(sample),
        }
    }

    /// Share of requests sent to v2 during the load.
    pub fn v2_share(&self) -> Option<f64> {
        let [v1, v2] = self.upstream_rq;
        (v1 + v2 > 0).then(|| v2 as f64 / (v1 + v2) as f64)
    }

    /// Median VmRSS over the processes, KiB.
    pub fn rss_median_kib(&self) -> Option<f64> {
        (!self.rss_kib.is_empty()).then(|| median(self.rss_kib.iter().map(|&k| k as f64)))
    }

    pub fn samples(&self, proto: Proto) -> &[Sample] {
        match proto {
            Proto::H1 => &self.h1,
            Proto::H2 => &self.h2,
            Proto::Serial => &self.serial,
        }
    }

    /// Medians of (req/s, p50, p99), if measured.
    pub fn medians(&self, proto: Proto) -> Option<(f64, f64, f64)> {
        let s = self.samples(proto);
        if s.is_empty() {
            return None;
        }
        Some((
            median(s.iter().map(|x| x.rps)),
            median(s.iter().map(|x| x.p50_us)),
            median(s.iter().map(|x| x.p99_us)),
        ))
    }

    /// Per round, `f` of this configuration's sample and `other`'s (the
    /// two ran in the same round, one after the other): paired values,
    /// which drift between rounds (other work on the machine) cancels out of.
    pub fn paired(
        &self,
        other: &ConfigResult,
        proto: Proto,
        f: impl Fn(&Sample, &Sample) -> f64,
    ) -> Vec<f64> {
        self.samples(proto)
            .iter()
            .zip(other.samples(proto))
            .map(|(a, b)| f(a, b))
            .collect()
    }

    /// (max - min) / median of req/s.
    pub fn spread(&self, proto: Proto) -> Option<f64> {
        let s = self.samples(proto);
        let (med, _, _) = self.medians(proto)?;
        let max = s.iter().map(|x| x.rps).fold(f64::MIN, f64::max);
        let min = s.iter().map(|x| x.rps).fold(f64::MAX, f64::min);
        Some((max - min) / med)
    }
}

/// The median of some values (NaN if none).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per-decision cost outside Envoy, for one rule count.
#[derive(Clone, Debug, Default)]
pub struct DecideRow {
    pub rules: usize,
    /// Native ns per decision, header fillers / uri-prefix fillers.
    pub ns_header: f64,
    pub ns_prefix: f64,
    /// Instructions per decision under callgrind, if counted.
    pub ir_header: Option<f64>,
    pub ir_prefix: Option<f64>,
    /// Per-request cost of the .wasm in the in-process host (µs), if measured.
    pub wasm_us: Option<f64>,
}

/// One `opt-level` of the release profile.
#[derive(Clone, Debug, Default)]
pub struct OptRow {
    pub level: String,
    pub bytes: u64,
    /// Per-request µs in the in-process host: 2 rules, 1000 rules.
    pub us_2: Option<f64>,
    pub us_1000: Option<f64>,
}

/// Everything a run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub smoke: bool,
    /// The protocols measured, in table order.
    pub protos: Vec<Proto>,
    pub meta: Vec<(String, String)>,
    pub configs: Vec<ConfigResult>,
    pub decide: Vec<DecideRow>,
    pub decide_note: String,
    pub opt: Vec<OptRow>,
    pub opt_note: String,
    pub sizes: Vec<(String, u64)>,
    pub cpu_note: String,
    /// The wasm floor and canary-router in alternating short runs.
    pub ab: Vec<AbResult>,
}

/// Alternating short runs of two Envoys under test on one protocol: in the
/// report the wasm floor (the base) and canary-router; in `compare`, any two
/// modules.
#[derive(Clone, Debug)]
pub struct AbResult {
    /// The configuration compared with the base.
    pub other: Kind,
    pub proto: Proto,
    /// Length of each run.
    pub run: std::time::Duration,
    /// (base, other), run back to back.
    pub pairs: Vec<(Sample, Sample)>,
}

impl AbResult {
    /// The per-pair values of `f(base, other)`, finite ones only.
    fn values(&self, f: impl Fn(&Sample, &Sample) -> f64) -> Vec<f64> {
        self.pairs
            .iter()
            .map(|(a, b)| f(a, b))
            .filter(|v| v.is_finite())
            .collect()
    }
}

/// The alternating pairs as a Markdown table: the other's values over
/// `base`'s (CPU per request, req/s) and minus them (p99), per protocol.
pub fn ab_table(results: &[AbResult], base: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| configuration | protocol | pairs | run s | Envoy CPU per request × {base} | middle half | req/s × {base} | middle half | p99 − {base} µs | middle half |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---|---:|---|---:|---|");
    for ab in results {
        let secs = ab.run.as_secs_f64();
        let (c, c_lo, c_hi) = quartiles(&ab.values(|f, c| cpu_ratio(c, f)));
        let (r, r_lo, r_hi) = quartiles(&ab.values(|f, c| c.rps / f.rps));
        let (d, d_lo, d_hi) = quartiles(&ab.values(|f, c| c.p99_us - f.p99_us));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {secs:.0} | {} | {} … {} | {} | {} … {} | {d:+.0} | {d_lo:+.0} … {d_hi:+.0} |",
            ab.other.name(),
            ab.proto.label(),
            ab.pairs.len(),
            ratio(c),
            ratio(c_lo),
            ratio(c_hi),
            ratio(r),
            ratio(r_lo),
            ratio(r_hi),
        );
    }
    md
}

/// What a population of sticky users split 90/10 costs, the module placed
/// as `module` makes its rows over `use_hash_policy`, on `proto`: each
/// user's median ratio of the pairs
/// ([`StickyUser`]: a user on v1, a user on v2) weighted by the user's
/// share, as (Envoy CPU per request, req/s). Native's cost does not depend
/// on the user (the same weighted pick by a hash), so the population's CPU
/// ratio is the weighted mean of the users' ratios and its throughput ratio
/// their weighted harmonic mean. None unless both users were measured.
pub fn sticky_mix(ab: &[AbResult], module: StickyKind, proto: Proto) -> Option<(f64, f64)> {
    let user = |u: StickyUser| ab.iter().find(|a| a.proto == proto && a.other == module(u));
    let median_of = |u, f: fn(&Sample, &Sample) -> f64| {
        let (m, _, _) = quartiles(&user(u)?.values(f));
        m.is_finite().then_some(m)
    };
    let cpu = StickyUser::population(|u| median_of(u, |n, m| cpu_ratio(m, n)))?;
    let inverse_rps = StickyUser::population(|u| Some(1.0 / median_of(u, |n, m| m.rps / n.rps)?))?;
    Some((cpu, 1.0 / inverse_rps))
}

/// [`sticky_mix`] as a line of text per protocol measured.
pub fn sticky_mix_text(ab: &[AbResult]) -> String {
    let mut out = String::new();
    for (placement, module) in STICKY_PLACEMENTS {
        for proto in [Proto::H1, Proto::H2] {
            if let Some((cpu, rps)) = sticky_mix(ab, module, proto) {
                let _ = writeln!(
                    out,
                    "sticky users split {}, module as {placement} over use_hash_policy, {}: \
                     Envoy CPU per request {cpu:.3} ×, req/s {rps:.3} × (each user's median \
                     weighted by its share)",
                    StickyUser::split_label(),
                    proto.label()
                );
            }
        }
    }
    out
}

/// The median and the interquartile range (25th and 75th percentiles).
fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (median(v.iter().copied()), at(0.25), at(0.75))
}

fn f0(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "–".into()
    }
}

fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "–".into()
    }
}

/// Envoy CPU time per request of `a` over `b` (NaN if either is unknown).
pub fn cpu_ratio(a: &Sample, b: &Sample) -> f64 {
    match (a.envoy_cpu_us, b.envoy_cpu_us) {
        (Some(x), Some(y)) if y > 0.0 => x / y,
        _ => f64::NAN,
    }
}

/// `(rounds: min … max)` of paired per-round values.
fn range(values: &[f64], fmt: impl Fn(f64) -> String) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("(rounds: {} … {})", fmt(min), fmt(max))
}

/// A target: what it asks, the value, whether it is met.
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: Option<bool>,
}

impl Report {
    fn find(&self, kind: &Kind) -> Option<&ConfigResult> {
        self.configs.iter().find(|c| &c.kind == kind)
    }

    /// The targets of issue 7 with their verdicts, for canary-router (with
    /// `defaultDestination`, as deployed) and, where it ran, canary-router
    /// writing the header on every request as the floor and Lua do.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        if let (Some(floor), Some(lua)) = (self.find(&Kind::WasmFloor), self.find(&Kind::Lua)) {
            for &proto in &self.protos {
                for kind in [
                    Kind::CanaryRouter { rules: 2 },
                    Kind::CanaryRouterEveryRequest,
                    Kind::CanaryRouterPortless,
                    Kind::CanaryRouterGuard,
                    Kind::CanaryRouterRamp,
                    Kind::CanaryRouterBaseline,
                ] {
                    if let Some(c) = self.find(&kind).filter(|c| !c.samples(proto).is_empty()) {
                        self.targets_of(c, proto, floor, lua, &mut out);
                    }
                }
            }
        }
        let one = self.decide.iter().find(|d| d.rules == 1);
        let thousand = self.decide.iter().find(|d| d.rules == 1000);
        if let (Some(a), Some(b)) = (one, thousand) {
            let (r, basis) = match (a.ir_header, b.ir_header) {
                (Some(x), Some(y)) => (y / x, "instructions"),
                _ => (b.ns_header / a.ns_header, "native time"),
            };
            out.push(Target {
                what: "per-decision cost at 1000 rules ≤ 1.25 × 1 rule (header rules)".into(),
                measured: format!("{r:.2} × ({basis})"),
                met: Some(r <= 1.25),
            });
        }
        for (one, thousand, label) in [
            (
                Kind::CanaryRouter { rules: 1 },
                Kind::CanaryRouter { rules: 1000 },
                "",
            ),
            (
                Kind::CanaryRouterModule { rules: 1 },
                Kind::CanaryRouterModule { rules: 1000 },
                "dynamic module: ",
            ),
        ] {
            if let (Some(a), Some(b)) = (self.find(&one), self.find(&thousand)) {
                let rounds = b.paired(a, Proto::H1, |b, a| b.rps / a.rps);
                if !rounds.is_empty() {
                    let r = median(rounds.iter().copied());
                    out.push(Target {
                        what: format!("{label}Envoy throughput at 1000 rules ≥ 0.97 × 1 rule"),
                        measured: format!("{r:.3} × {}", range(&rounds, |v| format!("{v:.3}"))),
                        met: Some(r >= 0.97),
                    });
                }
            }
        }
        // Issue 28: the dynamic module against Envoy's native routing, and
        // sticky by header against the native sticky split: each user's
        // path shown, the population of users judged.
        let sticky = sticky_pairs().into_iter().map(|[n, m]| (n, m, false));
        // Both placements of the module are judged: the HTTP filter (every
        // feature) and the route's cluster specifier (no response path).
        let placements = [
            (Kind::Native, Kind::CanaryRouterModule { rules: 2 }, true),
            (Kind::Native, Kind::CanaryRouterModuleSpecifier, true),
        ];
        for (base, other, judged) in placements.into_iter().chain(sticky) {
            if let (Some(b), Some(c)) = (self.find(&base), self.find(&other)) {
                for &proto in self.protos.iter().filter(|p| **p != Proto::Serial) {
                    if !c.samples(proto).is_empty() {
                        self.versus_native(c, b, proto, judged, &mut out);
                    }
                }
            }
        }
        let split = StickyUser::split_label();
        for (placement, module) in STICKY_PLACEMENTS {
            for proto in [Proto::H1, Proto::H2] {
                if let Some((cpu, rps)) = sticky_mix(&self.ab, module, proto) {
                    let p = proto.label();
                    out.push(Target {
                        what: format!(
                            "{p}: sticky users split {split}, module as {placement} Envoy CPU \
                             per request ≤ 1.05 × use_hash_policy"
                        ),
                        measured: format!("{cpu:.3} × (each user's median weighted by its share)"),
                        met: Some(cpu <= 1.05),
                    });
                    out.push(Target {
                        what: format!(
                            "{p}: sticky users split {split}, module as {placement} throughput \
                             ≥ 0.95 × use_hash_policy"
                        ),
                        measured: format!("{rps:.3} × (each user's median weighted by its share)"),
                        met: Some(rps >= 0.95),
                    });
                }
            }
        }
        out
    }

    /// The module targets of one protocol: Envoy CPU per request ≤ 1.05 ×
    /// and throughput ≥ 0.95 × the native configuration `base`, from the
    /// alternating pairs when there are some, else paired by round.
    fn versus_native(
        &self,
        c: &ConfigResult,
        base: &ConfigResult,
        proto: Proto,
        judged: bool,
        out: &mut Vec<Target>,
    ) {
        let alternating = self
            .ab
            .iter()
            .find(|a| a.proto == proto && a.other == c.kind && a.pairs.len() >= 2);
        let measure = |f: fn(&Sample, &Sample) -> f64| match alternating {
            Some(ab) => {
                let values = ab.values(|b, o| f(o, b));
                let (m, lo, hi) = quartiles(&values);
                (!values.is_empty()).then(|| {
                    (
                        m,
                        format!(
                            "({} alternating pairs; middle half {lo:.3} … {hi:.3})",
                            ab.pairs.len()
                        ),
                    )
                })
            }
            None => {
                let rounds = c.paired(base, proto, f);
                (!rounds.is_empty() && rounds.iter().all(|r| r.is_finite())).then(|| {
                    (
                        median(rounds.iter().copied()),
                        range(&rounds, |v| format!("{v:.3}")),
                    )
                })
            }
        };
        let (p, name, native) = (proto.label(), c.kind.name(), base.kind.name());
        if let Some((m, text)) = measure(cpu_ratio) {
            out.push(Target {
                what: format!("{p}: {name} Envoy CPU per request ≤ 1.05 × {native}"),
                measured: format!("{m:.3} × {text}"),
                met: judged.then_some(m <= 1.05),
            });
        }
        if let Some((m, text)) = measure(|a, b| a.rps / b.rps) {
            out.push(Target {
                what: format!("{p}: {name} throughput ≥ 0.95 × {native}"),
                measured: format!("{m:.3} × {text}"),
                met: judged.then_some(m >= 0.95),
            });
        }
    }

    /// The targets against the floor and Lua of one canary-router
    /// configuration on one protocol.
    fn targets_of(
        &self,
        c: &ConfigResult,
        proto: Proto,
        floor: &ConfigResult,
        lua: &ConfigResult,
        out: &mut Vec<Target>,
    ) {
        let p = proto.label();
        let name = c.kind.name();
        // Against the floor: from the alternating pairs when there are
        // some (many short runs, one after the other), else paired by round.
        let alternating = self
            .ab
            .iter()
            .find(|a| a.proto == proto && a.other == c.kind && a.pairs.len() >= 2);
        let versus_floor =
            |f: fn(&Sample, &Sample) -> f64, fmt: fn(f64) -> String| match alternating {
                Some(ab) => {
                    let values = ab.values(|floor, canary| f(canary, floor));
                    let (m, lo, hi) = quartiles(&values);
                    let n = ab.pairs.len();
                    let text = format!(
                        "({n} alternating pairs; middle half {} … {})",
                        fmt(lo),
                        fmt(hi)
                    );
                    (!values.is_empty()).then_some((m, text))
                }
                None => {
                    let rounds = c.paired(floor, proto, f);
                    rounds
                        .iter()
                        .all(|r| r.is_finite())
                        .then(|| (median(rounds.iter().copied()), range(&rounds, fmt)))
                }
            };
        // The serial runs are not a throughput measure: only their p99 counts.
        if proto != Proto::Serial {
            if let Some((m, text)) = versus_floor(cpu_ratio, |v| format!("{v:.3}")) {
                out.push(Target {
                    what: format!(
                        "{p}: {name} Envoy CPU per request ≤ wasm floor ÷ 0.97 (the throughput target, in CPU time)"
                    ),
                    measured: format!("{m:.3} × {text}"),
                    met: Some(m <= 1.0 / 0.97),
                });
            }
            if let Some((m, text)) = versus_floor(|a, b| a.rps / b.rps, |v| format!("{v:.3}")) {
                out.push(Target {
                    what: format!("{p}: {name} throughput ≥ 0.97 × wasm floor"),
                    measured: format!("{m:.3} × {text}"),
                    met: Some(m >= 0.97),
                });
            }
        }
        if let Some((m, text)) = versus_floor(|a, b| a.p99_us - b.p99_us, |v| format!("{v:+.0}")) {
            out.push(Target {
                what: format!("{p}: {name} p99 ≤ wasm floor p99 + 50 µs"),
                measured: format!("{m:+.0} µs {text}"),
                met: Some(m <= 50.0),
            });
        }
        if proto == Proto::Serial {
            return;
        }
        // Lua as the issue writes it (the header on every request); and for
        // canary-router with `defaultDestination`, Lua leaving v1 to the
        // default route likewise, the like-for-like comparison.
        let mut luas = vec![(lua, "Lua")];
        if c.kind == (Kind::CanaryRouter { rules: 2 }) {
            if let Some(l) = self.find(&Kind::LuaDefaultRoute) {
                luas.push((l, "Lua leaving v1 to the default route"));
            }
        }
        for (l, label) in luas {
            if l.samples(proto).is_empty() {
                continue;
            }
            let rounds = c.paired(l, proto, |a, b| a.rps / b.rps);
            let r = median(rounds.iter().copied());
            out.push(Target {
                what: format!("{p}: {name} throughput ≥ {label}"),
                measured: format!("{r:.3} × {label} {}", range(&rounds, |v| format!("{v:.3}"))),
                met: Some(r >= 1.0),
            });
        }
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# canary-router benchmarks\n");
        let _ = writeln!(
            md,
            "<!-- Generated by `bench/run.sh` (crate `bench/`); do not edit: run it again. -->\n"
        );
        if self.smoke {
            let _ = writeln!(
                md,
                "**Smoke run**: one short round per configuration; the numbers say nothing about speed.\n"
            );
        }
        let _ = writeln!(
            md,
            "What a request costs with canary-router in front of Envoy's router, next to Envoy's own \
             weighted routing, a Lua filter making the same decision, and the least any wasm \
             routing filter does. How it is measured: [bench/README.md](../bench/README.md).\n"
        );
        let _ = writeln!(md, "## Run\n\n| | |\n|---|---|");
        for (k, v) in &self.meta {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        let _ = writeln!(md);

        let _ = writeln!(
            md,
            "## Targets\n\n| target | measured | met |\n|---|---|---|"
        );
        for t in self.targets() {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(md, "| {} | {} | {met} |", t.what, t.measured);
        }
        let _ = writeln!(md);

        let native = Kind::Native;
        let floor = Kind::WasmFloor;
        for &proto in &self.protos {
            let native = self.find(&native);
            let floor = self.find(&floor);
            let _ = writeln!(
                md,
                "## {} — medians of {} rounds\n",
                proto.label(),
                self.configs.first().map_or(0, |c| c.samples(proto).len())
            );
            let _ = writeln!(
                md,
                "| configuration | req/s | × native | × wasm floor | spread | Envoy CPU µs/req | CPU × wasm floor | p50 µs | p99 µs | p99 − floor µs | × native p99 | v2 share | RSS MiB |"
            );
            let _ = writeln!(
                md,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for c in &self.configs {
                let Some((rps, p50, p99)) = c.medians(proto) else {
                    continue;
                };
                let paired = |other: Option<&ConfigResult>, f: fn(&Sample, &Sample) -> f64| {
                    other.map_or(f64::NAN, |o| {
                        median(c.paired(o, proto, f).into_iter().filter(|v| v.is_finite()))
                    })
                };
                let xn = paired(native, |a, b| a.rps / b.rps);
                let xf = paired(floor, |a, b| a.rps / b.rps);
                let dp = paired(floor, |a, b| a.p99_us - b.p99_us);
                let xp = paired(native, |a, b| a.p99_us / b.p99_us);
                let cpu_us = median(c.samples(proto).iter().filter_map(|x| x.envoy_cpu_us));
                let cpu_xf = paired(floor, cpu_ratio);
                let spread = c
                    .spread(proto)
                    .map_or("–".into(), |s| format!("{:.1}%", s * 100.0));
                let share = c
                    .v2_share()
                    .map_or("–".into(), |s| format!("{:.1}%", s * 100.0));
                let rss = c
                    .rss_median_kib()
                    .map_or("–".into(), |k| format!("{:.1}", k / 1024.0));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {spread} | {} | {} | {} | {} | {} | {} | {share} | {rss} |",
                    c.kind.name(),
                    f0(rps),
                    ratio(xn),
                    ratio(xf),
                    if cpu_us.is_finite() {
                        format!("{cpu_us:.2}")
                    } else {
                        "–".into()
                    },
                    ratio(cpu_xf),
                    f0(p50),
                    f0(p99),
                    if dp.is_finite() {
                        format!("{dp:+.0}")
                    } else {
                        "–".into()
                    },
                    ratio(xp),
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(
            md,
            "*req/s*, *p50*, *p99*: medians over the rounds. *× native*, *× wasm floor*, \
             *p99 − floor*, *× native p99*: paired by round, the median over the rounds of the \
             ratio (or difference) between the two configurations in the same round, which ran \
             back to back; drift between rounds cancels out of these. \
             *spread*: (max − min) / median of req/s over the rounds. *Envoy CPU µs/req*: CPU \
             time of the Envoy under test (all threads, from `/proc/<pid>/task/*/schedstat`) over \
             the requests it served: what a request costs the sidecar; other work on the machine \
             disturbs it much less than throughput. *v2 share*: requests the \
             Envoy sent to the v2 cluster during the load (expected 10%; the floor sends every tenth request there; the empty filter and the header read alone route nothing). \
             *RSS*: the Envoy's resident memory after the load, with its filter loaded (median over the rounds' processes).\n"
        );
        if !self.cpu_note.is_empty() {
            let _ = writeln!(md, "{}\n", self.cpu_note);
        }

        let (module_ab, floor_ab): (Vec<AbResult>, Vec<AbResult>) =
            self.ab.iter().cloned().partition(|a| a.other.is_module());
        if !floor_ab.is_empty() {
            let _ = writeln!(md, "## canary-router against the wasm floor, alternating\n");
            let _ = writeln!(
                md,
                "Short runs of the two, one after the other, the order swapped every pair: \
                 drift and disturbances longer than a run touch both sides of a pair. Every \
                 pair runs on two freshly started Envoys, warmed up, so that no one process's \
                 memory layout, lucky or not, decides the comparison. The \
                 targets above take their verdicts on the floor from here. Values are \
                 canary-router's over the floor's in each pair: the median, and the middle \
                 half of the pairs (25th to 75th percentile).\n"
            );
            let _ = writeln!(md, "{}", ab_table(&floor_ab, "floor"));
            let _ = writeln!(md);
        }
        if !module_ab.is_empty() {
            let _ = writeln!(
                md,
                "## The dynamic module against native routing, alternating\n"
            );
            let _ = writeln!(
                md,
                "As above, with Envoy's native routing as the base: the header route and \
                 `weighted_clusters` 90/10 for the module as an HTTP filter and at the cluster \
                 specifier; the same split with `use_hash_policy` on `x-user-id` for the sticky \
                 rows, whose load carries one user's `x-user-id`: a user the module keeps on v1 \
                 (its default route), or one it sends to v2 (route header and second route \
                 selection). The module targets take their \
                 verdicts from here.\n"
            );
            let _ = writeln!(md, "{}", ab_table(&module_ab, "native"));
            let _ = writeln!(md);
        }

        let _ = writeln!(md, "## Cost of the rule set\n");
        let _ = writeln!(
            md,
            "N rules with the matching rule last: the header rule, N − 2 rules that do not match \
             the traffic, then the 90/10 split (N = 1: the split alone).\n"
        );
        let _ = writeln!(
            md,
            "| rules | decide ns (header rules) | × 1 rule | instructions | × 1 rule | decide ns (uri-prefix rules) | × 1 rule | instructions | × 1 rule | .wasm in-process µs | Envoy req/s | × 1 rule | Envoy p99 µs |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let d1 = self.decide.iter().find(|d| d.rules == 1).cloned();
        let e1 = self.find(&Kind::CanaryRouter { rules: 1 });
        for d in &self.decide {
            let rel = |v: f64, b: Option<f64>| b.map_or("–".into(), |b| ratio(v / b));
            let ir = |v: Option<f64>| v.map_or("–".into(), f0);
            let er = self.find(&Kind::CanaryRouter { rules: d.rules });
            let e = er.and_then(|c| c.medians(Proto::H1));
            let paired_to_one = er.zip(e1).and_then(|(c, one)| {
                let rounds = c.paired(one, Proto::H1, |a, b| a.rps / b.rps);
                (!rounds.is_empty()).then(|| median(rounds.into_iter()))
            });
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                d.rules,
                d.ns_header,
                rel(d.ns_header, d1.as_ref().map(|x| x.ns_header)),
                ir(d.ir_header),
                d.ir_header.map_or("–".into(), |v| rel(
                    v,
                    d1.as_ref().and_then(|x| x.ir_header)
                )),
                d.ns_prefix,
                rel(d.ns_prefix, d1.as_ref().map(|x| x.ns_prefix)),
                ir(d.ir_prefix),
                d.ir_prefix.map_or("–".into(), |v| rel(
                    v,
                    d1.as_ref().and_then(|x| x.ir_prefix)
                )),
                d.wasm_us.map_or("–".into(), |v| format!("{v:.2}")),
                e.map_or("–".into(), |e| f0(e.0)),
                paired_to_one.map_or("–".into(), ratio),
                e.map_or("–".into(), |e| f0(e.2)),
            );
        }
        let _ = writeln!(md);
        if !self.decide_note.is_empty() {
            let _ = writeln!(md, "{}\n", self.decide_note);
        }

        let _ = writeln!(md, "## Size and opt-level\n");
        let _ = writeln!(md, "| module | bytes | KiB |\n|---|---:|---:|");
        for (name, bytes) in &self.sizes {
            let _ = writeln!(md, "| {name} | {bytes} | {:.0} |", *bytes as f64 / 1024.0);
        }
        let _ = writeln!(md);
        if !self.opt.is_empty() {
            let _ = writeln!(
                md,
                "| opt-level | canary_router.wasm bytes | in-process µs/request, 2 rules | 1000 rules |\n|---|---:|---:|---:|"
            );
            for o in &self.opt {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    o.level,
                    o.bytes,
                    o.us_2.map_or("–".into(), |v| format!("{v:.2}")),
                    o.us_1000.map_or("–".into(), |v| format!("{v:.2}")),
                );
            }
            let _ = writeln!(md);
        }
        if !self.opt_note.is_empty() {
            let _ = writeln!(md, "{}\n", self.opt_note);
        }

        let _ = writeln!(
            md,
            "## Routing checks\n\n| configuration | check |\n|---|---|"
        );
        for c in &self.configs {
            let _ = writeln!(md, "| {} | {} |", c.kind.name(), c.verified);
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: Kind, h1: &[(f64, f64)]) -> ConfigResult {
        ConfigResult {
            h1: h1
                .iter()
                .map(|&(rps, p99_us)| Sample {
                    rps,
                    p99_us,
                    ..Sample::default()
                })
                .collect(),
            ..ConfigResult::new(kind)
        }
    }

    #[test]
    fn targets_compare_runs_of_the_same_round() {
        // The machine drifts: round 2 is much faster for everyone. Paired by
        // round, canary-router is 0.98 of the floor in every round, with
        // 40 µs more p99; against Lua the rounds disagree.
        let report = Report {
            protos: vec![Proto::H1],
            configs: vec![
                config(
                    Kind::Lua,
                    &[(1000.0, 800.0), (2000.0, 400.0), (1050.0, 780.0)],
                ),
                config(
                    Kind::WasmFloor,
                    &[(1000.0, 900.0), (2000.0, 500.0), (1100.0, 700.0)],
                ),
                config(
                    Kind::CanaryRouter { rules: 2 },
                    &[(980.0, 940.0), (1960.0, 540.0), (1078.0, 740.0)],
                ),
            ],
            ..Report::default()
        };
        let targets = report.targets();
        let find = |what: &str| {
            targets
                .iter()
                .find(|t| t.what.contains(what))
                .unwrap_or_else(|| panic!("no target {what}"))
        };
        let t = find("0.97 × wasm floor");
        assert_eq!(t.measured, "0.980 × (rounds: 0.980 … 0.980)");
        assert_eq!(t.met, Some(true));
        let t = find("p99 ≤ wasm floor");
        assert_eq!(t.measured, "+40 µs (rounds: +40 … +40)");
        assert_eq!(t.met, Some(true));
        let t = find("≥ Lua");
        assert_eq!(t.measured, "0.980 × Lua (rounds: 0.980 … 1.027)");
        assert_eq!(t.met, Some(false));
    }

    #[test]
    fn both_canary_router_configurations_are_judged_and_lua_like_for_like() {
        let report = Report {
            protos: vec![Proto::H1],
            configs: vec![
                config(Kind::Lua, &[(1000.0, 800.0)]),
                config(Kind::LuaDefaultRoute, &[(1100.0, 800.0)]),
                config(Kind::WasmFloor, &[(1000.0, 900.0)]),
                config(Kind::CanaryRouter { rules: 2 }, &[(1050.0, 900.0)]),
                config(Kind::CanaryRouterEveryRequest, &[(960.0, 900.0)]),
            ],
            ..Report::default()
        };
        let targets = report.targets();
        let verdict = |what: &str| {
            let found: Vec<_> = targets.iter().filter(|t| t.what == what).collect();
            assert_eq!(found.len(), 1, "{what}");
            (found[0].measured.clone(), found[0].met)
        };
        let h1 = "HTTP/1.1 (wrk)";
        let cr = "canary-router";
        let every = "canary-router, header on every request";
        assert_eq!(
            verdict(&format!("{h1}: {cr} throughput ≥ 0.97 × wasm floor")).1,
            Some(true)
        );
        assert_eq!(
            verdict(&format!("{h1}: {every} throughput ≥ 0.97 × wasm floor")).1,
            Some(false)
        );
        let (m, met) = verdict(&format!("{h1}: {cr} throughput ≥ Lua"));
        assert!(m.starts_with("1.050 × Lua"), "{m}");
        assert_eq!(met, Some(true));
        let (m, met) = verdict(&format!(
            "{h1}: {cr} throughput ≥ Lua leaving v1 to the default route"
        ));
        assert!(m.starts_with("0.955 × Lua leaving v1"), "{m}");
        assert_eq!(met, Some(false));
        assert_eq!(
            verdict(&format!("{h1}: {every} throughput ≥ Lua")).1,
            Some(false)
        );
        // The header-on-every-request configuration is compared with the Lua
        // that does the same, only.
        assert!(!targets
            .iter()
            .any(|t| t.what.starts_with(&format!("{h1}: {every}")) && t.what.contains("leaving")));
    }

    #[test]
    fn alternating_runs_give_the_verdicts_on_the_floor_when_present() {
        let sample = |rps: f64, p99_us: f64, cpu: f64| Sample {
            rps,
            p99_us,
            envoy_cpu_us: Some(cpu),
            ..Sample::default()
        };
        let mut report = Report {
            protos: vec![Proto::H1],
            configs: vec![
                config(Kind::Lua, &[(1000.0, 800.0)]),
                config(Kind::WasmFloor, &[(1000.0, 900.0)]),
                // One round alone says canary-router is far slower ...
                config(Kind::CanaryRouter { rules: 2 }, &[(800.0, 1200.0)]),
            ],
            ..Report::default()
        };
        // ... five alternating pairs say 1% more CPU, 1% less throughput,
        // and +10 µs; one disturbed pair does not move the median.
        report.ab.push(AbResult {
            other: Kind::CanaryRouter { rules: 2 },
            proto: Proto::H1,
            run: std::time::Duration::from_secs(2),
            pairs: vec![
                (sample(1000.0, 900.0, 30.0), sample(990.0, 910.0, 30.3)),
                (sample(1010.0, 880.0, 30.0), sample(1000.0, 890.0, 30.3)),
                (sample(990.0, 900.0, 31.0), sample(980.1, 910.0, 31.31)),
                (sample(1000.0, 900.0, 30.0), sample(600.0, 2900.0, 45.0)),
                (sample(1000.0, 900.0, 30.0), sample(990.0, 910.0, 30.3)),
            ],
        });
        let targets = report.targets();
        let find = |what: &str| {
            let found: Vec<_> = targets.iter().filter(|t| t.what.contains(what)).collect();
            assert_eq!(
                found.len(),
                1,
                "{what}: {:?}",
                found.iter().map(|t| &t.what).collect::<Vec<_>>()
            );
            found[0]
        };
        let t = find("CPU per request");
        assert!(
            t.measured.starts_with("1.010 × (5 alternating pairs"),
            "{}",
            t.measured
        );
        assert_eq!(t.met, Some(true));
        let t = find("0.97 × wasm floor");
        assert!(t.measured.starts_with("0.990 ×"), "{}", t.measured);
        assert_eq!(t.met, Some(true));
        let t = find("p99 ≤ wasm floor");
        assert!(t.measured.starts_with("+10 µs"), "{}", t.measured);
        assert_eq!(t.met, Some(true));
        // Lua is still judged by round.
        assert_eq!(find("≥ Lua").met, Some(false));
        assert!(report
            .markdown()
            .contains("## canary-router against the wasm floor, alternating"));
    }

    #[test]
    fn both_placements_of_the_module_are_judged_against_native() {
        let cpu = |kind, per_request: [f64; 3]| ConfigResult {
            h1: per_request
                .iter()
                .map(|&us| Sample {
                    rps: 1000.0 / us,
                    envoy_cpu_us: Some(us),
                    ..Sample::default()
                })
                .collect(),
            ..ConfigResult::new(kind)
        };
        // Paired by round: the HTTP filter at 1.07 x native's CPU per
        // request (missed), the cluster specifier at 1.02 x (met).
        let report = Report {
            protos: vec![Proto::H1],
            configs: vec![
                cpu(Kind::Native, [100.0, 90.0, 110.0]),
                cpu(Kind::CanaryRouterModule { rules: 2 }, [107.0, 96.3, 117.7]),
                cpu(Kind::CanaryRouterModuleSpecifier, [102.0, 91.8, 112.2]),
            ],
            ..Report::default()
        };
        let (h1, native) = (Proto::H1.label(), Kind::Native.name());
        let verdict = |name: &str| {
            let what = format!("{h1}: {name} Envoy CPU per request ≤ 1.05 × {native}");
            let targets = report.targets();
            let found = targets.iter().find(|t| t.what == what);
            found.and_then(|t| t.met)
        };
        assert_eq!(
            verdict(&Kind::CanaryRouterModule { rules: 2 }.name()),
            Some(false)
        );
        assert_eq!(
            verdict(&Kind::CanaryRouterModuleSpecifier.name()),
            Some(true)
        );
    }

    #[test]
    fn sticky_users_are_judged_as_a_population_split_as_the_weights() {
        let sample = |rps: f64, cpu: f64| Sample {
            rps,
            envoy_cpu_us: Some(cpu),
            ..Sample::default()
        };
        // As the HTTP filter, a user on v1 costs the module 2% more CPU and
        // 2% less throughput, a user on v2 31% more and 30% less: 90% of
        // users on v1 make a population at 1.049 x CPU (met) and
        // 1 / (0.9 / 0.98 + 0.1 / 0.7) = 0.942 x req/s (missed). As the
        // cluster specifier, 1.01 and 0.99 for both users: both met.
        let ab = |other, cpu: f64, rps: f64| AbResult {
            other,
            proto: Proto::H2,
            run: std::time::Duration::from_secs(2),
            pairs: vec![(sample(1000.0, 10.0), sample(1000.0 * rps, 10.0 * cpu)); 3],
        };
        let filter = Kind::CanaryRouterModuleSticky;
        let specifier = Kind::CanaryRouterModuleSpecifierSticky;
        let report = Report {
            protos: vec![Proto::H2],
            ab: vec![
                ab(filter(StickyUser::Stable), 1.02, 0.98),
                ab(filter(StickyUser::Canary), 1.31, 0.70),
                ab(specifier(StickyUser::Stable), 1.01, 0.99),
                ab(specifier(StickyUser::Canary), 1.01, 0.99),
            ],
            ..Report::default()
        };
        let (cpu, rps) = sticky_mix(&report.ab, filter, Proto::H2).unwrap();
        assert!((cpu - 1.049).abs() < 1e-9, "{cpu}");
        assert!((rps - 1.0 / (0.9 / 0.98 + 0.1 / 0.7)).abs() < 1e-9, "{rps}");
        assert_eq!(sticky_mix(&report.ab, filter, Proto::H1), None);
        assert_eq!(sticky_mix(&report.ab[..1], filter, Proto::H2), None);
        assert_eq!(sticky_mix(&report.ab[..2], specifier, Proto::H2), None);
        let targets = report.targets();
        let judged = |placement: &str| -> Vec<Option<bool>> {
            let what = format!("sticky users split 90/10, module as {placement} ");
            targets
                .iter()
                .filter(|t| t.what.contains(&what))
                .map(|t| t.met)
                .collect()
        };
        assert_eq!(judged("HTTP filter"), [Some(true), Some(false)]);
        assert_eq!(judged("cluster specifier"), [Some(true), Some(true)]);
    }
}
