//! One filter configuration: the rule JSON of the filter's `filter_config`
//! (static, or pushed again by ECDS), compiled once, rule by rule as it is
//! read (`Plugin::read`: the parsed form of one rule at a time), by the
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
use canary_router::{ConfigError, Settings, Workload};

use crate::abi::ConfigHandle;
use crate::guard::{Guards, Sink};
use crate::metrics::{self, Global, Kind, Metric};
use crate::source::{Answer, Host, Ticker, TICK};
use crate::stream::{NewStream, StreamFilter};
use canary_router::domain::stats;

/// The only `filter_name` this module answers to.
pub const FILTER_NAME: &[u8] = b"canary-router";

/// The rules in force and everything a request needs with them, immutable
/// (but for the ramps' phases, which ticks move, and the guards' counts).
pub struct Active {
    /// The settings (route header, debug header, ...).
    pub settings: Arc<Settings>,
    /// The compiled rules; none until a rule source has answered.
    pub rules: Option<Rules>,
    /// Counter per destination, by `stat_index`.
    pub dest_metrics: Box<[Option<Metric>]>,
    /// Weight gauge per destination (basis points), by `stat_index`.
    pub weights: Box<[Option<Metric>]>,
    /// Step, aborted and next-step gauges per rule with a ramp, in rule order.
    pub ramps: Box<[[Option<Metric>; 3]]>,
    /// `service/rule/destination` per destination, for the debug header.
    pub debug_values: Box<[Box<str>]>,
    /// Rule-independent stats.
    pub global: Arc<Global>,
    /// The guards, if a destination has one.
    pub guard: Option<Guards>,
    /// Where the gauges are set.
    sink: Arc<dyn Sink>,
    /// The warning for a `Secure` cookie issued over plain HTTP was logged
    /// (once per configuration).
    pub warned_secure_over_http: std::sync::atomic::AtomicBool,
    /// A stream's response has work: a guard counts it, a rule issues
    /// sticky cookies, or the debug header is added.
    pub response_work: bool,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active")
            .field("rules", &self.rules)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Active {
    /// The rules in force with their stats (plain ones defined through
    /// `define`, or the global labelled ones: see [`metrics`]) and guards,
    /// which report to `sink`. A ramp starts in its phase of now; the
    /// gauges show what requests are routed with.
    pub fn new(
        settings: Arc<Settings>,
        rules: Option<Rules>,
        global: Arc<Global>,
        sink: Arc<dyn Sink>,
        mut define: impl FnMut(Kind, &str) -> Option<usize>,
    ) -> Self {
        if let Some(r) = &rules {
            r.set.advance(sink.now_ms());
        }
        let guard = rules.as_ref().and_then(|r| {
            Guards::new(&r.set, r.digest, sink.clone(), |s, r, d| {
                metrics::guard_slot(&global, &mut define, [s, r, d])
            })
        });
        let (dest_metrics, weights, ramps, debug_values) = match &rules {
            Some(r) => (
                metrics::destinations(&r.set, "requests", global.requests_by_label, |n| {
                    define(Kind::Counter, n)
                }),
                metrics::destinations(&r.set, "weight", global.weight_by_label, |n| {
                    define(Kind::Gauge, n)
                }),
                metrics::ramps(&r.set, &global, |n| define(Kind::Gauge, n)),
                settings.debug_values(&r.set),
            ),
            None => Default::default(),
        };
        let issues_cookies = rules.as_ref().is_some_and(|r| {
            r.set
                .services()
                .iter()
                .any(|s| s.rules.iter().any(|r| r.route.issuer().is_some()))
        });
        let response_work = guard.is_some() || issues_cookies || settings.debug_header.is_some();
        let active = Active {
            response_work,
            settings,
            rules,
            dest_metrics,
            weights,
            ramps,
            debug_values,
            global,
            guard,
            sink,
            warned_secure_over_http: Default::default(),
        };
        active.show_weights();
        active
    }

    /// Sets the weight gauges (basis points, ejected destinations at 0)
    /// and the ramps' gauges to what requests are routed with now, and
    /// the rate the guards sample baselines at.
    pub fn show_weights(&self) {
        let Some(rules) = &self.rules else { return };
        if let Some(g) = &self.guard {
            g.resample(&rules.set);
        }
        let ejected = |stat: u32| self.guard.as_ref().is_some_and(|g| g.is_ejected(stat));
        stats::show_weights(
            &rules.set,
            ejected,
            |stat, bp| {
                let gauge = self.weights.get(stat as usize).and_then(Option::as_ref);
                self.sink.set(gauge, bp);
            },
            |i, values| {
                if let Some(gauges) = self.ramps.get(i) {
                    for (g, v) in gauges.iter().zip(values) {
                        self.sink.set(g.as_ref(), v);
                    }
                }
            },
        );
    }

    /// Sets every gauge of the rule set to 0 (it is being replaced: a
    /// rule or destination no longer there shows no weight, no ejection
    /// and no window).
    fn zero(&self) {
        for g in self.weights.iter().chain(self.ramps.iter().flatten()) {
            self.sink.set(g.as_ref(), 0);
        }
        if let Some(g) = &self.guard {
            g.zero();
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
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownFilter(name) => write!(
                f,
                "filter_name {name:?}: this module has one filter, \"canary-router\""
            ),
            Refusal::Invalid(e) => write!(f, "{e}"),
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
    Plugin::from_bytes(bytes, workload).map_err(Refusal::Invalid)
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
    /// When the next step of a ramp is due (Unix milliseconds; 0: none).
    ramp_due: AtomicU64,
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
            ramp_due: AtomicU64::new(0),
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

    /// Sets the tick period to what the poller and the guards in force
    /// need, and to the next step of a ramp (at least once a minute while
    /// one is due, so a clock set forward is caught up with); a change
    /// restarts the ticker's wait.
    fn set_tick(&self) {
        let mut want = u64::MAX;
        let due = self.ramp_due.load(Ordering::Relaxed);
        if due > 0 {
            let now = self.handle.now_ms();
            want = due.saturating_sub(now).clamp(1, 60_000);
        }
        if let Some(p) = &self.poller {
            let t = p.lock().unwrap_or_else(|e| e.into_inner()).tick_period_ms();
            want = want.min(u64::from(t));
        }
        if let Some(g) = &self.active().guard {
            want = want.min(u64::from(g.tick_ms));
        }
        if want == u64::MAX {
            want = 0;
        }
        if self.tick_ms.swap(want, Ordering::Relaxed) != want {
            if let Some(t) = &self.ticker {
                t.poke();
            }
        }
    }

    fn host<'a>(&'a self, answer: Option<&'a Answer<'a>>) -> Host<'a> {
        Host {
            handle: &self.handle,
            global: &self.global,
            answer,
        }
    }

    fn compile_file(&self, bytes: &[u8]) -> Result<Rules, ConfigError> {
        plugin::rule_file_from_bytes(bytes, &self.settings, &crate::workload::from_env())
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
            self.handle
                .set_gauge(self.global.config_revision.as_ref(), r.revision);
        }
        self.active().zero();
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
        let due = active
            .rules
            .as_ref()
            .and_then(|r| r.set.advance(self.handle.now_ms()).1);
        self.ramp_due.store(due.unwrap_or(0), Ordering::Relaxed);
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

    /// The state of a new stream.
    pub fn new_stream(&self) -> NewStream {
        let active = self.active();
        if active.response_work {
            NewStream::Filter(Box::new(StreamFilter::new(active)))
        } else {
            NewStream::RoutingOnly(active)
        }
    }

    /// A scheduled event, on the main thread: a tick moves the ramps to
    /// their phase of now, flushes the guards' tallies (which may eject a
    /// ramp's canary and stop its ramp), updates the weight gauges when
    /// either changed what requests are routed with, adopts rules another
    /// configuration fetched and starts a fetch when it is due.
    pub fn on_scheduled(&self, event: u64) {
        if event != TICK {
            return;
        }
        let active = self.active();
        if let Some(rules) = &active.rules {
            let (moved, due) = rules.set.advance(self.handle.now_ms());
            let learned = active.guard.as_ref().is_some_and(|g| g.tick(&rules.set));
            if moved || learned {
                active.show_weights();
            }
            self.ramp_due.store(due.unwrap_or(0), Ordering::Relaxed);
            self.set_tick();
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

    /// Gauges by metric id.
    #[derive(Default)]
    struct Gauges(Mutex<std::collections::HashMap<usize, u64>>);

    impl Sink for Gauges {
        fn add(&self, _: Option<&Metric>, _: u64) {}
        fn set(&self, metric: Option<&Metric>, value: u64) {
            if let Some(m) = metric {
                self.0.lock().unwrap().insert(m.id, value);
            }
        }
    }

    #[test]
    fn a_ramp_starts_in_its_phase_of_now_and_a_canary_its_baseline_ejects_stops_it() {
        let now = Gauges::default().now_ms();
        let start = canary_router::domain::ramp::format_time(now - 60_000);
        let ramp = format!(
            r#","ramp":{{"canary":"v2","start":"{start}","steps":[{{"setWeight":30}},{{"pause":{{"duration":"1h"}}}},{{"setWeight":100}}]}}"#
        );
        let guard =
            r#","guard":{"baseline":"v1","maxErrorRate":0.05,"minRequests":20,"interval":"10s"}"#;
        let json = rules(&ramp, guard).replace("\"name\":\"split\"", "\"name\":\"config-ramp\"");
        let Plugin { settings, rules } =
            compile(b"canary-router", json.as_bytes(), &Workload::default()).unwrap();
        let sink = Arc::new(Gauges::default());
        let names = Mutex::new(Vec::<String>::new());
        let active = Active::new(
            Arc::new(settings),
            rules,
            Arc::new(Global::default()),
            sink.clone(),
            |_, name| {
                let mut n = names.lock().unwrap();
                n.push(name.to_string());
                Some(n.len() - 1)
            },
        );
        let names = names.into_inner().unwrap();
        let gauge = |kind: &str, dest: Option<&str>| {
            let name = canary_router::domain::stats::tagged(
                kind,
                "backend.default.svc.cluster.local",
                "config-ramp",
                dest,
            );
            let id = names.iter().position(|n| *n == name).expect(&name);
            sink.0.lock().unwrap().get(&id).copied()
        };
        // One step done: 30% to v2, the next step in an hour.
        assert_eq!(gauge("weight", Some("v2")), Some(3_000));
        assert_eq!(gauge("weight", Some("v1")), Some(7_000));
        assert_eq!(gauge("ramp_step", None), Some(1));
        assert_eq!(gauge("ramp_aborted", None), Some(0));
        let next = canary_router::domain::ramp::parse_time(&start).unwrap() + 3_600_000;
        assert_eq!(gauge("ramp_next_step_ms", None), Some(next));
        // The baseline (70%) is sampled one answer in 2 (70 / 30).
        let set = &active.rules.as_ref().unwrap().set;
        let g = active.guard.as_ref().unwrap();
        let sampled = (0..100).filter(|_| g.sample(0).is_some()).count();
        assert_eq!(sampled, 50);
        // v2 fails, v1 does not: the 20th of v2's answers ejects it.
        let (mut learned, mut counted) = (0, [0u64; 2]);
        for _ in 0..40 {
            for (stat, status) in [(0, 200), (1, 503)] {
                if g.sample(stat).is_none() {
                    continue;
                }
                counted[stat as usize] += 1;
                if g.on_response(set, stat, Some(status), None) {
                    learned += 1;
                    active.show_weights();
                }
            }
        }
        assert_eq!(learned, 1);
        assert!(g.is_ejected(1));
        // A tick shows the windows: what was counted of each (the baseline
        // sampled one in 2, then every answer once its canary has no weight).
        g.tick(set);
        assert_eq!(counted[1], 40);
        assert!(counted[0] > 20 && counted[0] < 40, "{counted:?}");
        assert_eq!(gauge("guard.window_requests", Some("v2")), Some(40));
        assert_eq!(gauge("guard.window_errors", Some("v2")), Some(40));
        assert_eq!(gauge("guard.window_requests", Some("v1")), Some(counted[0]));
        assert_eq!(gauge("guard.window_errors", Some("v1")), Some(0));
        assert_eq!(gauge("weight", Some("v2")), Some(0));
        assert_eq!(gauge("weight", Some("v1")), Some(10_000));
        assert_eq!(gauge("ramp_aborted", None), Some(1));
        assert_eq!(gauge("ramp_step", None), Some(1));
        assert_eq!(gauge("ramp_next_step_ms", None), Some(0));
        // Its next step's time passes: it stays stopped.
        assert_eq!(set.advance(next + 1), (false, None));
        let ramp = set.services()[0].rules[0].route.ramp().unwrap();
        assert!(ramp.is_aborted());
        assert_eq!(
            set.services()[0].rules[0].route.weights().each().nth(1),
            Some(0)
        );
        // Replaced by rules without it: the rule shows no weight, no
        // ramp, no ejection and no window.
        active.zero();
        for (kind, dest) in [
            ("weight", Some("v1")),
            ("weight", Some("v2")),
            ("ramp_aborted", None),
            ("ramp_step", None),
            ("guard.ejected", Some("v2")),
            ("guard.window_requests", Some("v2")),
            ("guard.window_errors", Some("v2")),
            ("guard.window_requests", Some("v1")),
        ] {
            assert_eq!(gauge(kind, dest), Some(0), "{kind} {dest:?}");
        }
    }
}
