//! One filter configuration: the rule JSON of the filter's `filter_config`
//! (static, or pushed again by ECDS), parsed and compiled once by the
//! shared core, the stats it counts into, and, with a `ruleSource`, the
//! poller that replaces its rules with each good rule file.
//!
//! Envoy builds a new configuration for every update (an ECDS push, a
//! listener change) and keeps serving the previous one when the new one is
//! refused: a refused rule set logs its JSON path and reason, counts
//! `canary_router.config_rejected`, and returns no configuration, which
//! makes Envoy reject the update. Within one configuration the rules in
//! force ([`Active`]) are immutable; a fetched rule file builds a new one,
//! which new streams take, while streams under way keep theirs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use canary_router::domain::plugin::{self, Plugin, Rules};
use canary_router::domain::poll::{self, Poller};
use canary_router::schema::config::PluginConfig;
use canary_router::{ConfigError, Settings, Workload};

use crate::abi::ConfigHandle;
use crate::guard::{Guards, Sink};
use crate::metrics::{self, Global, Kind, Metric};
use crate::source::{Answer, Host, Ticker, TICK};
use crate::stream::StreamFilter;

/// The only `filter_name` this module answers to.
pub const FILTER_NAME: &[u8] = b"canary-router";

/// The rules in force and everything a request needs with them, immutable.
#[derive(Debug)]
pub struct Active {
    /// The settings (route header, debug header, ...).
    pub settings: Arc<Settings>,
    /// The compiled rules; none until a rule source has answered.
    pub rules: Option<Rules>,
    /// Counter per destination, by `stat_index`.
    pub dest_metrics: Box<[Option<Metric>]>,
    /// `service/rule/destination` per destination, for the debug header.
    pub debug_values: Box<[Box<str>]>,
    /// Rule-independent stats.
    pub global: Arc<Global>,
    /// The guards, if a destination has one.
    pub guard: Option<Guards>,
}

