//! `canaryctl watch`: the live split per service, rule and destination, read
//! from the filter's stats on an Envoy admin endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bars;
use crate::error::{CliError, Result};

/// Show the live split from an Envoy admin endpoint.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Read canary-router's stats from an Envoy admin endpoint and show the split per \
service, rule and destination: the share of requests in the last interval and overall, refreshed \
every interval (like Kiali's edge labels, in the terminal). `/stats?filter=canary_router` is read by \
default; `--source prometheus` reads `/stats/prometheus` (which needs the stats_tags of the \
examples' envoy.yaml to carry service, rule and destination as labels). Plain HTTP only.",
    after_help = "\
Examples:
  canaryctl watch --admin http://127.0.0.1:15000
  kubectl port-forward deploy/frontend 15000 & canaryctl watch
  canaryctl watch --admin http://127.0.0.1:9901 --once            # one snapshot, for scripts
  canaryctl watch --admin http://127.0.0.1:9901 --once -o json

Exit codes: 0 done (--once, --count, or interrupted), 2 the admin endpoint cannot be read
(--once; the live view keeps retrying)."
)]
pub struct Args {
    /// Envoy admin address (an Istio sidecar's is 127.0.0.1:15000).
    #[arg(long, default_value = "http://127.0.0.1:15000", value_name = "URL")]
    pub admin: String,
    /// Refresh period: `1s`, `500ms`, `2.5s`, `1m`.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Print one snapshot (totals since Envoy started) and exit.
    #[arg(long)]
    pub once: bool,
    /// Stop after this many frames (the first shows totals only, the next ones the last interval too).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Which admin page to read.
    #[arg(long, value_enum, default_value_t = StatsSource::Stats)]
    pub source: StatsSource,
    /// Output: text (bars), or json (one object per snapshot, one per line).
    #[arg(short, long, value_enum, default_value_t = WatchOutput::Text)]
    pub output: WatchOutput,
    /// Timeout of one request to the admin endpoint.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// Which admin page `watch` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsSource {
    /// `/stats?filter=canary_router` (full stat names; works without stats_tags).
    Stats,
    /// `/stats/prometheus` (needs the service/rule/destination stats_tags).
    Prometheus,
}

/// How `watch` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchOutput {
    /// Bars for people.
    Text,
    /// JSON for scripts.
    Json,
}

/// Parses `1s`, `500ms`, `2.5s`, `1m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (like 1s, 500ms, 2.5s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unit must be ms, s or m")),
    };
    if !(0.01..=3600.0).contains(&secs) {
        return Err(format!("`{s}` is outside 10ms..=1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 client (plain HTTP, one request per connection).
// ---------------------------------------------------------------------------

/// `http://host:port/base`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host (a name or an IP; `[v6]` kept with brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix, without a trailing `/` (usually empty).
    pub base: String,
}

/// Parses the admin URL (`http://` may be left out; the port defaults to 80).
pub fn parse_endpoint(url: &str) -> Result<Endpoint> {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err(CliError::usage(format!(
            "{url}: only plain http:// is supported (use kubectl port-forward to reach a sidecar's admin port)"
        )));
    } else if url.contains("://") {
        return Err(CliError::usage(format!(
            "{url}: only http:// URLs are supported"
        )));
    } else {
        url
    };
    let (authority, base) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|a| a.find(']')) {
        let host = &authority[..end + 2];
        let port = authority[end + 2..].strip_prefix(':');
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| CliError::usage(format!("{url}: `{p}` is not a port")))?,
        None => 80,
    };
    if host.is_empty() {
        return Err(CliError::usage(format!("{url}: no host")));
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
        base: base.trim_end_matches('/').to_string(),
    })
}

