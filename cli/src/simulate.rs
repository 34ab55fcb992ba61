//! `canaryctl simulate`: requests through the compiled filter (the release
//! `.wasm`, run by the test harness's in-process proxy-wasm host), counted
//! per destination.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use canary_router::domain::rules::{StickyKey, Via};
use canary_router::domain::stats;
use canary_router::{Outcome, RequestView, RuleSet, Workload};
use serde::Serialize;
use wasm_host::{LogLevel, Module, Vm, VmOptions};

use crate::bars;
use crate::error::{CliError, Result};
use crate::input::{self, Config};
use crate::summary::{self, Identity, Judged};

/// Send requests through the compiled filter and count where they go.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Send requests through the compiled filter (the release .wasm, run in-process by the \
test harness's proxy-wasm host, exactly as Envoy would run it) and print, per destination, the share \
of requests as a bar chart with exact counts and the share the weights ask for. \
With --sticky-keys N, N distinct values of the matched rule's sticky key (header, cookie or source \
IP) are sent, each twice, and the keys per destination are counted; with --against OLD, the same keys \
go through the old rules too and the keys that moved are counted, from where to where. \
With --browsers N (a rule sticky by a cookie it issues, `sticky.setCookie`), N first-time browsers \
each send a request without the cookie, keep the Set-Cookie the filter answers with, and come back \
with it (beside their other cookies); browsers per destination are counted, and with --against OLD \
their cookies go through the old rules too.\n\n\
The module is --wasm, else $CANARY_ROUTER_WASM, else target/wasm/wasm32-wasip1/release/canary_router.wasm \
under the current directory or the canary-router checkout canaryctl was built from; build it with\n  \
CARGO_TARGET_DIR=target/wasm cargo build -p canary-router --release --target wasm32-wasip1",
    after_help = "\
Examples:
  canaryctl simulate examples/weighted/rules.json -n 100000
  canaryctl simulate examples/header-override/rules.json -H 'canary: canary-tester'
  canaryctl simulate examples/source-labels/rules.json --labels app=frontend,version=v2 --namespace default
  canaryctl simulate examples/sticky/rules.json --sticky-keys 1000
  canaryctl simulate examples/weighted/rules-50-50.json --sticky-keys 1000 --against examples/weighted/rules.json
  canaryctl simulate examples/sticky/rules-cookie.json --browsers 1000
  canaryctl simulate examples/sticky/rules-cookie-50-50.json --browsers 1000 --against examples/sticky/rules-cookie.json

Exit codes: 0 done, 1 the rules are rejected (by the parser or the compiled filter) or the request
matches nothing, 2 a file or the .wasm cannot be read."
)]
pub struct Args {
    /// The rules (anything `validate` reads; the first configuration in it).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Number of requests.
    #[arg(
        short = 'n',
        long = "requests",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub requests: u64,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header, value_name = "NAME: VALUE")]
    pub headers: Vec<(String, String)>,
    #[command(flatten)]
    pub identity: Identity,
    /// `:authority` of the requests (default: the first service's first host).
    #[arg(long, value_name = "HOST")]
    pub authority: Option<String>,
    /// `:path` of the requests (query string included).
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub path: String,
    /// `:method` of the requests.
    #[arg(long, default_value = "GET", value_name = "METHOD")]
    pub method: String,
    /// `:scheme` of the requests.
    #[arg(long, default_value = "http", value_name = "SCHEME")]
    pub scheme: String,
    /// Send N distinct values of the matched rule's sticky key (each twice) and count keys per destination.
    #[arg(long, value_name = "N")]
    pub sticky_keys: Option<u64>,
    /// Model N first-time browsers of a rule that issues its cookie: a visit without it, then one with the cookie issued.
    #[arg(long, value_name = "N", conflicts_with = "sticky_keys")]
    pub browsers: Option<u64>,
    /// Older rules: count the sticky keys that move between them and FILE (implies --sticky-keys 1000).
    #[arg(long, value_name = "OLD")]
    pub against: Option<PathBuf>,
    /// Seed of the host's randomness (default: from the clock; printed so a run can be repeated).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// The port the requests arrive on (the listener's, Envoy's
    /// `destination.port`): destinations without a port and `match[].port`
    /// use it.
    #[arg(long, default_value_t = 80, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The moment to simulate, RFC 3339 in UTC (`2026-12-07T10:15:00Z`):
    /// a rule's `ramp` is at its step of that moment (default: now).
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<u64>,
    /// The filter module to run.
    #[arg(long, value_name = "WASM")]
    pub wasm: Option<PathBuf>,
    /// Output: text (bars), or json.
    #[arg(short, long, value_enum, default_value_t = SimOutput::Text)]
    pub output: SimOutput,
}

