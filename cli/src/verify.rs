//! `canaryctl verify`: whether every proxy applies a rule file — the same
//! revision (`canary_router_config_revision`) and, for every rule, the
//! weights its schedule gives now (`canary_router_weight`, in basis points)
//! — read from each proxy's admin endpoint, or from a Prometheus server that
//! scrapes them. It names each proxy that does not, and why.
//!
//! The expected figures come from the filter crate itself: the same
//! revision function, the same compiled schedule, the same rounding to
//! basis points. A proxy may be a little ahead or behind at a step
//! boundary (its clock, or the scrape's time): weights that a step within
//! `--tolerance` of the reading gives are accepted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canary_router::domain::ramp::share_bp;
use canary_router::domain::revision::revision;
use canary_router::domain::stats::tag_value;
use canary_router::{RuleSet, Workload};
use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::input;
use crate::summary;
use crate::watch::{self, Snapshot, StatsSource};

/// Check that proxies apply a rule file.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Check that every proxy applies RULES: that it reports RULES' revision \
(`canary_router_config_revision`, a number derived from the configuration's JSON, the same \
whether Envoy got it from a file or Istio from a WasmPlugin's YAML) and, for every rule, the \
weights RULES' ramp gives now (`canary_router_weight`, in basis points; ejected destinations at \
0). Read each proxy's admin endpoint (`--admin`, repeatable), or a Prometheus server that scrapes \
the proxies' /stats/prometheus (`--prometheus`: every target of `up`, or those matching \
`--selector`). Exits 0 only if every proxy does, and names each one that does not.",
    after_help = "\
Examples:
  canaryctl verify rules.json --admin http://127.0.0.1:15000
  canaryctl verify wasmplugin.yaml --admin http://10.0.0.7:15000 --admin http://10.0.0.8:15000
  canaryctl verify wasmplugin.yaml --prometheus http://prometheus:9090 --selector 'app=\"frontend\"'

Exit codes: 0 every proxy applies the rules, 1 one does not (or cannot be read), 2 usage error
or rules that cannot be read."
)]
pub struct Args {
    /// The rules: a plugin configuration or rule file (JSON or YAML), a
    /// WasmPlugin or ConfigMap, or an Envoy bootstrap.
    #[arg(value_name = "RULES")]
    pub rules: PathBuf,
    /// A proxy's Envoy admin address (repeatable).
    #[arg(long, value_name = "URL", required_unless_present = "prometheus")]
    pub admin: Vec<String>,
    /// A Prometheus server scraping the proxies' /stats/prometheus.
    #[arg(long, value_name = "URL", conflicts_with = "admin")]
    pub prometheus: Option<String>,
    /// With --prometheus: label matchers of the proxies' series, e.g. `job="envoy"`.
    #[arg(long, value_name = "MATCHERS", requires = "prometheus")]
    pub selector: Option<String>,
    /// How far from a step boundary a proxy may still show the step next to it.
    #[arg(long, default_value = "2s", value_parser = watch::parse_duration, value_name = "DURATION")]
    pub tolerance: Duration,
    /// Timeout of one request to a proxy or to Prometheus.
    #[arg(long, default_value = "3s", value_parser = watch::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Output: text, or json (one object).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// How `verify` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A line per proxy.
    Text,
    /// JSON.
    Json,
}

/// What a rule's destinations should weigh, phase by phase.
#[derive(Debug, Clone)]
pub struct RuleExpect {
    /// The service's name (as its stats carry it).
    pub service: String,
    /// The rule's name.
    pub rule: String,
    /// The destinations' labels.
    pub destinations: Vec<String>,
    /// From when, the steps done, and each destination's basis points; one
    /// phase at 0 for a rule without a ramp.
    pub phases: Vec<(u64, u32, Vec<u64>)>,
    /// Steps of the ramp, if the rule has one.
    pub steps: Option<u32>,
}

impl RuleExpect {
    /// The phase at `ms`.
    fn at(&self, ms: u64) -> usize {
        self.phases.iter().rposition(|p| p.0 <= ms).unwrap_or(0)
    }
}

/// Everything a proxy should report.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The configuration's revision.
    pub revision: u64,
    /// Per rule.
    pub rules: Vec<RuleExpect>,
}