/// GETs `path` and returns the status and the body (chunked bodies decoded).
pub fn http_get(
    ep: &Endpoint,
    path: &str,
    timeout: Duration,
) -> std::result::Result<(u16, Vec<u8>), String> {
    let host = ep.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (host, ep.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", ep.host))?
        .collect();
    let mut last = String::from("no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: canaryctl\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        ep.base, ep.host, ep.port
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::new();
    let deadline = Instant::now() + timeout * 4;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) => return Err(format!("reading the response: {e}")),
        }
        if Instant::now() > deadline {
            return Err("the response took too long".into());
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::result::Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response has no end of headers")?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_string();
    let body = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP response: `{status_line}`"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) => body.get(..n).unwrap_or(body).to_vec(),
            None => body.to_vec(),
        }
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunked body ends early")?;
        let size_line = String::from_utf8_lossy(body.get(..eol).unwrap_or_default()).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{size_line}`"))?;
        body = body.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("a chunk ends early")?);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

// ---------------------------------------------------------------------------
// Stats.
// ---------------------------------------------------------------------------

/// The filter's stats at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Requests per (service, rule, destination).
    pub requests: BTreeMap<(String, String, String), u64>,
    /// The other counters and gauges, by their name after `canary_router.`
    /// (`passthrough`, `rules.reload_success`, `rules_version`...).
    pub counters: BTreeMap<String, u64>,
    /// Destinations a guard ejected (its gauge reads 1).
    pub ejected: std::collections::BTreeSet<(String, String, String)>,
    /// The stats of a rule or a destination other than its request counter
    /// (`weight`, `ramp_step`, `guard_window_p90_ms`...), by kind, in
    /// Prometheus' spelling, and tags.
    pub tagged: BTreeMap<Tagged, u64>,
}

/// A stat's kind (`weight`, `ramp_step`...), service, rule and, for a
/// destination's, the destination.
pub type Tagged = (String, String, String, Option<String>);

const KNOWN: [&str; 9] = [
    "config_revision",
    "passthrough",
    "spoofed_header_removed",
    "host_call_errors",
    "config_rejected",
    "rules.reload_success",
    "rules.reload_failure",
    "rules.fetch_not_modified",
    "rules_version",
];

/// Parses `/stats` text: `wasmcustom.canary_router.requests.service=S;.rule=R;.destination=D;: N`
/// (the lines as the test harness reads them, [`envoy_runner::Stats`]).
pub fn parse_stats_text(text: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    for (name, &value) in &envoy_runner::Stats::parse(text).values {
        let name = name.trim();
        let name = name.strip_prefix("wasmcustom.").unwrap_or(name);
        let Some(name) = name.strip_prefix("canary_router.") else {
            continue;
        };
        if let Some(tags) = name.strip_prefix("requests.") {
            if let Some(key) = parse_tags(tags) {
                *snap.requests.entry(key).or_default() += value;
            }
        } else if let Some((kind, tags)) = name.split_once(".service=") {
            let kind = kind.replace('.', "_");
            if let Some((service, rest)) = tags.split_once(";.rule=") {
                let (rule, destination) = match rest.split_once(";.destination=") {
                    Some((r, d)) => (r, d.strip_suffix(';').map(str::to_string)),
                    None => (rest.strip_suffix(';').unwrap_or(rest), None),
                };
                add_tagged(&mut snap, kind, service, rule, destination, value);
            }
        } else {
            *snap.counters.entry(name.to_string()).or_default() += value;
        }
    }
    snap
}

/// Files a rule's or a destination's stat; a guard's `ejected` gauge at 1
/// also marks the destination ejected.
fn add_tagged(
    snap: &mut Snapshot,
    kind: String,
    service: &str,
    rule: &str,
    destination: Option<String>,
    value: u64,
) {
    if let (true, Some(d), 1..) = (kind == "guard_ejected", &destination, value) {
        snap.ejected
            .insert((service.to_string(), rule.to_string(), d.clone()));
    }
    snap.tagged.insert(
        (kind, service.to_string(), rule.to_string(), destination),
        value,
    );
}

/// `service=S;.rule=R;.destination=D;` → (S, R, D).
fn parse_tags(tags: &str) -> Option<(String, String, String)> {
    let rest = tags.strip_prefix("service=")?;
    let (service, rest) = rest.split_once(";.rule=")?;
    let (rule, rest) = rest.split_once(";.destination=")?;
    let destination = rest.strip_suffix(';')?;
    Some((
        service.to_string(),
        rule.to_string(),
        destination.to_string(),
    ))
}

/// Parses `/stats/prometheus`: `canary_router_requests{service="S",rule="R",destination="D"} N`
/// (the samples as the test harness reads them, [`envoy_runner::parse_prometheus`]).
pub fn parse_prometheus(text: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    for sample in envoy_runner::parse_prometheus(text) {
        let value = sample.value.max(0.0) as u64;
        add_sample(&mut snap, &sample.name, &sample.labels, value);
    }
    snap
}

/// Files one Prometheus sample (`canary_router_...` with its labels).
pub fn add_sample(snap: &mut Snapshot, name: &str, labels: &BTreeMap<String, String>, value: u64) {
    let Some(short) = name.strip_prefix("canary_router_") else {
        return;
    };
    let (service, rule) = (labels.get("service"), labels.get("rule"));
    if let (Some(s), Some(r)) = (service, rule) {
        let destination = labels.get("destination").cloned();
        if let ("requests", Some(d)) = (short, &destination) {
            *snap
                .requests
                .entry((s.clone(), r.clone(), d.clone()))
                .or_default() += value;
        } else {
            add_tagged(snap, short.to_string(), s, r, destination, value);
        }
    } else if let Some(known) = KNOWN.iter().find(|k| k.replace('.', "_") == short) {
        *snap.counters.entry((*known).to_string()).or_default() += value;
    }
}

/// Reads a snapshot from the admin endpoint.
pub fn fetch(
    ep: &Endpoint,
    source: StatsSource,
    timeout: Duration,
) -> std::result::Result<Snapshot, String> {
    let path = match source {
        StatsSource::Stats => "/stats?filter=canary_router",
        StatsSource::Prometheus => "/stats/prometheus",
    };
    let (status, body) = http_get(ep, path, timeout)?;
    if status != 200 {
        return Err(format!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let text = String::from_utf8_lossy(&body);
    Ok(match source {
        StatsSource::Stats => parse_stats_text(&text),
        StatsSource::Prometheus => parse_prometheus(&text),
    })
}

// ---------------------------------------------------------------------------
// Views.
// ---------------------------------------------------------------------------

/// One destination in a view.
#[derive(Debug, Serialize)]
pub struct DestView {
    /// The destination label (subset or cluster).
    pub destination: String,
    /// Requests since Envoy started.
    pub total: u64,
    /// Share of its rule's requests since Envoy started.
    pub share: f64,
    /// Requests in the last interval (absent in a single snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Share of its rule's requests in the last interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_share: Option<f64>,
    /// Its guard ejected it (`canary_router_guard_ejected` is 1): it gets
    /// no new requests until the rule set changes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ejected: bool,
    /// Its share now, in basis points (`canary_router_weight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_bp: Option<u64>,
    /// A guard's window of it (a guarded destination, or a baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowView>,
}