/// How `simulate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimOutput {
    /// Bars for people.
    Text,
    /// JSON for scripts.
    Json,
}

/// Parses `--at`: an RFC 3339 time in UTC, as the filter parses a ramp's `start`.
pub fn parse_at(s: &str) -> std::result::Result<u64, String> {
    canary_router::domain::ramp::parse_time(s)
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time in UTC, e.g. 2026-12-07T10:15:00Z"))
}

/// Parses `name: value`.
pub fn parse_header(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| format!("`{s}` is not `name: value`"))?;
    Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
}

/// The compiled module to run.
pub fn wasm_path(given: Option<&Path>) -> Result<PathBuf> {
    const RELATIVE: &str = "target/wasm/wasm32-wasip1/release/canary_router.wasm";
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CANARY_ROUTER_WASM").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let here = PathBuf::from(RELATIVE);
    if here.is_file() {
        return Ok(here);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(RELATIVE);
    if built_from.is_file() {
        return Ok(built_from);
    }
    Err(CliError::usage(format!(
        "no compiled filter: give --wasm, set CANARY_ROUTER_WASM, or build it with\n  \
         CARGO_TARGET_DIR=target/wasm cargo build -p canary-router --release --target wasm32-wasip1\n\
         (looked for {RELATIVE} here and in {})",
        built_from.display()
    )))
}

/// The headers of one simulated request, as the native decision sees them.
struct Req<'a> {
    headers: &'a [(String, String)],
    source: Option<&'a str>,
    port: u16,
}

impl RequestView for Req<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes())
    }
    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_bytes())
            .peekable();
        values.peek()?;
        Some(values.any(f))
    }
    fn source_address(&self) -> Option<&[u8]> {
        self.source.map(str::as_bytes)
    }
    fn local_port(&self) -> Option<u16> {
        Some(self.port)
    }
}

/// Rules loaded twice: judged natively (for names, weights and the sticky
/// key) and configured into a VM of the compiled filter.
struct Loaded {
    cfg: Config,
    judged: Judged,
    set: RuleSet,
    workload: Workload,
    /// The port the requests arrive on (`--port`).
    port: u16,
}

fn load_rules(path: &Path, identity: &Identity, port: u16) -> Result<Loaded> {
    let src = input::read_source(path)?;
    let loaded = input::load(&src)?;
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    let Some(cfg) = loaded.configs.into_iter().next() else {
        return Err(CliError::rejected(format!(
            "{}: no canary-router configuration found",
            src.name
        )));
    };
    let workload = identity.workload(cfg.node.as_ref());
    let judged = summary::judge(&cfg, &workload, None).map_err(CliError::rejected)?;
    let Some((set, _)) = judged.rules.clone() else {
        return Err(CliError::rejected(format!(
            "{}: no inline rules (they are polled from a ruleSource): simulate the rule file itself",
            cfg.origin
        )));
    };
    Ok(Loaded {
        cfg,
        judged,
        set,
        workload,
        port,
    })
}

fn node_metadata(w: &Workload) -> serde_json::Value {
    let mut meta = serde_json::Map::new();
    if let Some(ns) = &w.namespace {
        meta.insert("NAMESPACE".into(), ns.clone().into());
    }
    if !w.labels.is_empty() {
        let labels: serde_json::Map<String, serde_json::Value> = w
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        meta.insert("LABELS".into(), labels.into());
    }
    meta.into()
}

fn start_vm(module: &Module, rules: &Loaded, seed: u64, at_ms: u64) -> Result<Vm> {
    let mut vm = Vm::new(
        module,
        VmOptions {
            // The filter walks its ramps by this clock.
            clock: wasm_host::Clock::at(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms),
            ),
            node_metadata: node_metadata(&rules.workload),
            random_seed: seed,
            log_level: LogLevel::Warn,
            root_id: "canary-router".into(),
            vm_id: "canary-router".into(),
            plugin_name: "canary-router".into(),
            ..VmOptions::default()
        },
    )
    .map_err(|e| CliError::rejected(format!("the compiled filter failed to start: {e}")))?;
    // Envoy answers an int64 attribute as 8 little-endian bytes.
    vm.set_property(
        &["destination", "port"],
        &i64::from(rules.port).to_le_bytes(),
    );
    let ok = vm
        .configure(&rules.cfg.bytes)
        .map_err(|e| CliError::rejected(format!("the compiled filter failed: {e}")))?;
    if !ok {
        let logs: Vec<String> = vm
            .logs()
            .iter()
            .map(|(l, m)| format!("  [{l}] {m}"))
            .collect();
        return Err(CliError::rejected(format!(
            "{}: the compiled filter rejected the configuration:\n{}",
            rules.cfg.origin,
            logs.join("\n")
        )));
    }
    Ok(vm)
}