/// The figures `rules` give: every rule's weights at each of its phases.
pub fn expected_of(set: &RuleSet, revision: u64) -> Expected {
    let mut rules = Vec::new();
    for s in set.services() {
        for r in &s.rules {
            let shares = |w: &canary_router::domain::pick::Weights| {
                let each: Vec<u64> = w.each().collect();
                let total = each.iter().sum();
                each.iter().map(|w| share_bp(*w, total)).collect::<Vec<_>>()
            };
            let (phases, steps) = match r.route.ramp() {
                None => (vec![(0, 0, shares(r.route.own_weights()))], None),
                Some(ramp) => (
                    ramp.schedule
                        .phases
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let w = ramp.phase_weights(i).unwrap_or(r.route.own_weights());
                            (p.at_ms, p.steps_done, shares(w))
                        })
                        .collect(),
                    Some(ramp.schedule.steps),
                ),
            };
            rules.push(RuleExpect {
                service: s.name.to_string(),
                rule: r.name.to_string(),
                destinations: set.dests(&r.route).map(|d| d.label.to_string()).collect(),
                phases,
                steps,
            });
        }
    }
    Expected { revision, rules }
}

/// Reads RULES: the revision of its configuration and its compiled rules.
pub fn load_expected(path: &std::path::Path) -> Result<Expected> {
    let src = input::read_source(path)?;
    let loaded = input::load(&src)?;
    let mut configs = loaded.configs.into_iter();
    let (Some(cfg), None) = (configs.next(), configs.next()) else {
        return Err(CliError::usage(format!(
            "{}: give a file with exactly one canary-router configuration",
            src.name
        )));
    };
    let judged = summary::judge(&cfg, &Workload::default(), None).map_err(CliError::rejected)?;
    let Some((set, _)) = judged.rules else {
        return Err(CliError::usage(format!(
            "{}: no inline rules (they are polled from a ruleSource): verify with the rule file itself",
            cfg.origin
        )));
    };
    Ok(expected_of(&set, revision(&cfg.bytes)))
}

/// What one proxy reported, and when.
#[derive(Debug, Clone)]
pub struct Reported {
    /// The admin URL, or the Prometheus instance.
    pub proxy: String,
    /// When the figures were read (Unix milliseconds).
    pub at_ms: u64,
    /// The stats, or why they could not be read.
    pub stats: std::result::Result<Snapshot, String>,
}

/// One proxy's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The proxy.
    pub proxy: String,
    /// Whether it applies the rules.
    pub ok: bool,
    /// The revision it reports.
    pub revision: Option<u64>,
    /// What is wrong, if anything.
    pub problems: Vec<String>,
}

/// `ms` since the Unix epoch as RFC 3339 in UTC, to the second.
pub fn rfc3339(ms: u64) -> String {
    canary_router::domain::ramp::format_time(ms - ms % 1000).replace(".000Z", "Z")
}

/// A duration in milliseconds for people: `4m12s`, `9.5s`, `2h03m`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{}.{}s", s, ms % 1000 / 100),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

fn pct(bp: u64) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