impl Active {
    /// The rules in force with their stats (plain ones defined through
    /// `define`, or the global labelled ones: see [`metrics`]) and guards,
    /// which report to `sink`.
    pub fn new(
        settings: Arc<Settings>,
        rules: Option<Rules>,
        global: Arc<Global>,
        sink: Arc<dyn Sink>,
        mut define: impl FnMut(Kind, &str) -> Option<usize>,
    ) -> Self {
        let guard = rules.as_ref().and_then(|r| {
            Guards::new(&r.set, r.digest, sink, |s, r, d| {
                metrics::guard_slot(&global, &mut define, [s, r, d])
            })
        });
        let (dest_metrics, debug_values) = match &rules {
            Some(r) => (
                metrics::destinations(&r.set, global.requests_by_label, |n| {
                    define(Kind::Counter, n)
                }),
                r.set
                    .all_destinations()
                    .map(|(s, r, d)| format!("{}/{}/{}", s.name, r.name, d.label).into())
                    .collect(),
            ),
            None => (Box::default(), Box::default()),
        };
        Active {
            settings,
            rules,
            dest_metrics,
            debug_values,
            global,
            guard,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The `filter_name` is not this module's.
    UnknownFilter(String),
    /// The rules are invalid (the core's error, with its JSON path).
    Invalid(ConfigError),
    /// Valid rules, with a feature the module does not carry yet (the
    /// JSON path of it).
    Unsupported(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownFilter(name) => write!(
                f,
                "filter_name {name:?}: this module has one filter, \"canary-router\""
            ),
            Refusal::Invalid(e) => write!(f, "{e}"),
            Refusal::Unsupported(path) => write!(
                f,
                "{path}: not supported by the dynamic module yet (scheduled ramps and guards with a baseline run in the wasm filter; see module/README.md)"
            ),
        }
    }
}

/// Parses and compiles a configuration: the pure part of [`FilterConfig::new`].
pub fn compile(name: &[u8], bytes: &[u8], workload: &Workload) -> Result<Plugin, Refusal> {
    if name != FILTER_NAME {
        return Err(Refusal::UnknownFilter(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let cfg: PluginConfig = plugin::parse(bytes).map_err(Refusal::Invalid)?;
    let p = Plugin::from_config(&cfg, bytes, workload).map_err(Refusal::Invalid)?;
    match p.rules.as_ref().and_then(|r| unsupported(&r.set)) {
        Some(path) => Err(Refusal::Unsupported(path)),
        None => Ok(p),
    }
}

/// The JSON path of the first feature of `set` the module does not carry
/// yet: a rule's `ramp` (the wasm filter walks it from its tick with
/// `RuleSet::advance`), or a guard's `baseline` (its baseline's responses
/// and times are counted by the wasm filter's guards only).
pub fn unsupported(set: &canary_router::RuleSet) -> Option<String> {
    for (si, s) in set.services().iter().enumerate() {
        for (ri, r) in s.rules.iter().enumerate() {
            if r.route.ramp().is_some() {
                return Some(format!("services[{si}].http[{ri}].ramp"));
            }
            for (di, d) in r.route.destinations.iter().enumerate() {
                if matches!(&d.guard, Some(g) if g.judge != canary_router::domain::guard::Judge::Absolute)
                {
                    return Some(format!(
                        "services[{si}].http[{ri}].route[{di}].guard.baseline"
                    ));
                }
            }
        }
    }
    None
}

/// The module's configuration object.
pub struct FilterConfig {
    handle: ConfigHandle,
    global: Arc<Global>,
    settings: Arc<Settings>,
    current: RwLock<Arc<Active>>,
    /// The rule source's poller.
    poller: Option<Mutex<Poller>>,
    /// The tick period the rules in force need (0: none).
    tick_ms: Arc<AtomicU64>,
    /// Ticks the poller and the guards; dropped with the configuration,
    /// which stops it.
    ticker: Option<Ticker>,
}

impl FilterConfig {
    /// A configuration from Envoy's `filter_config` bytes; `None` (logged,
    /// counted) refuses it.
    pub fn new(handle: ConfigHandle, name: &[u8], bytes: &[u8]) -> Option<Self> {
        let Plugin { settings, rules } = match compile(name, bytes, &crate::workload::from_env()) {
            Ok(p) => p,
            Err(e) => {
                let global = Global::define(&handle, false);
                handle.bump(global.config_rejected.as_ref());
                log::error!("configuration rejected: {e}");
                return None;
            }
        };
        let global = Global::define(&handle, settings.source.is_some());
        match &rules {
            Some(r) => log::info!(
                "configured: {} services, {} destinations, rules version {}",
                r.set.services().len(),
                r.set.destination_count(),
                r.version
            ),
            None => log::info!("configured: rules will come from the rule source"),
        }
        let settings = Arc::new(settings);
        let sink: Arc<dyn Sink> = Arc::new(handle);
        let mut config = FilterConfig {
            handle,
            global: global.clone(),
            settings: settings.clone(),
            current: RwLock::new(Arc::new(Active::new(
                settings.clone(),
                None,
                global,
                sink,
                |_, _| None,
            ))),
            poller: None,
            tick_ms: Arc::new(AtomicU64::new(0)),
            ticker: None,
        };
        config.install(rules, None);
        config.start_source();
        if config.tick_ms.load(Ordering::Relaxed) > 0 {
            config.start_ticker();
        }
        Some(config)
    }

    /// Starts polling, if the settings name a rule source: rules another
    /// configuration already fetched take over at once (a reload never
    /// falls back to stale inline rules).
    fn start_source(&mut self) {
        let Some(src) = self.settings.source.clone() else {
            return;
        };
        log::info!(
            "polling rules every {} from cluster {} path {} (authority {})",
            poll::show_ms(poll::millis(src.poll_interval)),
            src.cluster,
            src.path,
            src.authority
        );
        let mut poller = Poller::new(src, crate::stream::random());
        let adopted = poller.adopt_shared(&mut self.host(None), &mut |b| self.compile_file(b));
        self.poller = Some(Mutex::new(poller));
        if adopted.is_some() {
            self.install(adopted, Some(false));
        } else {
            self.set_tick();
        }
    }

    /// Starts the ticker: a thread of the module's own that commits a tick
    /// event to Envoy's main thread every tick period (the HTTP filter's
    /// configuration has a scheduler in the ABI, but no timer).
    fn start_ticker(&mut self) {
        let Some(scheduler) = self.handle.scheduler() else {
            log::error!("Envoy gave no scheduler: the rule source will not be polled, guards flush only with traffic");
            return;
        };
        match Ticker::start(self.tick_ms.clone(), move || scheduler.commit(TICK)) {
            Ok(t) => self.ticker = Some(t),
            Err(e) => log::error!("cannot start the ticker thread ({e}): the rule source will not be polled, guards flush only with traffic"),
        }
    }

    /// Sets the tick period to what the poller and the guards in force need.
    fn set_tick(&self) {
        let poll = self
            .poller
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).tick_period_ms());
        let guard = self.active().guard.as_ref().map(|g| g.tick_ms);
        let want = match (poll, guard) {
            (Some(p), Some(g)) => p.min(g),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => 0,
        };
        self.tick_ms.store(u64::from(want), Ordering::Relaxed);
    }

    fn host<'a>(&'a self, answer: Option<&'a Answer<'a>>) -> Host<'a> {
        Host {
            handle: &self.handle,
            global: &self.global,
            answer,
        }
    }

    fn compile_file(&self, bytes: &[u8]) -> Result<Rules, ConfigError> {
        let rules =
            plugin::rule_file_from_bytes(bytes, &self.settings, &crate::workload::from_env())?;
        match unsupported(&rules.set) {
            // Refused like a bad file: the last good rules keep serving.
            Some(path) => Err(ConfigError::Syntax {
                path,
                message: "not supported by the dynamic module yet (see module/README.md)".into(),
            }),
            None => Ok(rules),
        }
    }