/// The filter's counter of requests it left to Envoy's routing.
const PASSTHROUGH: &str = "canary_router.passthrough";

/// Where one request is sent: the route header, and the cluster a request
/// routed without it goes to.
struct Target<'a> {
    route_header: &'a str,
    /// The `defaultDestination` of the requests' service, if it has one.
    default_cluster: Option<String>,
}

impl<'a> Target<'a> {
    fn of(rules: &'a Loaded, headers: &[(String, String)]) -> Self {
        Target {
            route_header: &rules.judged.settings.route_header,
            default_cluster: default_cluster_of(&rules.set, headers, rules.port),
        }
    }
}

/// The cluster of the `defaultDestination` of the service these requests
/// are for: the filter leaves requests it routes there without a header.
fn default_cluster_of(set: &RuleSet, headers: &[(String, String)], port: u16) -> Option<String> {
    let req = Req {
        headers,
        source: None,
        port,
    };
    let service = match set.decide(&req, || 0) {
        Outcome::Routed(d) => d.service,
        Outcome::NoRule { service } => service,
        Outcome::NoService => return None,
    };
    set.services()
        .get(service)?
        .rules
        .iter()
        .flat_map(|r| set.dests(&r.route))
        .find(|d| d.via == Via::DefaultRoute)
        .map(|d| d.cluster.with_port(port))
}

/// Sends one request; returns the cluster the filter chose, if any: the
/// route header's, or, when it wrote none but counted the request as
/// routed, the service's `defaultDestination`.
fn send(vm: &mut Vm, headers: &[(String, String)], to: &Target<'_>) -> Result<Option<String>> {
    send_full(vm, headers, to).map(|(cluster, _)| cluster)
}

/// [`send`], and the `Set-Cookie` values of the response.
fn send_full(
    vm: &mut Vm,
    headers: &[(String, String)],
    to: &Target<'_>,
) -> Result<(Option<String>, Vec<String>)> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let fail =
        |e: wasm_host::HostError| CliError::rejected(format!("the compiled filter failed: {e}"));
    let passed_before = vm.metric(PASSTHROUGH).unwrap_or(0);
    let r = vm.request(&pairs).map_err(fail)?;
    let cluster = match r.header(to.route_header) {
        Some(c) => Some(c.to_string()),
        None if vm.metric(PASSTHROUGH).unwrap_or(0) == passed_before => to.default_cluster.clone(),
        None => None,
    };
    let mut set_cookies = Vec::new();
    if r.forwarded() {
        let resp = vm.respond(&r, &[(":status", "200")]).map_err(fail)?;
        set_cookies = resp.headers.get_all("set-cookie");
    } else {
        vm.close(&r).map_err(fail)?;
    }
    Ok((cluster, set_cookies))
}

/// The `name=value` the browser sends back, from the `Set-Cookie` values of
/// a response: the one for cookie `name`, if the filter issued it.
fn issued_cookie(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let pair = c.split(';').next()?.trim();
        (pair.split_once('=')?.0 == name).then(|| pair.to_string())
    })
}

/// The headers with `cookie` added to the request's `cookie` header (after
/// the cookies it already has, as a browser adds one).
fn with_cookie(base: &[(String, String)], cookie: &str) -> Vec<(String, String)> {
    let mut h = base.to_vec();
    match h.iter_mut().find(|(k, _)| k == "cookie") {
        Some((_, v)) => {
            v.push_str("; ");
            v.push_str(cookie);
        }
        None => h.push(("cookie".into(), cookie.to_string())),
    }
    h
}

/// One destination's result.
#[derive(Debug, Serialize)]
pub struct DestResult {
    /// The destination label (subset, or cluster).
    pub destination: String,
    /// The Envoy cluster.
    pub cluster: String,
    /// Whether the destination names no port (the cluster's port is the
    /// request's, `--port`, given by the filter or by the glue's route).
    pub request_port: bool,
    /// Requests (or keys, in sticky mode) that went there.
    pub count: u64,
    /// `count` over all requests (keys) sent.
    pub share: f64,
    /// The share the weights ask for, within the rule.
    pub expected: f64,
}