/// A guard's window of one destination, as the proxy judged it last.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WindowView {
    /// Responses in the window.
    pub requests: u64,
    /// Errors among them.
    pub errors: u64,
    /// Their p90 response time, in milliseconds.
    pub p90_ms: u64,
}

/// A rule's ramp.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RampView {
    /// Steps done (Argo's `currentStepIndex`).
    pub step: u64,
    /// A guard ejected the canary and stopped the ramp.
    pub aborted: bool,
    /// Seconds to the next step, if one is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step_in_seconds: Option<f64>,
}

/// One rule in a view.
#[derive(Debug, Serialize)]
pub struct RuleView {
    /// The rule's name.
    pub rule: String,
    /// Requests since Envoy started.
    pub total: u64,
    /// Share of its service's requests since Envoy started.
    pub share: f64,
    /// Requests in the last interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// The destinations.
    pub destinations: Vec<DestView>,
    /// Its ramp, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampView>,
}

/// One service in a view.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    /// The service (its first host, expanded).
    pub service: String,
    /// Requests since Envoy started.
    pub total: u64,
    /// Requests in the last interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// The rules.
    pub rules: Vec<RuleView>,
}

/// What `watch` shows.
#[derive(Debug, Serialize)]
pub struct View {
    /// The admin endpoint.
    pub admin: String,
    /// Length of the last interval, in seconds (absent in a single snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Per service.
    pub services: Vec<ServiceView>,
    /// The other counters (`passthrough`, `rules.reload_success`, ...).
    pub counters: BTreeMap<String, u64>,
}

