//! One filter configuration: the rule JSON of the filter's `filter_config`
//! (static, or pushed again by ECDS), parsed and compiled once by the
//! shared core, and the stats it counts into.
//!
//! A configuration is immutable. Envoy builds a new one for every update
//! (an ECDS push, a listener change) and keeps serving the previous one
//! when the new one is refused: a refused rule set logs its JSON path and
//! reason, counts `canary_router.config_rejected`, and returns no
//! configuration, which makes Envoy reject the update.

use std::sync::Arc;

use canary_router::config::PluginConfig;
use canary_router::plugin::{self, Plugin};
use canary_router::{ConfigError, Rules, Settings};

use crate::abi::{ConfigHandle, MetricId};
use crate::stream::StreamFilter;

/// The only `filter_name` this module answers to.
pub const FILTER_NAME: &[u8] = b"canary-router";

/// Counters and gauges that do not depend on the rules (the wasm filter's names).
#[derive(Debug, Default)]
pub struct Global {
    /// Requests the rules did not route.
    pub passthrough: Option<MetricId>,
    /// Requests that came with a client's copy of the route header.
    pub spoofed_header_removed: Option<MetricId>,
    /// Host calls that failed.
    pub host_call_errors: Option<MetricId>,
    /// Configurations refused.
    pub config_rejected: Option<MetricId>,
    /// The version of the rules in force.
    pub rules_version: Option<MetricId>,
}

impl Global {
    fn define(handle: &ConfigHandle) -> Self {
        let c = |n: &str| handle.define_counter(n);
        Global {
            passthrough: c("canary_router.passthrough"),
            spoofed_header_removed: c("canary_router.spoofed_header_removed"),
            host_call_errors: c("canary_router.host_call_errors"),
            config_rejected: c("canary_router.config_rejected"),
            rules_version: handle.define_gauge("canary_router.rules_version"),
        }
    }
}

/// Everything a request needs, immutable.
#[derive(Debug)]
pub struct Active {
    /// The settings (route header, debug header, ...).
    pub settings: Settings,
    /// The compiled rules.
    pub rules: Rules,
    /// Counter per destination, by `stat_index`.
    pub dest_metrics: Box<[Option<MetricId>]>,
    /// `service/rule/destination` per destination, for the debug header.
    pub debug_values: Box<[Box<str>]>,
    /// Rule-independent stats.
    pub global: Global,
    /// Envoy's configuration object, for stats counted outside a stream.
    pub handle: ConfigHandle,
}

/// The module's configuration object.
pub struct FilterConfig {
    active: Arc<Active>,
}

/// Why the module refuses a configuration that the wasm filter accepts:
/// features the HTTP-filter extension point of this module does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// `ruleSource`: the polled rule file.
    RuleSource,
    /// `guard` on a destination, at this JSON path.
    Guard(String),
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsupported::RuleSource => write!(
                f,
                "ruleSource: the dynamic module does not poll a rule file yet; put the rules in the filter config (ECDS updates them)"
            ),
            Unsupported::Guard(path) => write!(
                f,
                "{path}: guards are not supported by the dynamic module yet (see module/README.md)"
            ),
        }
    }
}

/// The first feature of `cfg` the module does not support.
pub fn unsupported(cfg: &PluginConfig) -> Option<Unsupported> {
    if cfg.rule_source.is_some() {
        return Some(Unsupported::RuleSource);
    }
    for (si, s) in cfg.services.iter().flatten().enumerate() {
        for (ri, r) in s.http.iter().enumerate() {
            for (di, d) in r.route.iter().enumerate() {
                if d.guard.is_some() {
                    return Some(Unsupported::Guard(format!(
                        "services[{si}].http[{ri}].route[{di}].guard"
                    )));
                }
            }
        }
    }
    None
}

/// Why a configuration was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The `filter_name` is not this module's.
    UnknownFilter(String),
    /// The rules are invalid (the core's error, with its JSON path).
    Invalid(ConfigError),
    /// Valid rules, with a feature the module does not carry.
    Unsupported(Unsupported),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownFilter(name) => write!(
                f,
                "filter_name {name:?}: this module has one filter, \"canary-router\""
            ),
            Refusal::Invalid(e) => write!(f, "{e}"),
            Refusal::Unsupported(u) => write!(f, "{u}"),
        }
    }
}

/// Parses and compiles a configuration: the pure part of [`FilterConfig::new`].
pub fn compile(name: &[u8], bytes: &[u8]) -> Result<(Settings, Rules), Refusal> {
    if name != FILTER_NAME {
        return Err(Refusal::UnknownFilter(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let cfg: PluginConfig = plugin::parse(bytes).map_err(Refusal::Invalid)?;
    if let Some(u) = unsupported(&cfg) {
        return Err(Refusal::Unsupported(u));
    }
    let workload = crate::workload::from_env();
    let Plugin { settings, rules } =
        Plugin::from_config(&cfg, bytes, &workload).map_err(Refusal::Invalid)?;
    // Without a rule source, the settings check demands inline services.
    let rules = rules.ok_or(Refusal::Unsupported(Unsupported::RuleSource))?;
    Ok((settings, rules))
}

impl FilterConfig {
    /// A configuration from Envoy's `filter_config` bytes; `None` (logged,
    /// counted) refuses it.
    pub fn new(handle: ConfigHandle, name: &[u8], bytes: &[u8]) -> Option<Self> {
        let global = Global::define(&handle);
        match compile(name, bytes) {
            Ok((settings, rules)) => {
                log::info!(
                    "configured: {} services, {} destinations, rules version {}",
                    rules.set.services().len(),
                    rules.set.destination_count(),
                    rules.version
                );
                let dest_metrics = rules
                    .set
                    .all_destinations()
                    .map(|(s, r, d)| {
                        handle.define_counter(&canary_router::stats::destination_counter(
                            &s.name, &r.name, &d.label,
                        ))
                    })
                    .collect();
                let debug_values = rules
                    .set
                    .all_destinations()
                    .map(|(s, r, d)| format!("{}/{}/{}", s.name, r.name, d.label).into())
                    .collect();
                handle.set_gauge(global.rules_version, rules.version);
                Some(FilterConfig {
                    active: Arc::new(Active {
                        settings,
                        rules,
                        dest_metrics,
                        debug_values,
                        global,
                        handle,
                    }),
                })
            }
            Err(e) => {
                handle.bump(global.config_rejected);
                log::error!("configuration rejected: {e}");
                None
            }
        }
    }

    /// The filter of a new stream.
    pub fn new_stream(&self) -> StreamFilter {
        StreamFilter::new(self.active.clone())
    }
}