/// One rule's result.
#[derive(Debug, Serialize)]
pub struct RuleResult {
    /// The service.
    pub service: String,
    /// The rule.
    pub rule: String,
    /// Requests (keys) the rule routed.
    pub count: u64,
    /// Its destinations.
    pub destinations: Vec<DestResult>,
}

/// What `simulate` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Requests sent (keys, in sticky mode).
    pub sent: u64,
    /// What was counted: `requests` or `keys`.
    pub unit: &'static str,
    /// Requests (keys) that no rule routed (Envoy's default route takes them).
    pub unrouted: u64,
    /// Per rule that routed anything.
    pub rules: Vec<RuleResult>,
    /// Sticky mode: keys whose two requests went to different destinations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unstable_keys: Option<u64>,
    /// `--browsers`: what the filter's cookie did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Cookies>,
    /// `--against`: the comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Against>,
    /// The seed of the host's randomness.
    pub seed: u64,
    /// The moment simulated (Unix milliseconds), and each ramp's step then.
    pub at_ms: u64,
    /// The rules' ramps at that moment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ramps: Vec<RampAt>,
}

/// A rule's ramp at the moment simulated.
#[derive(Debug, Serialize)]
pub struct RampAt {
    /// The service.
    pub service: String,
    /// The rule.
    pub rule: String,
    /// The canary.
    pub canary: String,
    /// Steps done (Argo's `currentStepIndex`).
    pub steps_done: u32,
    /// Steps in all.
    pub steps: u32,
    /// The canary's share in basis points (`None`: the route's own weights, before the ramp).
    pub canary_bp: Option<u32>,
    /// When the next step is due (Unix milliseconds).
    pub next_step_ms: Option<u64>,
}

/// Each ramp of `set` at `at_ms`.
fn ramps_at(set: &RuleSet, at_ms: u64) -> Vec<RampAt> {
    let mut out = Vec::new();
    for s in set.services() {
        for r in &s.rules {
            let Some(ramp) = r.route.ramp() else { continue };
            let i = ramp.schedule.phase_at(at_ms);
            let phase = ramp.schedule.phases.get(i).copied();
            out.push(RampAt {
                service: s.name.to_string(),
                rule: r.name.to_string(),
                canary: set
                    .dests(&r.route)
                    .nth(ramp.schedule.canary)
                    .map(|d| d.label.to_string())
                    .unwrap_or_default(),
                steps_done: phase.map_or(0, |p| p.steps_done),
                steps: ramp.schedule.steps,
                canary_bp: phase.and_then(|p| p.canary_bp),
                next_step_ms: ramp.schedule.next_at(i),
            });
        }
    }
    out
}

/// The cookies of `--browsers`.
#[derive(Debug, Serialize)]
pub struct Cookies {
    /// The cookie's name.
    pub name: String,
    /// First visits answered with the cookie.
    pub issued: u64,
    /// Return visits (the cookie brought back) answered with a new one.
    pub reissued: u64,
    /// The attributes of the cookie issued (`; Max-Age=...; Path=/; ...`).
    pub attributes: String,
}