/// Builds the view of `now`, with the last interval from `prev` if given.
pub fn view(admin: &str, now: &Snapshot, prev: Option<(&Snapshot, Duration)>) -> View {
    let delta = |k: &(String, String, String), v: u64| {
        prev.map(|(p, _)| v.saturating_sub(p.requests.get(k).copied().unwrap_or(0)))
    };
    let mut services: Vec<ServiceView> = Vec::new();
    for (key, &total) in &now.requests {
        let (s, r, d) = key;
        if services.last().is_none_or(|sv| &sv.service != s) {
            services.push(ServiceView {
                service: s.clone(),
                total: 0,
                interval: prev.map(|_| 0),
                rules: Vec::new(),
            });
        }
        let Some(sv) = services.last_mut() else {
            continue;
        };
        if sv.rules.last().is_none_or(|rv| &rv.rule != r) {
            let rule_stat = |kind: &str| {
                now.tagged
                    .get(&(kind.to_string(), s.clone(), r.clone(), None))
                    .copied()
            };
            let ramp = rule_stat("ramp_step").map(|step| RampView {
                step,
                aborted: rule_stat("ramp_aborted") == Some(1),
                next_step_in_seconds: rule_stat("ramp_next_step_ms")
                    .filter(|at| *at > 0)
                    .map(|at| at.saturating_sub(now_ms()) as f64 / 1000.0),
            });
            sv.rules.push(RuleView {
                rule: r.clone(),
                total: 0,
                share: 0.0,
                interval: prev.map(|_| 0),
                destinations: Vec::new(),
                ramp,
            });
        }
        let Some(rv) = sv.rules.last_mut() else {
            continue;
        };
        let d_int = delta(key, total);
        rv.total += total;
        rv.interval = rv.interval.map(|i| i + d_int.unwrap_or(0));
        sv.total += total;
        sv.interval = sv.interval.map(|i| i + d_int.unwrap_or(0));
        let dest_stat = |kind: &str| {
            now.tagged
                .get(&(kind.to_string(), s.clone(), r.clone(), Some(d.clone())))
                .copied()
        };
        let window = dest_stat("guard_window_requests").map(|requests| WindowView {
            requests,
            errors: dest_stat("guard_window_errors").unwrap_or(0),
            p90_ms: dest_stat("guard_window_p90_ms").unwrap_or(0),
        });
        rv.destinations.push(DestView {
            destination: d.clone(),
            total,
            share: 0.0,
            interval: d_int,
            interval_share: None,
            ejected: now.ejected.contains(key),
            weight_bp: dest_stat("weight"),
            window,
        });
    }
    for sv in &mut services {
        for rv in &mut sv.rules {
            rv.share = bars::share(rv.total, sv.total);
            for dv in &mut rv.destinations {
                dv.share = bars::share(dv.total, rv.total);
                dv.interval_share = match (dv.interval, rv.interval) {
                    (Some(i), Some(ri)) => Some(bars::share(i, ri)),
                    _ => None,
                };
            }
        }
    }
    View {
        admin: admin.to_string(),
        interval_seconds: prev.map(|(_, d)| d.as_secs_f64()),
        services,
        counters: now.counters.clone(),
    }
}

