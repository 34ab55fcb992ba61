//! Judging a configuration with the filter's parser, and describing what it
//! compiled to.

use std::fmt::Write as _;

use canary_router::domain::plugin::{rule_file_from_bytes, Settings};
use canary_router::domain::rules::{StickyKey, Via};
use canary_router::schema::config::PluginConfig;
use canary_router::{Plugin, RuleSet, Workload};

use crate::input::{describe, Config, Kind};

/// Labels and namespace of the workload the sidecar runs in: what
/// `sourceLabels` and `sourceNamespace` are judged against.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Identity {
    /// Labels of the sidecar's workload (what `sourceLabels` match), e.g.
    /// `app=frontend,version=v2`. Default: the file's Envoy node metadata, if any.
    #[arg(long, value_name = "KEY=VALUE,...", value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Namespace of the sidecar's workload (what `sourceNamespace` matches,
    /// and where bare short hosts resolve from).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// Parses `key=value`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

impl Identity {
    /// The workload: from the command line when it says anything, else the
    /// file's own (an Envoy bootstrap's node metadata), else nothing.
    pub fn workload(&self, from_file: Option<&Workload>) -> Workload {
        if self.labels.is_empty() && self.namespace.is_none() {
            return from_file.cloned().unwrap_or_default();
        }
        Workload {
            namespace: self.namespace.clone(),
            labels: self.labels.iter().cloned().collect(),
            gateway: from_file.is_some_and(|w| w.gateway),
        }
    }

    /// `namespace=..., labels a=b,c=d` for messages.
    pub fn describe(w: &Workload) -> String {
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "namespace {}, labels {}",
            w.namespace.as_deref().unwrap_or("(none)"),
            if labels.is_empty() {
                "(none)".to_string()
            } else {
                labels.join(",")
            }
        )
    }
}

/// A configuration the filter accepted.
#[derive(Debug)]
pub struct Judged {
    /// The filter's settings (defaults for a rule file).
    pub settings: Settings,
    /// The compiled rules with their version; `None` when they are polled.
    pub rules: Option<(RuleSet, u64)>,
    /// The settings are the configuration's own (false: a rule file judged
    /// with another configuration's, or the defaults).
    pub own_settings: bool,
}

/// The settings the filter has with nothing configured: what a rule file
/// found on its own is judged with.
pub fn default_settings() -> Settings {
    let cfg = PluginConfig {
        services: Some(Vec::new()),
        ..PluginConfig::default()
    };
    // The defaults are valid by construction; fall back to a literal copy if
    // that ever changes rather than panicking.
    Settings::from_config(&cfg).unwrap_or_else(|_| Settings {
        route_header: canary_router::domain::plugin::DEFAULT_ROUTE_HEADER.into(),
        debug_header: None,
        namespace: canary_router::domain::plugin::DEFAULT_NAMESPACE.into(),
        cluster_domain: canary_router::domain::plugin::DEFAULT_CLUSTER_DOMAIN.into(),
        portless: canary_router::domain::cluster::PortlessMode::RequestPort,
        source: None,
    })
}

/// Judges a configuration exactly as the filter does: `Plugin::from_bytes`
/// for a plugin configuration, `rule_file_from_bytes` (with `settings`, or
/// the defaults) for a polled rule file.
pub fn judge(
    cfg: &Config,
    workload: &Workload,
    settings: Option<&Settings>,
) -> Result<Judged, String> {
    let judged = judge_by_filter(cfg, workload, settings)?;
    // The filter skips the route policies' content: checked here, as istiod
    // checks a VirtualService's.
    let doc: serde_json::Value = serde_json::from_slice(&cfg.bytes).unwrap_or_default();
    if let Err(e) = crate::glue::check_policies(&doc["services"]) {
        let path = crate::input::join_path(&cfg.prefix, &e.path);
        return Err(format!("{}: {path}: {}", cfg.origin, e.reason));
    }
    Ok(judged)
}