/// Sticky keys that moved between two rule sets.
#[derive(Debug, Serialize)]
pub struct Against {
    /// The old rules.
    pub file: String,
    /// Keys compared.
    pub keys: u64,
    /// Keys whose destination differs.
    pub moved: u64,
    /// The fewest keys any assignment could move (the change in shares).
    pub fewest_possible: f64,
    /// `(from, to) → keys`.
    pub moves: Vec<Move>,
    /// Why the comparison may say more than the change of weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Keys that moved from one destination to another.
#[derive(Debug, Serialize)]
pub struct Move {
    /// Destination in the old rules (`-` when no rule routed it).
    pub from: String,
    /// Destination in the new rules.
    pub to: String,
    /// How many keys.
    pub keys: u64,
}

/// Counts per cluster into per-rule results, using the filter's stats for
/// which rule routed what, and the route header for where it went.
fn results(
    set: &RuleSet,
    by_rule: &BTreeMap<(String, String, String), u64>,
    sent: u64,
    port: u16,
) -> Vec<RuleResult> {
    let mut out: Vec<RuleResult> = Vec::new();
    for svc in set.services() {
        for rule in &svc.rules {
            // The weights in force (a ramp's step at --at).
            let total_w: u64 = rule.route.total_weight();
            let dests: Vec<DestResult> = set
                .dests(&rule.route)
                .zip(rule.route.weights().each())
                .map(|(d, weight)| {
                    let key = (
                        stats::tag_value(&svc.name),
                        stats::tag_value(&rule.name),
                        stats::tag_value(d.label),
                    );
                    let count = by_rule.get(&key).copied().unwrap_or(0);
                    DestResult {
                        destination: d.label.to_string(),
                        cluster: d.cluster.with_port(port),
                        request_port: d.cluster.is_portless(),
                        count,
                        share: bars::share(count, sent),
                        expected: bars::share(weight, total_w),
                    }
                })
                .collect();
            let count = dests.iter().map(|d| d.count).sum();
            if count > 0 {
                out.push(RuleResult {
                    service: svc.name.to_string(),
                    rule: rule.name.to_string(),
                    count,
                    destinations: dests,
                });
            }
        }
    }
    out
}

/// The filter's request counters, by (service, rule, destination).
fn stats_by_rule(vm: &Vm) -> BTreeMap<(String, String, String), u64> {
    let mut text = String::new();
    for (name, value) in vm.metrics() {
        let _ = writeln!(text, "{name}: {value}");
    }
    crate::watch::parse_stats_text(&text).requests
}

fn base_headers(args: &Args, set: &RuleSet) -> Result<Vec<(String, String)>> {
    let authority = match &args.authority {
        Some(a) => a.clone(),
        None => set
            .services()
            .first()
            .map(|s| s.name.to_string())
            .ok_or_else(|| CliError::rejected("the rules have no service to send requests to"))?,
    };
    let mut h = vec![
        (":authority".to_string(), authority),
        (":path".to_string(), args.path.clone()),
        (":method".to_string(), args.method.clone()),
        (":scheme".to_string(), args.scheme.clone()),
    ];
    h.extend(args.headers.iter().cloned());
    Ok(h)
}

/// The sticky key of the rule the request matches.
fn sticky_key_of(
    set: &RuleSet,
    headers: &[(String, String)],
    port: u16,
) -> Result<(StickyKey, String)> {
    let req = Req {
        headers,
        source: Some("10.0.0.1:40000"),
        port,
    };
    match set.decide(&req, || 0) {
        Outcome::NoService => Err(CliError::rejected(format!(
            "the requests (:authority {}) are for no service in the rules; give --authority",
            headers.first().map(|(_, v)| v.as_str()).unwrap_or("")
        ))),
        Outcome::NoRule { service } => Err(CliError::rejected(format!(
            "no rule of service {} matches the requests; change -H/--path/--labels",
            set.services().get(service).map(|s| &*s.name).unwrap_or("?")
        ))),
        Outcome::Routed(d) => {
            let rule = set
                .services()
                .get(d.service)
                .and_then(|s| s.rules.get(d.rule))
                .ok_or_else(|| CliError::rejected("the decision names no rule"))?;
            match rule.route.sticky() {
                Some(k) => Ok((k.clone(), rule.name.to_string())),
                None => Err(CliError::rejected(format!(
                    "rule {} (the one the requests match) has no sticky key: add `sticky` to it, or drop --sticky-keys/--against",
                    rule.name
                ))),
            }
        }
    }
}

/// The name and attributes of the cookie the rule the requests match
/// issues (`--browsers`).
fn cookie_of(set: &RuleSet, headers: &[(String, String)], port: u16) -> Result<(String, String)> {
    let (key, rule) = sticky_key_of(set, headers, port)?;
    let issuer = set
        .services()
        .iter()
        .flat_map(|s| &s.rules)
        .find(|r| *r.name == *rule)
        .and_then(|r| r.route.issuer());
    match (key, issuer) {
        (StickyKey::Cookie(name), Some(i)) => Ok((
            String::from_utf8_lossy(&name).into_owned(),
            i.attributes().to_string(),
        )),
        _ => Err(CliError::rejected(format!(
            "rule {rule} (the one the requests match) issues no cookie: --browsers needs `sticky: {{cookie: ..., setCookie: {{...}}}}`; use --sticky-keys"
        ))),
    }
}

/// The headers and source address of sticky key number `i`.
fn keyed(
    base: &[(String, String)],
    key: &StickyKey,
    i: u64,
) -> (Vec<(String, String)>, Option<String>) {
    let mut h = base.to_vec();
    let value = format!("user-{i}");
    match key {
        StickyKey::Header(name) => {
            h.retain(|(k, _)| k != &**name);
            h.push((name.to_string(), value));
            (h, None)
        }
        StickyKey::Cookie(name) => {
            let name = String::from_utf8_lossy(name);
            h.retain(|(k, _)| k != "cookie");
            h.push(("cookie".into(), format!("{name}={value}")));
            (h, None)
        }
        StickyKey::SourceIp => {
            let ip = format!(
                "10.{}.{}.{}:40000",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            );
            (h, Some(ip))
        }
    }
}

fn describe_key(key: &StickyKey) -> String {
    match key {
        StickyKey::Header(h) => format!("header {h} (user-0, user-1, ...)"),
        StickyKey::Cookie(c) => format!(
            "cookie {} (user-0, user-1, ...)",
            String::from_utf8_lossy(c)
        ),
        StickyKey::SourceIp => "source IP (10.0.0.0, 10.0.0.1, ...)".into(),
    }
}

/// `cluster → label` of a rule set.
fn labels(set: &RuleSet, port: u16) -> BTreeMap<String, String> {
    set.all_destinations()
        .map(|(_, _, d)| (d.cluster.with_port(port), d.label.to_string()))
        .collect()
}

/// Expected share per cluster of the rule the requests match.
fn expected_by_cluster(
    set: &RuleSet,
    headers: &[(String, String)],
    port: u16,
) -> BTreeMap<String, f64> {
    let req = Req {
        headers,
        source: Some("10.0.0.1:40000"),
        port,
    };
    let mut out = BTreeMap::new();
    if let Outcome::Routed(d) = set.decide(&req, || 0) {
        if let Some(rule) = set
            .services()
            .get(d.service)
            .and_then(|s| s.rules.get(d.rule))
        {
            let total: u64 = rule.route.total_weight();
            for (dest, weight) in set.dests(&rule.route).zip(rule.route.weights().each()) {
                *out.entry(dest.cluster.with_port(port)).or_insert(0.0) +=
                    bars::share(weight, total);
            }
        }
    }
    out
}

/// Runs `simulate`.
pub fn run(args: &Args) -> Result<()> {
    let new = load_rules(&args.file, &args.identity, args.port)?;
    let old = args
        .against
        .as_deref()
        .map(|p| load_rules(p, &args.identity, args.port))
        .transpose()?;
    let wasm = wasm_path(args.wasm.as_deref())?;
    let module = Module::load(&wasm).map_err(|e| CliError::usage(e.to_string()))?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let base = base_headers(args, &new.set)?;
    let target = Target::of(&new, &base);
    let at_ms = args.at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    // The native rules at the same moment, for the weights each rule asks.
    new.set.advance(at_ms);
    if let Some(o) = &old {
        o.set.advance(at_ms);
    }
    let mut vm = start_vm(&module, &new, seed, at_ms)?;
    let sticky = args
        .browsers
        .or(args.sticky_keys)
        .or(args.against.as_ref().map(|_| 1000));
    // --browsers: the cookie the matched rule issues.
    let issuing = match args.browsers {
        None => None,
        Some(_) => Some(cookie_of(&new.set, &base, args.port)?),
    };
    let mut cookies = issuing.as_ref().map(|(name, attributes)| Cookies {
        name: name.clone(),
        issued: 0,
        reissued: 0,
        attributes: attributes.clone(),
    });

    let mut header_counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
    let (sent, unit, unstable, against) = match sticky {
        None => {
            for _ in 0..args.requests {
                let c = send(&mut vm, &base, &target)?;
                *header_counts.entry(c).or_default() += 1;
            }
            (args.requests, "requests", None, None)
        }
        Some(keys) => {
            let (key, _rule) = sticky_key_of(&new.set, &base, args.port)?;
            let mut old_vm = match &old {
                Some(o) => Some(start_vm(&module, o, seed ^ 0x5eed, at_ms)?),
                None => None,
            };
            let old_target = old.as_ref().map(|o| Target::of(o, &base));
            let mut unstable = 0u64;
            let mut moves: BTreeMap<(Option<String>, Option<String>), u64> = BTreeMap::new();
            for i in 0..keys {
                let (mut h, source) = keyed(&base, &key, i);
                let mut chosen = Vec::with_capacity(2);
                if let Some(c) = cookies.as_mut() {
                    // A first visit without the cookie, then one with what it got.
                    let (first, set) = send_full(&mut vm, &base, &target)?;
                    chosen.push(first);
                    let issued = issued_cookie(&set, &c.name);
                    c.issued += u64::from(issued.is_some());
                    h = match &issued {
                        Some(cookie) => with_cookie(&base, cookie),
                        None => base.clone(),
                    };
                    let (again, set) = send_full(&mut vm, &h, &target)?;
                    c.reissued += u64::from(issued_cookie(&set, &c.name).is_some());
                    chosen.push(again);
                }
                while chosen.len() < 2 {
                    if let Some(ip) = &source {
                        vm.set_property(&["source", "address"], ip.as_bytes());
                    }
                    chosen.push(send(&mut vm, &h, &target)?);
                }
                if chosen.first() != chosen.get(1) {
                    unstable += 1;
                }
                let now = chosen.into_iter().next().flatten();
                if let (Some(ovm), Some(old_target)) = (old_vm.as_mut(), old_target.as_ref()) {
                    if let Some(ip) = &source {
                        ovm.set_property(&["source", "address"], ip.as_bytes());
                    }
                    let before = send(ovm, &h, old_target)?;
                    if before != now {
                        *moves.entry((before, now.clone())).or_default() += 1;
                    }
                }
                *header_counts.entry(now).or_default() += 1;
            }
            let against = old.as_ref().map(|o| {
                let new_labels = labels(&new.set, args.port);
                let old_labels = labels(&o.set, args.port);
                let name = |c: &Option<String>, l: &BTreeMap<String, String>| match c {
                    Some(c) => l.get(c).cloned().unwrap_or_else(|| c.clone()),
                    None => "-".to_string(),
                };
                let e_new = expected_by_cluster(&new.set, &base, args.port);
                let e_old = expected_by_cluster(&o.set, &base, args.port);
                let clusters: std::collections::BTreeSet<&String> =
                    e_new.keys().chain(e_old.keys()).collect();
                let tvd: f64 = clusters
                    .iter()
                    .map(|c| (e_new.get(*c).unwrap_or(&0.0) - e_old.get(*c).unwrap_or(&0.0)).abs())
                    .sum::<f64>()
                    / 2.0;
                let note = match sticky_key_of(&o.set, &base, args.port) {
                    Ok((k, _)) if k == key => None,
                    Ok((k, rule)) => Some(format!(
                        "in the old rules, rule {rule} is sticky by {} instead: keys move for that reason too",
                        describe_key(&k)
                    )),
                    Err(e) => Some(format!(
                        "the old rules do not keep these keys sticky ({}): their picks are random",
                        e.message
                    )),
                };
                Against {
                    note,
                    file: args
                        .against
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    keys,
                    moved: moves.values().sum(),
                    fewest_possible: tvd,
                    moves: moves
                        .iter()
                        .map(|((from, to), n)| Move {
                            from: name(from, &old_labels),
                            to: name(to, &new_labels),
                            keys: *n,
                        })
                        .collect(),
                }
            });
            // Each key was sent twice to the new rules: count keys, not requests.
            (keys, "keys", Some(unstable), against)
        }
    };

    // Which rule routed what comes from the filter's own stats; in sticky
    // mode every key was sent twice, so halve them.
    let mut by_rule = stats_by_rule(&vm);
    if sticky.is_some() {
        for v in by_rule.values_mut() {
            *v /= 2;
        }
    }
    let rules = results(&new.set, &by_rule, sent, args.port);
    let unrouted = header_counts.get(&None).copied().unwrap_or(0);
    // The stats and the route header must tell the same story.
    let routed_by_header: u64 = header_counts
        .iter()
        .filter(|(k, _)| k.is_some())
        .map(|(_, v)| v)
        .sum();
    let routed_by_stats: u64 = rules.iter().map(|r| r.count).sum();
    if routed_by_header != routed_by_stats {
        eprintln!(
            "warning: the filter's stats count {routed_by_stats} routed {unit}, its route header {routed_by_header}"
        );
    }
    let unit = if cookies.is_some() { "browsers" } else { unit };
    let report = Report {
        sent,
        unit,
        unrouted,
        rules,
        unstable_keys: unstable,
        cookies,
        against,
        seed,
        at_ms,
        ramps: ramps_at(&new.set, at_ms),
    };
    match args.output {
        SimOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::usage(e.to_string()))?
        ),
        SimOutput::Text => {
            let key = match (sticky, &report.cookies) {
                (Some(_), Some(c)) => Some(format!(
                    "first-time browsers (a visit without the cookie {}, then one with the cookie it was issued)",
                    c.name
                )),
                (Some(_), None) => sticky_key_of(&new.set, &base, args.port)
                    .ok()
                    .map(|(k, _)| describe_key(&k)),
                (None, _) => None,
            };
            print!(
                "{}",
                render_text(&new, &wasm, &base, key.as_deref(), &report)
            );
        }
    }
    Ok(())
}