fn pct(x: f64) -> String {
    format!("{:6.2}%", 100.0 * x)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The view as text, with bars.
pub fn render_text(v: &View) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "canary-router split at {}", v.admin);
    if let Some(secs) = v.interval_seconds {
        let _ = writeln!(
            s,
            "bars: share of each rule's requests in the last {secs:.1}s (overall since Envoy started on the right; for an idle rule, overall)"
        );
    } else {
        let _ = writeln!(s, "bars: share of each rule's requests since Envoy started");
    }
    if v.services.is_empty() {
        let _ = writeln!(s, "\n(no request has been routed by a rule yet)");
    }
    for sv in &v.services {
        let _ = write!(s, "\nservice {}  total {}", sv.service, sv.total);
        if let (Some(i), Some(secs)) = (sv.interval, v.interval_seconds) {
            let rate = if secs > 0.0 { i as f64 / secs } else { 0.0 };
            let _ = write!(s, "  last interval {i} ({rate:.1}/s)");
        }
        s.push('\n');
        for rv in &sv.rules {
            let _ = writeln!(
                s,
                "  rule {}  {} requests, {} of the service",
                rv.rule,
                rv.total,
                pct(rv.share).trim()
            );
            if let Some(ramp) = rv.ramp {
                let _ = match (ramp.aborted, ramp.next_step_in_seconds) {
                    (true, _) => writeln!(
                        s,
                        "    ramp STOPPED at step {}: a guard ejected the canary (until the rule set changes)",
                        ramp.step
                    ),
                    (false, Some(secs)) => writeln!(
                        s,
                        "    ramp at step {}, next step in {}",
                        ramp.step,
                        crate::verify::span((secs * 1000.0) as u64)
                    ),
                    (false, None) => writeln!(s, "    ramp at step {}, the last", ramp.step),
                };
            }
            let width = rv
                .destinations
                .iter()
                .map(|d| d.destination.chars().count())
                .max()
                .unwrap_or(0);
            for dv in &rv.destinations {
                // A rule idle in the last interval shows its overall split.
                let idle = rv.interval == Some(0);
                let shown = match dv.interval_share {
                    Some(share) if !idle => share,
                    _ => dv.share,
                };
                let _ = write!(
                    s,
                    "    {:<width$}  {} ",
                    dv.destination,
                    bars::bar(shown, bars::WIDTH)
                );
                let mut ejected = String::new();
                // The weight in force, for a rule whose weights move (a ramp).
                if let (Some(bp), Some(_)) = (dv.weight_bp, rv.ramp) {
                    let _ = write!(ejected, "  weight {}.{:02}%", bp / 100, bp % 100);
                }
                if let Some(w) = dv.window {
                    let _ = write!(
                        ejected,
                        "  window {}/{} errors ({}), p90 {} ms",
                        w.errors,
                        w.requests,
                        pct(bars::share(w.errors, w.requests)).trim(),
                        w.p90_ms
                    );
                }
                ejected.push_str(match (dv.ejected, dv.window.is_some()) {
                    (true, _) => "  EJECTED by its guard",
                    (false, true) => "  not ejected",
                    (false, false) => "",
                });
                match (dv.interval, dv.interval_share) {
                    (Some(i), Some(is)) => {
                        let interval = if idle { "      -".to_string() } else { pct(is) };
                        let _ = writeln!(
                            s,
                            "{interval} {i:>8}   overall {} {:>10}{ejected}",
                            pct(dv.share),
                            dv.total
                        );
                    }
                    _ => {
                        let _ = writeln!(s, "{} {:>10}{ejected}", pct(dv.share), dv.total);
                    }
                }
            }
        }
    }
    let c = |k: &str| v.counters.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "\nno rule matched (passthrough) {}  client route header removed {}  host call errors {}",
        c("passthrough"),
        c("spoofed_header_removed"),
        c("host_call_errors"),
    );
    let _ = writeln!(
        s,
        "rules version {}  config rejected {}  reloads ok {} failed {} not modified {}",
        c("rules_version"),
        c("config_rejected"),
        c("rules.reload_success"),
        c("rules.reload_failure"),
        c("rules.fetch_not_modified"),
    );
    s
}

fn print_view(v: &View, output: WatchOutput, clear: bool) -> Result<()> {
    let text = match output {
        WatchOutput::Json => serde_json::to_string(v)
            .map(|j| j + "\n")
            .map_err(|e| CliError::usage(e.to_string()))?,
        WatchOutput::Text => render_text(v),
    };
    let mut out = std::io::stdout().lock();
    let clear = if clear { "\x1b[H\x1b[2J" } else { "" };
    let _ = write!(out, "{clear}{text}");
    if !clear.is_empty() || output == WatchOutput::Text {
        let _ = writeln!(out);
    }
    let _ = out.flush();
    Ok(())
}

