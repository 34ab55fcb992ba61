//! The guards of one rule set in the module: the core's windows, records,
//! ejection rule and baseline comparison ([`canary_router::domain::guard`],
//! [`canary_router::domain::guarded`]) fed from every worker.
//!
//! The wasm filter runs one VM per worker, so each keeps its own tallies
//! and learns ejections from shared data. Here one [`Guards`] serves every
//! worker: each counted destination's tally sits behind its own mutex that
//! the workers add to, an ejection is an atomic flag every worker sees at
//! once, and the records live in the module's process-wide [`Shared`]
//! store, with the same compare-and-swap flushes (at once for an error,
//! after [`FLUSH_SUCCESSES`] answers, and on every tick, which the
//! configuration's ticker runs on Envoy's main thread). A guard with a
//! `baseline` counts the baseline's answers too, one in k as the wasm
//! filter samples them ([`guarded::sample_every`]), and with
//! `maxLatencyRatio` both sides' times (`x-envoy-upstream-service-time`).
//! Ejecting a ramp's canary stops the ramp. As in the wasm filter, a new
//! rule set (another digest) starts with empty records, and a configuration
//! that replaces another with the same rules joins its counts and ejections.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use canary_router::domain::guard::{self, Flushed, Judge, Shape, Spec, Tally, FLUSH_SUCCESSES};
use canary_router::domain::guarded;
use canary_router::domain::rules::{Outcome, RequestView, RuleSet};

use crate::abi::ConfigHandle;
use crate::metrics::Metric;
use crate::store::Shared;

const NONE: u32 = u32::MAX;

/// Where the module's guard records live in the [`Shared`] store.
const PREFIX: &str = "canary-router/guard/module";

/// The stats of one counted destination, by kind (`ejected` and the
/// window's figures are gauges, `requests` and `errors` counters).
#[derive(Debug, Default)]
pub struct SlotMetrics {
    /// 1 once ejected.
    pub ejected: Option<Metric>,
    /// Responses counted.
    pub requests: Option<Metric>,
    /// Errors among them.
    pub errors: Option<Metric>,
    /// The window's responses, errors and p90 in milliseconds, for
    /// `canaryctl watch`.
    pub window: [Option<Metric>; 3],
}

/// What the guards report to, from any thread: Envoy's stats (through the
/// configuration) and the clock; a fake in tests.
pub trait Sink: Send + Sync {
    /// Adds `n` to a counter.
    fn add(&self, metric: Option<&Metric>, n: u64);
    /// Sets a gauge.
    fn set(&self, metric: Option<&Metric>, value: u64);
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Sink for ConfigHandle {
    fn add(&self, metric: Option<&Metric>, n: u64) {
        ConfigHandle::add(self, metric, n);
    }
    fn set(&self, metric: Option<&Metric>, value: u64) {
        self.set_gauge(metric, value);
    }
}

/// One counted destination of a rule: a guarded one, or the baseline
/// another is compared with.
struct Slot {
    stat_index: u32,
    /// The destination's label (subset or cluster), and `service S, rule R,
    /// destination D` for the log.
    label: Box<str>,
    name: Box<str>,
    /// Answers counted and not yet flushed.
    pending: Mutex<Tally>,
    /// A baseline only: one answer in `every` is counted
    /// ([`guarded::sample_every`]); `left` counts down to the next.
    every: AtomicU32,
    left: AtomicU32,
    metrics: SlotMetrics,
}

impl Slot {
    /// Takes the tally out.
    fn take(&self) -> Tally {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts a tally back (a flush that could not write it).
    fn keep(&self, t: &Tally) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(t);
    }
}

/// A rule with at least one guarded destination.
struct Rule {
    key: String,
    specs: Box<[Spec]>,
    shape: Shape,
    slots: Box<[Slot]>,
    /// Its answers' times are counted (a guard judges latency).
    timed: bool,
    /// The slot of its ramp's canary: ejecting that one stops the ramp.
    ramp: Option<u32>,
    /// The rule's service and index in the rule set.
    at: (u32, u32),
}

/// The guards of one rule set, shared by every worker.
pub struct Guards {
    rules: Box<[Rule]>,
    /// By `stat_index`: (guarded rule, slot), or `NONE`.
    of_stat: Box<[(u32, u32)]>,
    /// By `stat_index`: ejected.
    ejected: Box<[AtomicBool]>,
    /// How often ticks should flush.
    pub tick_ms: u32,
    sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for Guards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guards")
            .field("rules", &self.rules.len())
            .field("tick_ms", &self.tick_ms)
            .finish_non_exhaustive()
    }
}