/// Judges one proxy against the expected figures.
pub fn check(exp: &Expected, r: &Reported, tolerance: Duration) -> Verdict {
    let mut problems = Vec::new();
    let snap = match &r.stats {
        Ok(s) => s,
        Err(e) => {
            return Verdict {
                proxy: r.proxy.clone(),
                ok: false,
                revision: None,
                problems: vec![format!("cannot be read: {e}")],
            }
        }
    };
    let revision = snap.counters.get("config_revision").copied();
    match revision {
        None => problems.push(
            "reports no canary_router_config_revision (no canary-router, or one without rules)"
                .into(),
        ),
        Some(r) if r != exp.revision => {
            problems.push(format!("revision {r}, not {} (other rules)", exp.revision))
        }
        Some(_) => {}
    }
    let tol = tolerance.as_millis() as u64;
    for rule in &exp.rules {
        let (s, ru) = (tag_value(&rule.service), tag_value(&rule.rule));
        let got: Vec<Option<u64>> = rule
            .destinations
            .iter()
            .map(|d| {
                let key = (
                    "weight".to_string(),
                    s.clone(),
                    ru.clone(),
                    Some(tag_value(d)),
                );
                snap.tagged.get(&key).copied()
            })
            .collect();
        let (low, high) = (rule.at(r.at_ms.saturating_sub(tol)), rule.at(r.at_ms + tol));
        let matches = rule
            .phases
            .get(low..=high)
            .unwrap_or_default()
            .iter()
            .any(|p| p.2.iter().zip(&got).all(|(want, got)| Some(*want) == *got));
        if matches {
            continue;
        }
        let now = rule.phases.get(rule.at(r.at_ms));
        let show = |bps: &mut dyn Iterator<Item = Option<u64>>| {
            rule.destinations
                .iter()
                .zip(bps)
                .map(|(d, bp)| format!("{d} {}", bp.map_or("none".into(), pct)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut line = format!(
            "{}/{}: {} (expected {}",
            rule.service,
            rule.rule,
            show(&mut got.iter().copied()),
            show(
                &mut now
                    .map(|p| p.2.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(Some)
            )
        );
        if let (Some(steps), Some(p)) = (rule.steps, now) {
            let _ = write!(line, ", step {} of {steps}", p.1);
        }
        line.push(')');
        let aborted = ("ramp_aborted".to_string(), s.clone(), ru.clone(), None);
        if snap.tagged.get(&aborted) == Some(&1) {
            line.push_str(": its ramp was stopped, the canary was ejected");
        } else if got.iter().zip(&rule.destinations).any(|(g, d)| {
            *g == Some(0)
                && snap
                    .ejected
                    .contains(&(s.clone(), ru.clone(), tag_value(d)))
        }) {
            line.push_str(": a guard ejected a destination");
        }
        problems.push(line);
    }
    Verdict {
        proxy: r.proxy.clone(),
        ok: problems.is_empty(),
        revision,
        problems,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads a proxy's admin endpoint.
pub fn read_admin(url: &str, timeout: Duration) -> Reported {
    let stats = watch::parse_endpoint(url)
        .map_err(|e| e.message)
        .and_then(|ep| watch::fetch(&ep, StatsSource::Stats, timeout));
    Reported {
        proxy: url.to_string(),
        at_ms: now_ms(),
        stats,
    }
}

/// Percent-encodes a query parameter's value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// One series of an instant query: its labels, the sample's time (Unix
/// milliseconds) and value.
type Series = (BTreeMap<String, String>, u64, f64);

/// Runs one instant query; the result's series.
fn prometheus_query(
    ep: &watch::Endpoint,
    query: &str,
    timeout: Duration,
) -> std::result::Result<Vec<Series>, String> {
    let path = format!("/api/v1/query?query={}", encode(query));
    let (status, body) = watch::http_get(ep, &path, timeout)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {path} answered {status}, not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("GET {path} answered {status}: {}", v["error"]));
    }
    let mut out = Vec::new();
    for series in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = series["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let at = series["value"][0].as_f64().unwrap_or(0.0);
        let value = series["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        out.push((labels, (at * 1000.0) as u64, value));
    }
    Ok(out)
}

/// Every proxy Prometheus scrapes (`up`, or `up{selector}`), with the
/// canary-router figures of its last scrape.
pub fn read_prometheus(
    url: &str,
    selector: Option<&str>,
    timeout: Duration,
) -> Result<Vec<Reported>> {
    let ep = watch::parse_endpoint(url)?;
    let sel = selector.map(|s| format!(",{s}")).unwrap_or_default();
    let query = |q: String| {
        prometheus_query(&ep, &q, timeout).map_err(|e| CliError::usage(format!("{url}: {e}")))
    };
    let up = query(format!("up{{{}}}", sel.trim_start_matches(',')))?;
    let figures = query(format!(
        r#"{{__name__=~"canary_router_(config_revision|weight|ramp_step|ramp_aborted|guard_ejected)"{sel}}}"#
    ))?;
    let mut proxies: BTreeMap<String, Reported> = BTreeMap::new();
    let name = |labels: &BTreeMap<String, String>| {
        labels
            .get("instance")
            .cloned()
            .unwrap_or_else(|| format!("{labels:?}"))
    };
    for (labels, at, value) in up {
        let proxy = name(&labels);
        let stats = if value == 1.0 {
            Ok(Snapshot::default())
        } else {
            Err(format!("Prometheus cannot scrape it (up = {value})"))
        };
        proxies.insert(
            proxy.clone(),
            Reported {
                proxy,
                at_ms: at,
                stats,
            },
        );
    }
    for (labels, at, value) in figures {
        let proxy = name(&labels);
        let r = proxies.entry(proxy.clone()).or_insert_with(|| Reported {
            proxy,
            at_ms: at,
            stats: Ok(Snapshot::default()),
        });
        if let (Ok(snap), Some(metric)) = (&mut r.stats, labels.get("__name__")) {
            watch::add_sample(snap, metric, &labels, value.max(0.0) as u64);
            r.at_ms = r.at_ms.max(at);
        }
    }
    if proxies.is_empty() {
        return Err(CliError::rejected(format!(
            "{url}: Prometheus scrapes no target{}",
            selector
                .map(|s| format!(" matching {s}"))
                .unwrap_or_default()
        )));
    }
    Ok(proxies.into_values().collect())
}

/// The verdicts as text: a line per proxy, its problems below it.
pub fn render_text(verdicts: &[Verdict], exp: &Expected) -> String {
    let mut s = String::new();
    for v in verdicts {
        let mark = if v.ok { "ok  " } else { "FAIL" };
        let _ = writeln!(s, "{mark} {}", v.proxy);
        for p in &v.problems {
            let _ = writeln!(s, "       {p}");
        }
    }
    let failed = verdicts.iter().filter(|v| !v.ok).count();
    let _ = writeln!(
        s,
        "{} of {} proxies apply revision {} and its weights{}",
        verdicts.len() - failed,
        verdicts.len(),
        exp.revision,
        if failed == 0 { "" } else { "; not:" }
    );
    for v in verdicts.iter().filter(|v| !v.ok) {
        let _ = writeln!(s, "  {}", v.proxy);
    }
    s
}

/// Runs `verify`.
pub fn run(args: &Args) -> Result<()> {
    let exp = load_expected(&args.rules)?;
    let reported = match &args.prometheus {
        Some(url) => read_prometheus(url, args.selector.as_deref(), args.timeout)?,
        None => args
            .admin
            .iter()
            .map(|url| read_admin(url, args.timeout))
            .collect(),
    };
    let verdicts: Vec<Verdict> = reported
        .iter()
        .map(|r| check(&exp, r, args.tolerance))
        .collect();
    let text = match args.output {
        Output::Text => render_text(&verdicts, &exp),
        Output::Json => {
            serde_json::to_string_pretty(&serde_json::json!({
                "revision": exp.revision,
                "ok": verdicts.iter().all(|v| v.ok),
                "proxies": verdicts,
            }))
            .unwrap_or_default()
                + "\n"
        }
    };
    print!("{text}");
    if verdicts.iter().all(|v| v.ok) {
        Ok(())
    } else {
        Err(CliError::rejected(String::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "services": [{"hosts": ["backend"], "http": [{
                "name": "split",
                "route": [
                    {"destination": {"host": "backend", "subset": "v1"}, "weight": 90},
                    {"destination": {"host": "backend", "subset": "v2"}, "weight": 10}
                ],
                "ramp": {"canary": "v2", "start": "2026-12-07T10:00:00Z", "steps": [
                    {"setWeight": 10}, {"pause": {"duration": "10m"}}, {"setWeight": 50}
                ]}
            }]}]
        }))
        .unwrap()
    }

    const T: u64 = 1_796_637_600_000;

    fn expected() -> Expected {
        let p = canary_router::Plugin::from_bytes(&rules(), &Workload::default()).unwrap();
        expected_of(&p.rules.unwrap().set, revision(&rules()))
    }

    fn proxy(revision: u64, v1: u64, v2: u64, at_ms: u64) -> Reported {
        let mut snap = Snapshot::default();
        snap.counters.insert("config_revision".into(), revision);
        let s = "backend.default.svc.cluster.local".to_string();
        for (d, bp) in [("v1", v1), ("v2", v2)] {
            snap.tagged.insert(
                ("weight".into(), s.clone(), "split".into(), Some(d.into())),
                bp,
            );
        }
        Reported {
            proxy: "p".into(),
            at_ms,
            stats: Ok(snap),
        }
    }

    #[test]
    fn times_and_spans_for_people() {
        assert_eq!(rfc3339(T), "2026-12-07T10:00:00Z");
        assert_eq!(
            canary_router::domain::ramp::parse_time(&rfc3339(T + 61_000)),
            Some(T + 61_000)
        );
        assert_eq!(span(9_500), "9.5s");
        assert_eq!(span(252_000), "4m12s");
        assert_eq!(span(7_380_000), "2h03m");
    }

    #[test]
    fn a_proxy_passes_with_the_revision_and_the_weights_of_now() {
        let exp = expected();
        let tol = Duration::from_secs(2);
        assert!(check(&exp, &proxy(exp.revision, 9000, 1000, T + 60_000), tol).ok);
        assert!(check(&exp, &proxy(exp.revision, 5000, 5000, T + 600_000), tol).ok);
        // Near a boundary either side's weights pass; far from it only now's.
        assert!(check(&exp, &proxy(exp.revision, 9000, 1000, T + 601_000), tol).ok);
        let late = check(&exp, &proxy(exp.revision, 9000, 1000, T + 700_000), tol);
        assert!(!late.ok);
        assert_eq!(
            late.problems,
            ["backend.default.svc.cluster.local/split: v1 90.00%, v2 10.00% (expected v1 50.00%, v2 50.00%, step 3 of 3)"]
        );
        let other = check(&exp, &proxy(exp.revision + 1, 9000, 1000, T), tol);
        assert!(
            !other.ok && other.problems[0].starts_with("revision "),
            "{other:?}"
        );
        let unread = Reported {
            proxy: "q".into(),
            at_ms: T,
            stats: Err("connection refused".into()),
        };
        assert!(!check(&exp, &unread, tol).ok);
    }
}