fn render_text(
    rules: &Loaded,
    wasm: &Path,
    base: &[(String, String)],
    key: Option<&str>,
    r: &Report,
) -> String {
    let mut s = String::new();
    let headers: Vec<String> = base.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    match key {
        Some(k) if r.cookies.is_some() => {
            let _ = writeln!(s, "{} {k}, through {}", r.sent, wasm.display());
        }
        Some(k) => {
            let _ = writeln!(
                s,
                "{} keys of {k}, each sent twice, through {}",
                r.sent,
                wasm.display()
            );
        }
        None => {
            let _ = writeln!(s, "{} requests through {}", r.sent, wasm.display());
        }
    }
    let _ = writeln!(s, "  rules:   {}", rules.cfg.origin);
    let _ = writeln!(s, "  request: {}", headers.join(", "));
    let _ = writeln!(s, "  sidecar: {}", Identity::describe(&rules.workload));
    let _ = writeln!(s, "  seed:    {} (--seed to repeat)", r.seed);
    for ramp in &r.ramps {
        let share = match ramp.canary_bp {
            Some(bp) => format!("{} at {}.{:02}%", ramp.canary, bp / 100, bp % 100),
            None => format!(
                "{} at the route's own weight (before the ramp)",
                ramp.canary
            ),
        };
        let next = match ramp.next_step_ms {
            Some(at) => format!(
                ", next step in {}",
                crate::verify::span(at.saturating_sub(r.at_ms))
            ),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "  ramp:    rule {}: step {} of {}, {share}{next} (at {})",
            ramp.rule,
            ramp.steps_done,
            ramp.steps,
            crate::verify::rfc3339(r.at_ms)
        );
    }
    for rule in &r.rules {
        let _ = writeln!(
            s,
            "\nservice {}  rule {}  ({} {})",
            rule.service, rule.rule, rule.count, r.unit
        );
        let width = rule
            .destinations
            .iter()
            .map(|d| d.destination.chars().count())
            .max()
            .unwrap_or(0);
        for d in &rule.destinations {
            // A count further than 4.5 standard deviations from what the
            // weights ask for is flagged (about 1 in 150,000 by chance).
            let n = rule.count as f64;
            let sd = (n * d.expected * (1.0 - d.expected)).sqrt();
            let off = (d.count as f64 - n * d.expected).abs();
            let flag = if (sd > 0.0 && off > 4.5 * sd) || (sd == 0.0 && off > 0.0) {
                "   <- far from the weights"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:<width$}  {} {:6.2}% {:>9} {}   weights ask {:6.2}%   {}{}{flag}",
                d.destination,
                bars::bar(d.share, bars::WIDTH),
                100.0 * d.share,
                d.count,
                r.unit,
                100.0 * d.expected,
                d.cluster,
                if d.request_port {
                    "  (port: the request's, --port)"
                } else {
                    ""
                },
            );
        }
    }
    if r.unrouted > 0 || r.rules.is_empty() {
        let _ = writeln!(
            s,
            "\nno rule routed {} of {} {} (the route header was not set: Envoy's default route takes them)",
            r.unrouted, r.sent, r.unit
        );
    }
    if let Some(c) = &r.cookies {
        let _ = writeln!(
            s,
            "\ncookie: {} of {} first visits got Set-Cookie: {}=<random key>{}; {} of {} return visits got a new one",
            c.issued, r.sent, c.name, c.attributes, c.reissued, r.sent
        );
    }
    if let Some(u) = r.unstable_keys {
        if u == 0 {
            let _ = writeln!(
                s,
                "\nsticky: every {} went to the same destination both times",
                r.unit.trim_end_matches('s')
            );
        } else {
            let _ = writeln!(
                s,
                "\nsticky: {u} {} went to different destinations on their two requests",
                r.unit
            );
        }
    }
    if let Some(a) = &r.against {
        let _ = writeln!(
            s,
            "\nagainst {}: {} of {} {} moved ({:.2}%); the change in weights moves at least {:.2}%",
            a.file,
            a.moved,
            a.keys,
            r.unit,
            100.0 * bars::share(a.moved, a.keys),
            100.0 * a.fewest_possible
        );
        for m in &a.moves {
            let _ = writeln!(s, "  {} -> {}  {} {}", m.from, m.to, m.keys, r.unit);
        }
        if let Some(n) = &a.note {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    s
}