impl Guards {
    /// The guards of `set`, or `None` when it has none. `metrics` gives the
    /// stats of a counted destination (service, rule, destination names).
    /// Starts the rule set's records (cleared unless a configuration of
    /// this process already runs the same rules) and learns what is
    /// ejected (stopping the ramp of an ejected canary).
    pub fn new(
        set: &RuleSet,
        digest: u64,
        sink: Arc<dyn Sink>,
        mut metrics: impl FnMut(&str, &str, &str) -> SlotMetrics,
    ) -> Option<Self> {
        if !set.all_destinations().any(|(_, _, d)| d.guard.is_some()) {
            return None;
        }
        let digest = format!("{digest:016x}");
        let n = set.destination_count() as usize;
        let mut of_stat = vec![(NONE, NONE); n];
        let mut rules = Vec::new();
        let mut keys = Vec::new();
        guarded::for_each(
            set,
            |ordinal, slot, s, r, d| {
                if let Some(e) = of_stat.get_mut(d.stat_index as usize) {
                    *e = (ordinal, slot);
                }
                Slot {
                    stat_index: d.stat_index,
                    label: d.label.into(),
                    name: format!(
                        "service {}, rule {}, destination {}",
                        s.name, r.name, d.label
                    )
                    .into(),
                    pending: Mutex::new(Tally::default()),
                    every: AtomicU32::new(1),
                    left: AtomicU32::new(0),
                    metrics: metrics(&s.name, &r.name, d.label),
                }
            },
            |g| {
                let key = format!("{PREFIX}/{digest}/{}", rules.len());
                keys.push((key.clone(), g.slots.len(), g.timed));
                rules.push(Rule {
                    key,
                    specs: g.specs.into(),
                    shape: g.shape,
                    slots: g.slots.into(),
                    timed: g.timed,
                    ramp: g.ramp_canary,
                    at: g.at,
                });
            },
        );
        let fresh = guard::install(&mut Shared, PREFIX, &digest, &keys);
        let bucket = rules
            .iter()
            .flat_map(|r| r.specs.iter())
            .map(Spec::bucket_ms)
            .min()
            .unwrap_or(1000);
        let guards = Guards {
            rules: rules.into(),
            of_stat: of_stat.into(),
            ejected: (0..n).map(|_| AtomicBool::new(false)).collect(),
            tick_ms: bucket.clamp(100, 1000) as u32,
            sink,
        };
        for (ri, rule) in guards.rules.iter().enumerate() {
            for slot in rule.slots.iter() {
                guards.sink.set(slot.metrics.ejected.as_ref(), 0);
                guards.sink.add(slot.metrics.requests.as_ref(), 0);
                guards.sink.add(slot.metrics.errors.as_ref(), 0);
            }
            if !fresh {
                guards.flush(set, ri, 0, &Tally::default());
            }
        }
        guards.resample(set);
        Some(guards)
    }

    /// Sets every guard gauge to 0 (the rule set is being replaced: a rule
    /// or destination no longer there shows nothing ejected and an empty
    /// window; the rules that follow set their own).
    pub fn zero(&self) {
        for slot in self.rules.iter().flat_map(|r| r.slots.iter()) {
            let m = &slot.metrics;
            for g in std::iter::once(&m.ejected).chain(&m.window) {
                self.sink.set(g.as_ref(), 0);
            }
        }
    }

    /// Whether destination `stat_index` is ejected.
    #[inline]
    pub fn is_ejected(&self, stat_index: u32) -> bool {
        self.ejected
            .get(stat_index as usize)
            .is_some_and(|e| e.load(Ordering::Acquire))
    }