/// Runs `watch`.
pub fn run(args: &Args) -> Result<()> {
    let ep = parse_endpoint(&args.admin)?;
    let admin = args.admin.clone();
    if args.once {
        let snap = fetch(&ep, args.source, args.timeout)
            .map_err(|e| CliError::usage(format!("{admin}: {e}")))?;
        return print_view(&view(&admin, &snap, None), args.output, false);
    }
    let clear = args.output == WatchOutput::Text && std::io::stdout().is_terminal();
    let mut prev: Option<(Snapshot, Instant)> = None;
    let mut shown = 0u64;
    loop {
        let started = Instant::now();
        match fetch(&ep, args.source, args.timeout) {
            Ok(snap) => {
                let v = view(
                    &admin,
                    &snap,
                    prev.as_ref()
                        .map(|(p, at)| (p, started.duration_since(*at))),
                );
                // The first frame has no interval yet: it shows the totals.
                print_view(&v, args.output, clear)?;
                shown += 1;
                prev = Some((snap, started));
            }
            Err(e) => {
                eprintln!("error: {admin}: {e} (retrying)");
                prev = None;
            }
        }
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        std::thread::sleep(args.interval.saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn parses_endpoints() {
        let ep = parse_endpoint("http://127.0.0.1:15000").unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.port, ep.base.as_str()),
            ("127.0.0.1", 15000, "")
        );
        let ep = parse_endpoint("localhost:9901/admin/").unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.port, ep.base.as_str()),
            ("localhost", 9901, "/admin")
        );
        let ep = parse_endpoint("http://[::1]:9901").unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("[::1]", 9901));
        assert!(parse_endpoint("https://x:1").is_err());
        assert!(parse_endpoint("http://x:port").is_err());
    }

    #[test]
    fn decodes_chunked_responses() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nab: \r\n2\r\n12\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (200, b"ab: 12".to_vec()));
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nnoXX";
        assert_eq!(parse_response(raw).unwrap(), (404, b"no".to_vec()));
    }

    #[test]
    fn parses_stats_text_and_prometheus_alike() {
        let text = "\
wasmcustom.canary_router.host_call_errors: 0
wasmcustom.canary_router.passthrough: 3
wasmcustom.canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v1;: 90
wasmcustom.canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;: 10
wasmcustom.canary_router.rules.reload_success: 2
wasmcustom.canary_router.rules_version: 77
wasmcustom.canary_router.guard.ejected.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;: 1
wasmcustom.canary_router.guard.errors.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;: 20
";
        let prom = r#"
# TYPE canary_router_requests counter
canary_router_requests{service="backend.default.svc.cluster.local",rule="split",destination="v1"} 90
canary_router_requests{service="backend.default.svc.cluster.local",rule="split",destination="v2"} 10
canary_router_passthrough{} 3
canary_router_host_call_errors{} 0
canary_router_rules_reload_success{} 2
# TYPE canary_router_rules_version gauge
canary_router_rules_version{} 77
canary_router_guard_ejected{service="backend.default.svc.cluster.local",rule="split",destination="v2"} 1
canary_router_guard_errors{service="backend.default.svc.cluster.local",rule="split",destination="v2"} 20
envoy_cluster_upstream_rq{envoy_cluster_name="x"} 5
"#;
        let a = parse_stats_text(text);
        let b = parse_prometheus(prom);
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.counters, b.counters);
        assert_eq!(a.ejected, b.ejected);
        assert_eq!(a.ejected.len(), 1, "v2 is ejected");
        assert!(!a.counters.keys().any(|k| k.starts_with("guard")));
        let v = view("x", &a, None);
        assert!(v.services[0].rules[0].destinations[1].ejected);
        assert!(render_text(&v).contains("EJECTED by its guard"));
        assert_eq!(v.services.len(), 1);
        let rule = &v.services[0].rules[0];
        assert_eq!(rule.total, 100);
        assert!((rule.destinations[0].share - 0.9).abs() < 1e-9);
        assert_eq!(a.counters["rules_version"], 77);
    }

    #[test]
    fn views_show_the_last_interval() {
        let k = |d: &str| ("s".to_string(), "r".to_string(), d.to_string());
        let mut before = Snapshot::default();
        before.requests.insert(k("v1"), 100);
        before.requests.insert(k("v2"), 0);
        let mut after = before.clone();
        after.requests.insert(k("v1"), 110);
        after.requests.insert(k("v2"), 30);
        let v = view("x", &after, Some((&before, Duration::from_secs(1))));
        let r = &v.services[0].rules[0];
        assert_eq!(r.interval, Some(40));
        assert_eq!(r.destinations[1].interval, Some(30));
        assert!((r.destinations[1].interval_share.unwrap() - 0.75).abs() < 1e-9);
        assert!(render_text(&v).contains("75.00%"));
    }
}