    /// Puts `rules` in force for new streams: `fetched` says whether they
    /// came from the rule source (`Some(true)`: fetched here, logged;
    /// `Some(false)`: adopted from another configuration's fetch, logged at
    /// debug level) or from the configuration itself (`None`).
    fn install(&self, rules: Option<Rules>, fetched: Option<bool>) {
        if let (Some(r), Some(fetched)) = (&rules, fetched) {
            log::log!(
                if fetched {
                    log::Level::Info
                } else {
                    log::Level::Debug
                },
                "rules version {} {} the rule source: {} services, {} destinations",
                r.version,
                if fetched {
                    "fetched from"
                } else {
                    "adopted from"
                },
                r.set.services().len(),
                r.set.destination_count()
            );
        }
        if let Some(r) = &rules {
            self.handle
                .set_gauge(self.global.rules_version.as_ref(), r.version);
        }
        let handle = self.handle;
        let active = Active::new(
            self.settings.clone(),
            rules,
            self.global.clone(),
            Arc::new(handle),
            |kind, name| match kind {
                Kind::Counter => handle.define_counter(name, &[]),
                Kind::Gauge => handle.define_gauge(name, &[]),
            },
        );
        // Labelled counters exist once counted: show each at 0, as the
        // plain ones are.
        if self.global.requests_by_label.is_some() {
            for m in active.dest_metrics.iter().flatten() {
                self.handle.add(Some(m), 0);
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active);
        self.set_tick();
    }

    /// The rules in force.
    pub fn active(&self) -> Arc<Active> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The filter of a new stream.
    pub fn new_stream(&self) -> StreamFilter {
        StreamFilter::new(self.active())
    }

    /// A scheduled event, on the main thread: a tick flushes the guards'
    /// tallies, adopts rules another configuration fetched and starts a
    /// fetch when it is due.
    pub fn on_scheduled(&self, event: u64) {
        if event != TICK {
            return;
        }
        if let Some(g) = &self.active().guard {
            g.tick();
        }
        let Some(poller) = &self.poller else { return };
        let mut poller = poller.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rules) = poller.tick(&mut self.host(None), &mut |b| self.compile_file(b)) {
            drop(poller);
            self.install(Some(rules), Some(false));
        }
    }

    /// The answer to fetch `id`, on the main thread (`None`: the callout
    /// failed: reset, unreachable, timed out).
    pub fn on_callout_done(&self, id: u64, answer: Option<&Answer<'_>>) {
        let Some(poller) = &self.poller else { return };
        let Ok(token) = u32::try_from(id) else { return };
        let num_headers = answer.map_or(0, |a| a.headers.len().max(1));
        let body_size = answer.map_or(0, |a| a.body.len());
        let mut poller = poller.lock().unwrap_or_else(|e| e.into_inner());
        let fetched = poller.on_response(
            &mut self.host(answer),
            token,
            num_headers,
            body_size,
            &mut |b| self.compile_file(b),
        );
        drop(poller);
        if let Some(rules) = fetched {
            self.install(Some(rules), Some(true));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ROUTE: &str = r#""route":[{"destination":{"host":"backend","subset":"v1","port":{"number":80}},"weight":90},
        {"destination":{"host":"backend","subset":"v2","port":{"number":80}},"weight":10GUARD}]"#;

    fn rules(extra: &str, guard: &str) -> String {
        let route = ROUTE.replace("GUARD", guard);
        format!(
            r#"{{"services":[{{"hosts":["backend"],"http":[{{"name":"split",{route}{extra}}}]}}]}}"#
        )
    }

    #[test]
    fn ramps_and_baseline_guards_are_refused_by_path_and_the_rest_compiles() {
        let refusal =
            |json: &str| match compile(b"canary-router", json.as_bytes(), &Workload::default()) {
                Err(Refusal::Unsupported(path)) => path,
                other => panic!("{:?}", other.map(|_| ())),
            };
        let ramp =
            r#","ramp":{"canary":"v2","start":"2026-12-07T10:00:00Z","steps":[{"setWeight":10}]}"#;
        assert_eq!(refusal(&rules(ramp, "")), "services[0].http[0].ramp");
        let baseline =
            r#","guard":{"baseline":"v1","maxErrorRate":0.05,"minRequests":20,"interval":"10s"}"#;
        assert_eq!(
            refusal(&rules("", baseline)),
            "services[0].http[0].route[1].guard.baseline"
        );
        let absolute = r#","guard":{"maxErrorRate":0.05,"minRequests":20,"interval":"10s"}"#;
        assert!(compile(
            b"canary-router",
            rules("", absolute).as_bytes(),
            &Workload::default()
        )
        .is_ok());
    }
}