    /// The decision with ejected destinations taken out ([`guard::adjust`]).
    #[inline]
    pub fn adjust<'a, R: RequestView>(
        &self,
        set: &'a RuleSet,
        outcome: Outcome<'a>,
        req: &R,
        random: impl FnOnce() -> u64,
    ) -> Outcome<'a> {
        guard::adjust(set, outcome, req, random, |i| self.is_ejected(i))
    }

    /// Takes a request to destination `stat_index` into the guards' sample:
    /// whether its answer is counted (its destination is guarded, or a
    /// baseline and this answer is one of its sample) and whether its time
    /// is. Moves a baseline's countdown, so call it once per request.
    #[inline]
    pub fn sample(&self, stat_index: u32) -> Option<bool> {
        let &(r, si) = self.of_stat.get(stat_index as usize)?;
        let rule = self.rules.get(r as usize)?;
        let slot = rule.slots.get(si as usize)?;
        let every = slot.every.load(Ordering::Relaxed);
        if every > 1 {
            let before = slot
                .left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.checked_sub(1).unwrap_or(every - 1))
                })
                .unwrap_or(0);
            if before != 0 {
                return None;
            }
        }
        Some(rule.timed)
    }

    /// Sets how often each baseline-only destination's answers are counted,
    /// from the weights requests are picked with now (a ramp's step or an
    /// ejection moves them).
    pub fn resample(&self, set: &RuleSet) {
        for rule in self.rules.iter() {
            let (si, ri) = rule.at;
            let Some(r) = set
                .services()
                .get(si as usize)
                .and_then(|s| s.rules.get(ri as usize))
            else {
                continue;
            };
            let stat = |i: usize| rule.slots.get(i).map_or(NONE, |s| s.stat_index);
            for (i, slot) in rule.slots.iter().enumerate() {
                let Some(every) = guarded::sample_every(&r.route, &rule.specs, stat, i) else {
                    continue;
                };
                slot.every.store(every, Ordering::Relaxed);
                let _ = slot
                    .left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.min(every - 1))
                    });
            }
        }
    }

    /// Counts an answer of destination `stat_index`: its status (`None`
    /// when the stream ended without one, an error as a 5xx is) and its
    /// time in milliseconds, if known. Whether an ejection was learned
    /// (the weights requests are picked with changed).
    pub fn on_response(
        &self,
        set: &RuleSet,
        stat_index: u32,
        status: Option<u32>,
        ms: Option<u64>,
    ) -> bool {
        let Some(&(ri, si)) = self.of_stat.get(stat_index as usize) else {
            return false;
        };
        let Some(slot) = self
            .rules
            .get(ri as usize)
            .and_then(|r| r.slots.get(si as usize))
        else {
            return false;
        };
        let error = status.is_none_or(|s| s >= 500);
        let taken = {
            let mut p = slot.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.count(error, ms);
            // Whoever takes the tally flushes it.
            (error || p.requests >= FLUSH_SUCCESSES).then(|| std::mem::take(&mut *p))
        };
        match taken {
            Some(t) => self.flush(set, ri as usize, si as usize, &t),
            None => false,
        }
    }

    /// Flushes every pending tally, learns what another configuration of
    /// the same rules ejected, and shows each window's figures. Whether an
    /// ejection was learned.
    pub fn tick(&self, set: &RuleSet) -> bool {
        let mut learned = false;
        for (ri, rule) in self.rules.iter().enumerate() {
            let mut flushed = false;
            for (si, slot) in rule.slots.iter().enumerate() {
                let t = slot.take();
                if !t.is_empty() {
                    learned |= self.flush(set, ri, si, &t);
                    flushed = true;
                }
            }
            let all_known = rule.slots.iter().all(|s| self.is_ejected(s.stat_index));
            if !flushed && !all_known {
                learned |= self.flush(set, ri, 0, &Tally::default());
            }
            let now = self.sink.now_ms();
            if let Some((rec, _)) = guard::read(&mut Shared, &rule.key, &rule.specs) {
                for (i, (slot, spec)) in rule.slots.iter().zip(rule.specs.iter()).enumerate() {
                    let side = rec.side(i, spec, now);
                    let [requests, errors, p90] = &slot.metrics.window;
                    self.sink.set(requests.as_ref(), side.requests);
                    self.sink.set(errors.as_ref(), side.errors);
                    self.sink.set(p90.as_ref(), side.p90_ms as u64);
                }
            }
        }
        learned
    }

    /// Adds `t` to slot `si` of rule `ri` in the store (an empty tally only
    /// reads), then applies what the record says is ejected; whether that
    /// was news.
    fn flush(&self, set: &RuleSet, ri: usize, si: usize, t: &Tally) -> bool {
        let Some(rule) = self.rules.get(ri) else {
            return false;
        };
        // A canary is judged with its baseline's pending answers too: they go first.
        let mut learned = false;
        if let Some(Judge::Baseline { slot, .. }) = rule.specs.get(si).map(|s| s.judge) {
            if let Some(b) = rule.slots.get(slot as usize) {
                let pending = b.take();
                if !pending.is_empty() {
                    learned = self.flush(set, ri, slot as usize, &pending);
                }
            }
        }
        let now = self.sink.now_ms();
        let result = guard::flush(&mut Shared, &rule.key, &rule.shape, &rule.specs, si, t, now);
        let Flushed::Done { ejected, tripped } = result else {
            // Keep the tally for the next flush.
            if let Some(slot) = rule.slots.get(si) {
                slot.keep(t);
            }
            return learned;
        };
        if let Some(slot) = rule.slots.get(si) {
            self.sink
                .add(slot.metrics.requests.as_ref(), u64::from(t.requests));
            self.sink
                .add(slot.metrics.errors.as_ref(), u64::from(t.errors));
        }
        if let (Some(m), Some(slot), Some(spec)) =
            (&tripped, rule.slots.get(si), rule.specs.get(si))
        {
            let label = |i: usize| rule.slots.get(i).map(|s| &*s.label);
            log::warn!("{}", guarded::Ejection::new(&slot.name, spec, m, label));
        }
        for (i, slot) in rule.slots.iter().enumerate() {
            if ejected & (1u64 << (i % 64)) == 0 {
                continue;
            }
            // The flush that ejected says so (after its `guard ejected`
            // line); a configuration that learns it, at debug level.
            let made_here = tripped.is_some() && i == si;
            let flag = self.ejected.get(slot.stat_index as usize);
            if flag.is_none_or(|f| f.swap(true, Ordering::AcqRel)) {
                // Another worker's flush read the record this one wrote and
                // stopped the ramp first, at debug level: the line is still
                // this flush's to say.
                if made_here && rule.ramp == Some(i as u32) {
                    if let Some(line) = guarded::stopped_ramp(set, rule.at, &slot.name) {
                        log::warn!("{line}");
                    }
                }
                continue;
            }
            self.sink.set(slot.metrics.ejected.as_ref(), 1);
            learned = true;
            if rule.ramp == Some(i as u32) {
                let level = if made_here {
                    log::Level::Warn
                } else {
                    log::Level::Debug
                };
                if let Some(line) = guarded::stop_ramp(set, rule.at, &slot.name) {
                    log::log!(level, "{line}");
                }
            }
        }
        learned
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use canary_router::domain::rules::Workload;
    use canary_router::Plugin;
    use std::sync::atomic::AtomicU64 as Clock;
    use std::sync::{Arc, Mutex};

    /// Stats by metric id, and a clock the test moves.
    #[derive(Default, Clone)]
    struct Fake {
        counters: Arc<Mutex<std::collections::HashMap<usize, u64>>>,
        gauges: Arc<Mutex<std::collections::HashMap<usize, u64>>>,
        now: Arc<Clock>,
    }

    impl Sink for Fake {
        fn add(&self, metric: Option<&Metric>, n: u64) {
            if let Some(m) = metric {
                *self.counters.lock().unwrap().entry(m.id).or_default() += n;
            }
        }
        fn set(&self, metric: Option<&Metric>, value: u64) {
            if let Some(m) = metric {
                self.gauges.lock().unwrap().insert(m.id, value);
            }
        }
        fn now_ms(&self) -> u64 {
            self.now.load(Ordering::SeqCst)
        }
    }

    /// 50/50 v1/v2, v2 guarded at `rate` over `min` responses in 10 s; a
    /// distinct `tag` makes a distinct rule set (digest), so that tests do
    /// not share records in the process-wide store.
    fn guarded(tag: &str, rate: f64, min: u32, v1_guarded: bool) -> (RuleSet, u64) {
        guarded_ramp(tag, rate, min, v1_guarded, "")
    }

    /// [`guarded`], the rule walking `ramp` (a `"ramp":{...},` member, or "").
    fn guarded_ramp(
        tag: &str,
        rate: f64,
        min: u32,
        v1_guarded: bool,
        ramp: &str,
    ) -> (RuleSet, u64) {
        let g = format!(r#"{{"maxErrorRate":{rate},"minRequests":{min},"interval":"10s"}}"#);
        let v1 = if v1_guarded {
            format!(r#","guard":{g}"#)
        } else {
            String::new()
        };
        let json = format!(
            r#"{{"services":[{{"hosts":["backend"],"http":[{{"name":"{tag}",{ramp}"route":[
            {{"destination":{{"host":"backend","subset":"v1","port":{{"number":80}}}},"weight":50{v1}}},
            {{"destination":{{"host":"backend","subset":"v2","port":{{"number":80}}}},"weight":50,"guard":{g}}}]}}]}}]}}"#
        );
        let rules = Plugin::from_bytes(json.as_bytes(), &Workload::default())
            .unwrap()
            .rules
            .unwrap();
        (rules.set, rules.digest)
    }

    /// v2's stats are 10 (ejected), 11 (requests), 12 (errors); v1's 20, 21, 22.
    fn metrics_by_label() -> impl FnMut(&str, &str, &str) -> SlotMetrics {
        move |_, _, d| {
            let base = if d == "v2" { 10 } else { 20 };
            SlotMetrics {
                ejected: Some(Metric::plain(base)),
                requests: Some(Metric::plain(base + 1)),
                errors: Some(Metric::plain(base + 2)),
                window: Default::default(),
            }
        }
    }

    #[test]
    fn workers_eject_a_failing_destination_once_at_its_threshold() {
        let (set, digest) = guarded("once", 0.5, 20, false);
        let fake = Fake::default();
        fake.now.store(1_000_000, Ordering::SeqCst);
        let g = Arc::new(
            Guards::new(&set, digest, Arc::new(fake.clone()), metrics_by_label()).unwrap(),
        );
        assert!(g.sample(1).is_some() && g.sample(0).is_none());
        // Four workers, each 10 failing responses of v2: 40 in all, the
        // 20th error ejects.
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (g, set) = (g.clone(), &set);
                s.spawn(move || {
                    for _ in 0..10 {
                        g.on_response(set, 1, Some(503), None);
                    }
                });
            }
        });
        assert!(g.is_ejected(1));
        assert_eq!(fake.gauges.lock().unwrap()[&10], 1);
        let counted = fake.counters.lock().unwrap();
        assert_eq!(
            (counted[&11], counted[&12]),
            (40, 40),
            "every response counted once"
        );
    }

    #[test]
    fn successes_are_flushed_in_batches_and_by_ticks_and_dilute_the_errors() {
        let (set, digest) = guarded("dilute", 0.5, 20, false);
        let fake = Fake::default();
        fake.now.store(2_000_000, Ordering::SeqCst);
        let g = Guards::new(&set, digest, Arc::new(fake.clone()), metrics_by_label()).unwrap();
        for _ in 0..15 {
            g.on_response(&set, 1, Some(200), None);
        }
        // Below the batch: nothing flushed yet; a tick flushes them.
        assert_eq!(fake.counters.lock().unwrap()[&11], 0);
        g.tick(&set);
        assert_eq!(fake.counters.lock().unwrap()[&11], 15);
        // 15 successes and 14 errors: 48% < 50%, not ejected.
        for _ in 0..14 {
            g.on_response(&set, 1, Some(500), None);
        }
        assert!(!g.is_ejected(1));
        // One more error: 15 of 30, 50%: ejected.
        g.on_response(&set, 1, None, None);
        assert!(g.is_ejected(1));
    }

    #[test]
    fn the_last_destination_with_weight_is_never_ejected_and_requests_move_off_an_ejected_one() {
        let (set, digest) = guarded("last", 0.5, 20, true);
        let fake = Fake::default();
        fake.now.store(3_000_000, Ordering::SeqCst);
        let g = Guards::new(&set, digest, Arc::new(fake.clone()), metrics_by_label()).unwrap();
        for _ in 0..30 {
            g.on_response(&set, 1, Some(503), None);
            g.on_response(&set, 0, Some(503), None);
        }
        assert_eq!(
            (g.is_ejected(0), g.is_ejected(1)),
            (false, true),
            "v2 went first; v1 is the rule's last destination"
        );
        // Decisions for v2 go to v1; before the adjustment some went to v2.
        let (mut before, mut after) = (0, 0);
        for r in 0..200u64 {
            let bits = r.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let out = set.decide_issuing(&HostView, || bits, || None);
            before += usize::from(matches!(out, Outcome::Routed(d) if d.target.stat_index == 1));
            let out = g.adjust(&set, out, &HostView, || bits);
            match out {
                Outcome::Routed(d) => after += usize::from(d.target.stat_index == 1),
                _ => panic!("every request is routed"),
            }
        }
        assert!(before > 50, "{before}");
        assert_eq!(after, 0);
    }

    /// A request for `backend` with no other header.
    struct HostView;
    impl RequestView for HostView {
        fn header(&self, name: &str) -> Option<&[u8]> {
            (name == ":authority").then_some(b"backend".as_slice())
        }
    }

    #[test]
    fn a_configuration_with_the_same_rules_joins_the_ejection_and_new_rules_start_over() {
        let (set, digest) = guarded("join", 0.5, 20, false);
        let fake = Fake::default();
        fake.now.store(4_000_000, Ordering::SeqCst);
        let first = Guards::new(&set, digest, Arc::new(fake.clone()), metrics_by_label()).unwrap();
        for _ in 0..20 {
            first.on_response(&set, 1, Some(503), None);
        }
        assert!(first.is_ejected(1));
        // An ECDS push of the same rules: the new configuration knows at once.
        let second = Guards::new(&set, digest, Arc::new(fake.clone()), metrics_by_label()).unwrap();
        assert!(second.is_ejected(1));
        // Other rules (another digest): a fresh start.
        let (other, other_digest) = guarded("join-other", 0.5, 20, false);
        let third = Guards::new(&other, other_digest, Arc::new(fake), metrics_by_label()).unwrap();
        assert!(!third.is_ejected(1));
    }

    /// Every log line at warn or above, for the test that reads them.
    struct Warnings(Mutex<Vec<String>>);

    impl log::Log for Warnings {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                self.0.lock().unwrap().push(r.args().to_string());
            }
        }
        fn flush(&self) {}
    }

    static WARNINGS: Warnings = Warnings(Mutex::new(Vec::new()));

    #[test]
    fn the_flush_that_ejects_says_the_ramp_stopped_though_another_worker_stopped_it_first() {
        let _ = log::set_logger(&WARNINGS);
        log::set_max_level(log::LevelFilter::Warn);
        let now = 5_000_000;
        let start = canary_router::domain::ramp::format_time(now - 1_000);
        let ramp = format!(
            r#""ramp":{{"canary":"v2","start":"{start}","steps":[{{"setWeight":50}},{{"pause":{{"duration":"24h"}}}},{{"setWeight":100}}]}},"#
        );
        let (set, digest) = guarded_ramp("raced", 0.5, 20, false, &ramp);
        let fake = Fake::default();
        fake.now.store(now, Ordering::SeqCst);
        let g = Guards::new(&set, digest, Arc::new(fake.clone()), metrics_by_label()).unwrap();
        // Another worker read the record this flush is about to write and
        // got there first: it marked v2 ejected and stopped the ramp.
        g.ejected[1].store(true, Ordering::SeqCst);
        assert!(set.services()[0].rules[0].route.ramp().unwrap().abort());
        for _ in 0..20 {
            g.on_response(&set, 1, Some(503), None);
        }
        let said: Vec<String> = WARNINGS
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("rule raced"))
            .cloned()
            .collect();
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(said[0].contains("guard ejected"), "{said:#?}");
        assert!(said[1].contains("stopped at step"), "{said:#?}");
    }
}