fn judge_by_filter(
    cfg: &Config,
    workload: &Workload,
    settings: Option<&Settings>,
) -> Result<Judged, String> {
    match cfg.kind {
        Kind::Plugin => {
            let p = Plugin::from_bytes(&cfg.bytes, workload).map_err(|e| describe(cfg, &e))?;
            Ok(Judged {
                settings: p.settings,
                rules: p.rules.map(|r| (r.set, r.version)),
                own_settings: true,
            })
        }
        Kind::RuleFile => {
            let settings = settings.cloned().unwrap_or_else(default_settings);
            let r = rule_file_from_bytes(&cfg.bytes, &settings, workload)
                .map_err(|e| describe(cfg, &e))?;
            Ok(Judged {
                settings,
                rules: Some((r.set, r.version)),
                own_settings: false,
            })
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A few lines on what a judged configuration does.
pub fn describe_judged(what: &str, j: &Judged) -> String {
    let mut s = String::new();
    match &j.rules {
        Some((set, version)) => {
            let rules: usize = set.services().iter().map(|s| s.rules.len()).sum();
            let _ = writeln!(
                s,
                "{what}, rules version {version}: {}, {}, {}",
                plural(set.services().len(), "service", "services"),
                plural(rules, "rule", "rules"),
                plural(
                    set.destination_count() as usize,
                    "destination",
                    "destinations"
                ),
            );
        }
        None => {
            let _ = writeln!(s, "{what}, no inline rules");
        }
    }
    let st = &j.settings;
    let _ = writeln!(
        s,
        "  route header {}, debug header {}, namespace {}, cluster domain {}",
        st.route_header,
        st.debug_header.as_deref().unwrap_or("(off)"),
        st.namespace,
        st.cluster_domain
    );
    if let (Some(src), true) = (&st.source, j.own_settings) {
        let _ = writeln!(
            s,
            "  rules polled from cluster {} (authority {}) path {} every {} ms, timeout {} ms",
            src.cluster,
            src.authority,
            src.path,
            src.poll_interval.as_millis(),
            src.timeout.as_millis()
        );
    }
    if let Some((set, _)) = &j.rules {
        s.push_str(&describe_rules(set));
    }
    s
}

/// Services, rules and destinations with their configured shares.
pub fn describe_rules(set: &RuleSet) -> String {
    let mut s = String::new();
    for svc in set.services() {
        let _ = writeln!(s, "  service {}", svc.name);
        for rule in &svc.rules {
            let sticky = match rule.route.sticky() {
                Some(StickyKey::Header(h)) => format!(", sticky by header {h}"),
                Some(StickyKey::Cookie(c)) => match rule.route.issuer() {
                    Some(i) => format!(
                        ", sticky by cookie {}, issued to requests without one (Set-Cookie: {}=<random key>{})",
                        String::from_utf8_lossy(c),
                        String::from_utf8_lossy(c),
                        i.attributes()
                    ),
                    None => format!(", sticky by cookie {}", String::from_utf8_lossy(c)),
                },
                Some(StickyKey::SourceIp) => ", sticky by source IP".to_string(),
                None => String::new(),
            };
            let reach = if rule.reachable() {
                ""
            } else {
                " (never matches on this sidecar: its sourceLabels/sourceNamespace are not this workload's)"
            };
            let _ = writeln!(s, "    rule {}{sticky}{reach}", rule.name);
            if let Some(ramp) = rule.route.ramp() {
                let _ = writeln!(s, "      {}", ramp_text(ramp, set, rule));
            }
            // The route's own weights (a ramp's steps are described above).
            let total: u64 = rule.route.own_weights().total();
            for d in set.dests(&rule.route) {
                let share = if total == 0 {
                    0.0
                } else {
                    100.0 * f64::from(d.weight) / total as f64
                };
                let via = match d.via {
                    Via::RouteHeader => "",
                    Via::DefaultRoute => "  (defaultDestination: left to Envoy's own route)",
                };
                let port = if d.cluster.takes_request_port() {
                    "  (no port: the port the request arrived on)"
                } else if d.cluster.takes_glue_port() {
                    "  (no port: written port-less, the glue's route of each port names it)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "      {:<12} {share:6.2}%  weight {:<7} {}{via}{port}",
                    d.label, d.weight, d.cluster
                );
                if let Some(g) = &d.guard {
                    let _ = writeln!(s, "        {}", guard_text(g, set, rule, &d));
                }
            }
        }
    }
    s
}

/// What a rule's ramp does, in words: each step's share and moment.
fn ramp_text(
    ramp: &canary_router::domain::rules::Ramped,
    set: &RuleSet,
    rule: &canary_router::domain::rules::Rule,
) -> String {
    let canary = set
        .dests(&rule.route)
        .nth(ramp.schedule.canary)
        .map_or("?", |d| d.label);
    let steps: Vec<String> = ramp
        .schedule
        .phases
        .iter()
        .skip(1)
        .map(|p| match p.canary_bp {
            Some(bp) => format!(
                "{}.{:02}% from {}",
                bp / 100,
                bp % 100,
                crate::verify::rfc3339(p.at_ms)
            ),
            None => format!("its own weight until {}", crate::verify::rfc3339(p.at_ms)),
        })
        .collect();
    format!(
        "ramp ({} steps): {canary} at {}; the other destinations share the rest by their weights",
        ramp.schedule.steps,
        steps.join(", ")
    )
}

/// What a destination's guard does, in words.
fn guard_text(
    g: &canary_router::domain::guard::Spec,
    set: &RuleSet,
    rule: &canary_router::domain::rules::Rule,
    d: &canary_router::domain::rules::Destination,
) -> String {
    let others = rule
        .route
        .destinations
        .iter()
        .any(|o| o.stat_index != d.stat_index && o.weight > 0);
    let interval = if g.interval_ms % 1000 == 0 {
        format!("{}s", g.interval_ms / 1000)
    } else {
        format!("{}ms", g.interval_ms)
    };
    if !others {
        return format!(
            "guard: never ejects (it is the rule's only destination with weight; it keeps its traffic, failing or not); counts its responses over {interval}"
        );
    }
    if let canary_router::domain::guard::Judge::Baseline {
        slot,
        max_latency_ratio,
    } = g.judge
    {
        let baseline = set
            .dests(&rule.route)
            .nth(slot as usize)
            .map_or("?", |d| d.label);
        let latency = if max_latency_ratio > 0.0 {
            format!(", or its p90 response time is over {max_latency_ratio} times {baseline}'s")
        } else {
            String::new()
        };
        return format!(
            "guard: compared with {baseline} over the last {interval} in one Envoy, with at least {} responses on each side: ejected when its error share exceeds {baseline}'s by {}% or more, significantly (one check ejects a version not that much worse at most once in 10,000){latency}; then its requests (and sticky users) go to the rule's other destinations and its ramp stops, until the rule set changes",
            g.min_requests,
            g.max_error_rate * 100.0
        );
    }
    format!(
        "guard: ejected when, over the last {interval}, at least {} responses were counted in one Envoy and {}% or more of them were 5xx or never came; then its requests (and sticky users) go to the rule's other destinations until the rule set changes (never the rule's last destination)",
        g.min_requests,
        g.max_error_rate * 100.0
    )
}
