//! The guard of a destination: counts its responses over a sliding window
//! and ejects it from the split when too many fail. Pure logic; the
//! proxy-wasm adapter (`adapters/proxy_wasm/guard_host.rs`) feeds it
//! responses and the host's shared data.
//!
//! **What is shared.** One Envoy's workers count together through shared
//! data: one key per guarded *rule* (`canary-router/guard/<root>/<digest>/<n>`)
//! holds a [`Record`]: for each counted destination of the rule (guarded,
//! or another's baseline), its window (ten buckets of `interval / 10`) and
//! whether it is ejected.
//! Keeping a rule's destinations in one record is what lets a compare-and-swap
//! refuse to eject the last destination the rule has left, even when two
//! workers eject two destinations at the same moment.
//!
//! **How a worker counts.** Each worker keeps a [`Tally`] per guarded
//! destination and [`flush`]es it into the record with a CAS write: at once
//! for an error, after [`FLUSH_SUCCESSES`] successes, and on every tick. A
//! flush whose CAS write turns a destination's `ejected` on is *the*
//! ejection: exactly one per destination and rule set, however the workers
//! race (a lost CAS re-reads and retries; nothing is counted twice, since
//! only the winning write happened). Every flush returns the record's
//! ejected destinations, so the other workers learn of the ejection at
//! their next flush or tick, and a worker that ejected keeps its own local
//! state whatever happens to the record.
//!
//! **Reset.** A new rule set (another [`digest`](crate::domain::plugin::Rules::digest))
//! starts with empty records ([`install`]): the key `…/current` names the
//! digest in use, and a VM installing a different one clears its records
//! first. Every write of an install is the same bytes whichever VM makes it
//! (proxy-wasm cannot create a key conditionally: a CAS of 0 always writes),
//! so two VMs installing the same rules at once agree; the one thing such
//! a race can lose is what a third VM flushed between the other's read of
//! `…/current` and its clearing write, two consecutive host calls.

use alloc::{boxed::Box, format, string::String, vec, vec::Vec};

use crate::domain::judge::{self, Histogram, Side, Thresholds, Verdict};
use crate::domain::rules::{Decision, Outcome, RequestView, RuleSet};
use crate::domain::shared::{CasMismatch, SharedStore};
use crate::schema::config;
use crate::schema::error::{ConfigError, Reason};

/// Buckets of a window.
pub const BUCKETS: usize = 10;
/// Successes a worker counts locally before it flushes them (errors are
/// flushed at once; ticks flush the rest).
pub const FLUSH_SUCCESSES: u32 = 16;
/// The shortest interval accepted, in milliseconds.
pub const MIN_INTERVAL_MS: u64 = 500;
/// The longest interval accepted, in milliseconds (one hour).
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
/// How many times a flush retries a lost compare-and-swap before it keeps
/// its tally for the next one.
const CAS_ATTEMPTS: u32 = 8;

/// A destination's guard, compiled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Error share that ejects, in (0, 1] (with a baseline: the excess
    /// over the baseline's).
    pub max_error_rate: f64,
    /// Responses the window must hold before it may eject.
    pub min_requests: u32,
    /// Window length in milliseconds.
    pub interval_ms: u64,
    /// How the window is judged.
    pub judge: Judge,
}

/// How a guard judges its destination's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judge {
    /// Its own error share against `maxErrorRate`.
    Absolute,
    /// Against the window of `slot` (the rule's destination index once
    /// compiled; the record's slot in the guard's record), with the p90
    /// ratio that ejects (0: latency is not judged).
    Baseline {
        /// The baseline.
        slot: u32,
        /// `maxLatencyRatio`, or 0.
        max_latency_ratio: f64,
    },
    /// Only counted, as another guard's baseline: never ejected by it.
    Count,
}

impl Spec {
    /// Width of one bucket, in milliseconds.
    pub fn bucket_ms(&self) -> u64 {
        (self.interval_ms / BUCKETS as u64).max(1)
    }
}

/// Checks a guard as written; `path` is its JSON path.
#[inline(never)]
pub fn compile(g: &config::Guard, path: &str) -> Result<Spec, ConfigError> {
    // `!(x > 0)` also refuses NaN (not that JSON can write one).
    if !(g.max_error_rate > 0.0 && g.max_error_rate <= 1.0) {
        return Err(ConfigError::at(path, "maxErrorRate", Reason::GuardRate));
    }
    let min_requests = match u32::try_from(g.min_requests) {
        Ok(n @ 1..) => n,
        Ok(_) => {
            return Err(ConfigError::at(
                path,
                "minRequests",
                Reason::GuardMinRequests(g.min_requests),
            ))
        }
        // Over u32: as good as "never enough", but not wrong; cap it.
        Err(_) if g.min_requests > 0 => u32::MAX,
        Err(_) => {
            return Err(ConfigError::at(
                path,
                "minRequests",
                Reason::GuardMinRequests(g.min_requests),
            ))
        }
    };
    let interval_ms = parse_duration(&g.interval).ok_or_else(|| {
        ConfigError::at(
            path,
            "interval",
            Reason::MalformedDuration(g.interval.clone()),
        )
    })?;
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ConfigError::at(
            path,
            "interval",
            Reason::BadDuration {
                min: MIN_INTERVAL_MS,
                max: MAX_INTERVAL_MS,
            },
        ));
    }
    Ok(Spec {
        max_error_rate: g.max_error_rate,
        min_requests,
        interval_ms,
        judge: Judge::Absolute,
    })
}

/// Parses a duration in Istio's (Go's) syntax: one or more `<number><unit>`
/// with units `h`, `m`, `s`, `ms`, e.g. `30s`, `1m30s`, `1.5s`, `500ms`.
/// Returns milliseconds (fractions of a millisecond are dropped).
pub fn parse_duration(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (mut i, mut total) = (0usize, 0u64);
    while i < b.len() {
        let (mut int, mut frac, mut scale, mut digits) = (0u64, 0u64, 1u64, 0);
        while let Some(d @ b'0'..=b'9') = b.get(i) {
            int = int.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            i += 1;
            digits += 1;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while let Some(d @ b'0'..=b'9') = b.get(i) {
                if scale < 1_000_000_000 {
                    frac = frac * 10 + u64::from(d - b'0');
                    scale *= 10;
                }
                i += 1;
                digits += 1;
            }
        }
        if digits == 0 {
            return None;
        }
        let rest = b.get(i..)?;
        let (unit_ms, len) = if rest.starts_with(b"ms") {
            (1, 2)
        } else if rest.starts_with(b"h") {
            (3_600_000, 1)
        } else if rest.starts_with(b"m") {
            (60_000, 1)
        } else if rest.starts_with(b"s") {
            (1_000, 1)
        } else {
            return None;
        };
        i += len;
        total = total
            .checked_add(int.checked_mul(unit_ms)?)?
            .checked_add(frac * unit_ms / scale)?;
    }
    Some(total)
}

/// Response times a tally holds before its flush (a tally is flushed
/// after [`FLUSH_SUCCESSES`] responses; more, when flushes fail, are
/// counted without their times).
pub const TALLY_TIMES: usize = FLUSH_SUCCESSES as usize;

/// Responses counted but not yet flushed into shared data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Responses (errors included).
    pub requests: u32,
    /// Errors: a 5xx, or a stream that ended without a response.
    pub errors: u32,
    /// Response times held, in `bins`.
    pub timed: u8,
    /// The histogram bins of the response times held.
    pub bins: [u8; TALLY_TIMES],
}

impl Tally {
    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    /// Counts a response: an error or not, and its time in milliseconds if known.
    pub fn count(&mut self, error: bool, ms: Option<u64>) {
        self.requests = self.requests.saturating_add(1);
        self.errors = self.errors.saturating_add(u32::from(error));
        if let (Some(ms), Some(slot)) = (ms, self.bins.get_mut(usize::from(self.timed))) {
            *slot = judge::bin(ms) as u8;
            self.timed += 1;
        }
    }

    /// Adds another tally's counts (times while there is room).
    pub fn merge(&mut self, other: &Tally) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        for b in other.bins.iter().take(usize::from(other.timed)) {
            if let Some(slot) = self.bins.get_mut(usize::from(self.timed)) {
                *slot = *b;
                self.timed += 1;
            }
        }
    }
}

/// Why a flush ejected its destination, with the figures it judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tripped {
    /// `None`: its own error share (no baseline); else the baseline verdict.
    pub verdict: Option<Verdict>,
    /// The destination's window.
    pub canary: Side,
    /// The baseline's window (default without one).
    pub baseline: Side,
}

/// Judges slot `slot` of `record` at `now_ms`: whether its window calls for ejection.
fn judge_slot(record: &Record, specs: &[Spec], slot: usize, now_ms: u64) -> Option<Tripped> {
    let spec = specs.get(slot)?;
    match spec.judge {
        Judge::Absolute => {
            // Its own error share: at least `minRequests` responses, and
            // errors at or over `maxErrorRate`.
            let canary = record.side(slot, spec, now_ms);
            (canary.requests >= u64::from(spec.min_requests)
                && canary.errors as f64 >= spec.max_error_rate * canary.requests as f64)
                .then_some(Tripped {
                    verdict: None,
                    canary,
                    baseline: Side::default(),
                })
        }
        Judge::Baseline {
            slot: b,
            max_latency_ratio,
        } => {
            let canary = record.side(slot, spec, now_ms);
            let baseline = record.side(b as usize, spec, now_ms);
            let t = Thresholds {
                max_error_rate: spec.max_error_rate,
                max_latency_ratio,
                min_requests: u64::from(spec.min_requests),
            };
            judge::judge(&canary, &baseline, &t).map(|v| Tripped {
                verdict: Some(v),
                canary,
                baseline,
            })
        }
        Judge::Count => None,
    }
}

/// What a rule looks like to its guard: the guarded destinations' weights
/// (in record order) and whether an unguarded destination carries weight
/// (then ejecting every guarded one still leaves the rule somewhere to go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Weight above zero, per guarded destination.
    pub live: Box<[bool]>,
    /// Some destination without a guard has weight above zero.
    pub unguarded_live: bool,
}

impl Shape {
    /// Whether guarded destination `slot` may be ejected, given those
    /// already ejected: never the last destination with weight the rule has.
    pub fn may_eject(&self, record: &Record, slot: usize) -> bool {
        self.unguarded_live
            || self
                .live
                .iter()
                .enumerate()
                .any(|(j, live)| j != slot && *live && !record.ejected(j))
    }
}

/// The shared record of one guarded rule, kept as the bytes shared data
/// holds: for each counted destination (slot) its window, an `ejected`
/// byte then [`BUCKETS`] buckets of `interval / 10`, each its index (u64),
/// responses and errors (u32), and, when the rule judges latency
/// (`timed`), the [`judge::BINS`] counts of its response times (u32), all
/// little-endian. A flush changes one bucket in place: no window is
/// decoded or encoded whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    bytes: Vec<u8>,
    timed: bool,
}

/// The bytes of a bucket's index and counts, and of its response times.
const BUCKET_BYTES: usize = 16;
const TIMES_BYTES: usize = 4 * judge::BINS;

impl Record {
    /// A record of `n` empty windows.
    pub fn empty(n: usize, timed: bool) -> Self {
        Record {
            bytes: vec![0; n * Self::window_bytes(timed)],
            timed,
        }
    }

    /// The record in `bytes`, if they hold exactly `n` windows.
    pub fn from_bytes(bytes: Vec<u8>, n: usize, timed: bool) -> Option<Self> {
        (bytes.len() == n * Self::window_bytes(timed)).then_some(Record { bytes, timed })
    }

    /// The bytes kept in shared data.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn window_bytes(timed: bool) -> usize {
        1 + BUCKETS * Self::bucket_bytes(timed)
    }

    fn bucket_bytes(timed: bool) -> usize {
        BUCKET_BYTES + if timed { TIMES_BYTES } else { 0 }
    }

    /// Where bucket `b` of `slot`'s window starts.
    fn bucket(&self, slot: usize, b: usize) -> usize {
        slot * Self::window_bytes(self.timed) + 1 + b * Self::bucket_bytes(self.timed)
    }

    fn u32_at(&self, at: usize) -> u32 {
        self.bytes
            .get(at..at + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, u32::from_le_bytes)
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from(self.u32_at(at)) | u64::from(self.u32_at(at + 4)) << 32
    }

    fn put(&mut self, at: usize, value: &[u8]) {
        if let Some(s) = self.bytes.get_mut(at..at + value.len()) {
            s.copy_from_slice(value);
        }
    }

    /// Adds `n` to the u32 at `at`.
    fn add_u32(&mut self, at: usize, n: u32) {
        let v = self.u32_at(at).saturating_add(n);
        self.put(at, &v.to_le_bytes());
    }

    /// Whether `slot` is ejected.
    pub fn ejected(&self, slot: usize) -> bool {
        self.bytes.get(slot * Self::window_bytes(self.timed)) == Some(&1)
    }

    /// Ejects `slot`.
    pub fn eject(&mut self, slot: usize) {
        let at = slot * Self::window_bytes(self.timed);
        self.put(at, &[1]);
    }

    /// Which windows are ejected, as a bit mask by slot.
    pub fn ejected_mask(&self) -> u64 {
        let n = self.bytes.len() / Self::window_bytes(self.timed);
        (0..n)
            .filter(|i| self.ejected(*i))
            .fold(0, |m, i| m | (1u64 << (i % 64)))
    }

    /// Adds a tally to `slot`'s window at time `now_ms`: to the bucket of
    /// that time, which starts over if it held an older one.
    pub fn add(&mut self, slot: usize, spec: &Spec, now_ms: u64, t: &Tally) {
        let index = now_ms / spec.bucket_ms();
        let at = self.bucket(slot, (index % BUCKETS as u64) as usize);
        if self.u64_at(at) != index {
            let end = at + Self::bucket_bytes(self.timed);
            if let Some(s) = self.bytes.get_mut(at..end) {
                s.fill(0);
            }
            self.put(at, &index.to_le_bytes());
        }
        self.add_u32(at + 8, t.requests);
        self.add_u32(at + 12, t.errors);
        if self.timed {
            for bin in t.bins.iter().take(usize::from(t.timed)) {
                self.add_u32(at + BUCKET_BYTES + 4 * usize::from(*bin), 1);
            }
        }
    }

    /// `slot`'s figures over the last `interval` at `now_ms`.
    pub fn side(&self, slot: usize, spec: &Spec, now_ms: u64) -> Side {
        let index = now_ms / spec.bucket_ms();
        let oldest = index.saturating_sub(BUCKETS as u64 - 1);
        let mut side = Side::default();
        let mut times = Histogram::default();
        for b in 0..BUCKETS {
            let at = self.bucket(slot, b);
            if !(oldest..=index).contains(&self.u64_at(at)) {
                continue;
            }
            side.requests += u64::from(self.u32_at(at + 8));
            side.errors += u64::from(self.u32_at(at + 12));
            if self.timed {
                for (k, c) in times.0.iter_mut().enumerate() {
                    *c = c.saturating_add(self.u32_at(at + BUCKET_BYTES + 4 * k));
                }
            }
        }
        side.timed = times.count();
        side.p90_ms = times.quantile(judge::QUANTILE);
        side
    }
}

/// What a flush came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Flushed {
    /// The tally is in the record. `ejected` lists the rule's ejected
    /// destinations (a mask by slot); `tripped` is set when this very write
    /// ejected destination `slot` (log it, once).
    Done {
        /// Ejected destinations of the rule, by slot.
        ejected: u64,
        /// Why, and on what figures, this write ejected the destination.
        tripped: Option<Tripped>,
    },
    /// Shared data failed, or every CAS was lost: keep the tally for the next flush.
    Kept,
}

/// The record of a guarded rule, read from shared data (empty when there
/// is none yet, or it cannot be read: `None` only for a failed host call).
pub fn read(store: &mut dyn SharedStore, key: &str, specs: &[Spec]) -> Option<(Record, u32)> {
    let (n, timed) = (specs.len(), Spec::timed(specs));
    match store.get(key) {
        Ok(Some((bytes, cas))) => Some((
            Record::from_bytes(bytes, n, timed).unwrap_or_else(|| Record::empty(n, timed)),
            cas,
        )),
        Ok(None) => Some((Record::empty(n, timed), 0)),
        Err(_) => None,
    }
}

impl Spec {
    /// Whether a rule with these guards keeps response times (one judges latency).
    pub fn timed(specs: &[Spec]) -> bool {
        specs.iter().any(|s| {
            matches!(s.judge, Judge::Baseline { max_latency_ratio, .. } if max_latency_ratio > 0.0)
        })
    }
}

/// Adds `tally` to guarded destination `slot` of the rule whose record is
/// at `key`, and ejects it if its window calls for it and the rule keeps
/// another destination. An empty tally only reads the record.
#[inline(never)]
pub fn flush(
    store: &mut dyn SharedStore,
    key: &str,
    shape: &Shape,
    specs: &[Spec],
    slot: usize,
    tally: &Tally,
    now_ms: u64,
) -> Flushed {
    for _ in 0..CAS_ATTEMPTS {
        let Some((mut record, cas)) = read(store, key, specs) else {
            return Flushed::Kept;
        };
        if tally.is_empty() {
            return Flushed::Done {
                ejected: record.ejected_mask(),
                tripped: None,
            };
        }
        let Some(spec) = specs.get(slot) else {
            return Flushed::Kept;
        };
        let may_eject = shape.may_eject(&record, slot);
        let mut tripped = None;
        record.add(slot, spec, now_ms, tally);
        if may_eject && !record.ejected(slot) {
            tripped = judge_slot(&record, specs, slot, now_ms);
            if tripped.is_some() {
                record.eject(slot);
            }
        }
        match store.set(key, record.bytes(), cas) {
            Ok(Ok(())) => {
                return Flushed::Done {
                    ejected: record.ejected_mask(),
                    tripped,
                }
            }
            Ok(Err(CasMismatch)) => continue,
            Err(_) => return Flushed::Kept,
        }
    }
    Flushed::Kept
}

/// Starts rule set `digest` under `prefix`: clears the records `keys` of its
/// guarded rules (with their number of windows, and whether they keep
/// response times) unless `…/current` already
/// names it (another VM of this Envoy installed it: join its counts).
/// Returns whether the records were cleared.
pub fn install(
    store: &mut dyn SharedStore,
    prefix: &str,
    digest: &str,
    keys: &[(String, usize, bool)],
) -> bool {
    let current = format!("{prefix}/current");
    if let Ok(Some((bytes, _))) = store.get(&current) {
        if bytes == digest.as_bytes() {
            return false;
        }
    }
    for (key, n, timed) in keys {
        let _ = store.set(key, Record::empty(*n, *timed).bytes(), 0);
    }
    let _ = store.set(&current, digest.as_bytes(), 0);
    true
}

/// The decision with ejected destinations taken out: a request the rules
/// sent to an ejected destination (`is_ejected` by `stat_index`) is picked
/// again among the rule's others (a sticky key goes to its runner-up, so
/// users of the other destinations stay where they are).
#[inline]
pub fn adjust<'a, R: RequestView>(
    set: &'a RuleSet,
    outcome: Outcome<'a>,
    req: &R,
    random: impl FnOnce() -> u64,
    is_ejected: impl Fn(u32) -> bool,
) -> Outcome<'a> {
    match outcome {
        Outcome::Routed(d) if is_ejected(d.target.stat_index) => {
            repick(set, d, req, random, is_ejected).map_or(outcome, Outcome::Routed)
        }
        _ => outcome,
    }
}

#[inline(never)]
fn repick<'a, R: RequestView>(
    set: &'a RuleSet,
    d: Decision<'a>,
    req: &R,
    random: impl FnOnce() -> u64,
    is_ejected: impl Fn(u32) -> bool,
) -> Option<Decision<'a>> {
    let route = &set.services().get(d.service)?.rules.get(d.rule)?.route;
    let first = route.destinations.first()?.stat_index;
    let skip = (0..route.destinations.len() as u32)
        .filter(|i| is_ejected(first + i))
        .fold(0u64, |m, i| m | (1u64 << (i % 64)));
    // The key it was routed by: a cookie key issued just now, or the request's.
    let hash = match &d.issued {
        Some(key) => Some(crate::domain::pick::hash_key(key.as_bytes())),
        None => route.sticky_hash(req),
    };
    let (index, sticky) = match hash {
        Some(h) => (route.weights().pick_sticky_except(h, skip), true),
        None => (route.weights().pick_random_except(random(), skip)?, false),
    };
    let target = route.destinations.get(index)?;
    let cluster = set.cluster(target)?;
    (!is_ejected(target.stat_index)).then_some(Decision {
        destination: index,
        target,
        cluster,
        sticky,
        ..d
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Map {
        data: HashMap<String, (Vec<u8>, u32)>,
        next: u32,
        /// Before each write, this many foreign writes land on the key first.
        interfere: u32,
        other: Option<Tally>,
    }

    impl SharedStore for Map {
        fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            Ok(self.data.get(key).cloned())
        }
        fn set(
            &mut self,
            key: &str,
            value: &[u8],
            cas: u32,
        ) -> Result<Result<(), CasMismatch>, String> {
            if self.interfere > 0 {
                self.interfere -= 1;
                // Another worker flushes its tally into slot 0 first.
                let spec = SPEC;
                let (bytes, c) = self.data.get(key).cloned().unwrap_or_default();
                let mut r =
                    Record::from_bytes(bytes, 2, false).unwrap_or_else(|| Record::empty(2, false));
                r.add(0, &spec, 1_000, &self.other.unwrap());
                self.next += 1;
                let _ = c;
                self.data
                    .insert(key.into(), (r.bytes().to_vec(), self.next));
            }
            if let Some((_, c)) = self.data.get(key) {
                if cas != 0 && cas != *c {
                    return Ok(Err(CasMismatch));
                }
            }
            self.next += 1;
            self.data.insert(key.into(), (value.to_vec(), self.next));
            Ok(Ok(()))
        }
    }

    const SPEC: Spec = Spec {
        max_error_rate: 0.5,
        min_requests: 20,
        interval_ms: 10_000,
        judge: Judge::Absolute,
    };

    fn t(requests: u32, errors: u32) -> Tally {
        Tally {
            requests,
            errors,
            ..Tally::default()
        }
    }

    fn m(requests: u64, errors: u64) -> Side {
        Side {
            requests,
            errors,
            ..Side::default()
        }
    }

    fn shape() -> Shape {
        Shape {
            live: vec![true, true].into(),
            unguarded_live: false,
        }
    }

    #[test]
    fn durations_in_istio_syntax() {
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("1m"), Some(60_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500));
        assert_eq!(parse_duration(".5s"), Some(500));
        for bad in [
            "",
            "30",
            "s",
            "30x",
            "1.s5",
            "-1s",
            "1 s",
            "1S",
            "1e3s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_window_slides() {
        let trips = |r: &Record, now| judge_slot(r, &[SPEC], 0, now).map(|t| t.canary);
        let mut r = Record::empty(1, false);
        r.add(0, &SPEC, 0, &t(10, 10));
        r.add(0, &SPEC, 9_999, &t(10, 0));
        assert_eq!(r.side(0, &SPEC, 9_999), m(20, 10));
        assert!(trips(&r, 9_999).is_some(), "20 responses, half failed");
        // One bucket (1 s) later the first ten fell out.
        assert_eq!(r.side(0, &SPEC, 10_000), m(10, 0));
        assert!(trips(&r, 10_000).is_none());
        // Far later, a reused slot starts over.
        r.add(0, &SPEC, 100_000, &t(1, 1));
        assert_eq!(r.side(0, &SPEC, 100_000), m(1, 1));
    }

    #[test]
    fn below_min_requests_or_rate_never_trips() {
        let trips = |r: &Record| judge_slot(r, &[SPEC], 0, 0).map(|t| t.canary);
        let mut r = Record::empty(1, false);
        r.add(0, &SPEC, 0, &t(19, 19));
        assert!(trips(&r).is_none(), "19 < minRequests");
        r.add(0, &SPEC, 0, &t(21, 0));
        assert!(trips(&r).is_none(), "19 of 40 < 0.5");
        r.add(0, &SPEC, 0, &t(1, 1));
        assert!(trips(&r).is_none(), "20 of 41 < 0.5");
        r.add(0, &SPEC, 0, &t(1, 1));
        assert_eq!(trips(&r), Some(m(42, 21)));
    }

    #[test]
    fn records_round_trip_and_keep_windows_apart() {
        for timed in [false, true] {
            let mut r = Record::empty(3, timed);
            let mut tally = t(7, 2);
            tally.count(false, Some(300));
            r.add(1, &SPEC, 123_456, &tally);
            r.eject(2);
            let bytes = r.bytes().to_vec();
            assert_eq!(Record::from_bytes(bytes.clone(), 3, timed), Some(r.clone()));
            assert_eq!(Record::from_bytes(bytes, 2, timed), None);
            assert_eq!(r.ejected_mask(), 0b100);
            let side = r.side(1, &SPEC, 123_456);
            assert_eq!((side.requests, side.errors), (8, 2));
            assert_eq!(side.timed, u64::from(timed));
            assert_eq!(r.side(0, &SPEC, 123_456), m(0, 0));
            assert_eq!(r.side(2, &SPEC, 123_456), m(0, 0));
        }
    }

    #[test]
    fn one_flush_ejects_once() {
        let mut store = Map::default();
        let specs = [SPEC, SPEC];
        let err = t(1, 1);
        let mut ejections = 0;
        for i in 0..30 {
            match flush(&mut store, "k", &shape(), &specs, 1, &err, 1_000) {
                Flushed::Done { ejected, tripped } => {
                    if tripped.is_some() {
                        ejections += 1;
                        assert_eq!(i, 19, "the 20th error ejects");
                    }
                    assert_eq!(ejected != 0, i >= 19);
                }
                Flushed::Kept => panic!("kept"),
            }
        }
        assert_eq!(ejections, 1);
    }

    #[test]
    fn the_last_destination_is_never_ejected() {
        let mut store = Map::default();
        let specs = [SPEC, SPEC];
        let err = t(20, 20);
        assert!(matches!(
            flush(&mut store, "k", &shape(), &specs, 0, &err, 1_000),
            Flushed::Done {
                tripped: Some(_),
                ..
            }
        ));
        // Slot 1 fails as badly, but slot 0 is gone: it stays.
        assert_eq!(
            flush(&mut store, "k", &shape(), &specs, 1, &err, 1_000),
            Flushed::Done {
                ejected: 0b01,
                tripped: None
            }
        );
        // With an unguarded destination carrying weight, both may go.
        let other = Shape {
            unguarded_live: true,
            ..shape()
        };
        assert!(matches!(
            flush(&mut store, "k", &other, &specs, 1, &err, 1_000),
            Flushed::Done {
                ejected: 0b11,
                tripped: Some(_)
            }
        ));
        // A destination of weight 0 does not count as somewhere to go.
        let zero = Shape {
            live: vec![false, true].into(),
            unguarded_live: false,
        };
        let mut store = Map::default();
        assert_eq!(
            flush(&mut store, "k", &zero, &specs, 1, &err, 1_000),
            Flushed::Done {
                ejected: 0,
                tripped: None
            }
        );
    }

    #[test]
    fn a_lost_cas_retries_without_counting_twice() {
        let mut store = Map {
            other: Some(t(5, 5)),
            ..Map::default()
        };
        // The record exists (install wrote it), so every write is a real CAS.
        assert!(install(&mut store, "p", "d", &[("k".into(), 2, false)]));
        store.interfere = 3;
        let specs = [SPEC, SPEC];
        let r = flush(&mut store, "k", &shape(), &specs, 0, &t(4, 4), 1_000);
        assert_eq!(
            r,
            Flushed::Done {
                ejected: 0,
                tripped: None
            }
        );
        let (bytes, _) = store.data.get("k").cloned().unwrap();
        let rec = Record::from_bytes(bytes, 2, false).unwrap();
        // Three foreign flushes of 5 and ours of 4, each once.
        assert_eq!(rec.side(0, &SPEC, 1_000), m(19, 19));
    }

    #[test]
    fn install_clears_only_for_a_new_digest() {
        let mut store = Map::default();
        let keys = [("p/a/0".to_string(), 2usize, false)];
        assert!(install(&mut store, "p", "a", &keys));
        let specs = [SPEC, SPEC];
        let _ = flush(&mut store, "p/a/0", &shape(), &specs, 0, &t(20, 20), 1_000);
        // Another VM installing the same rules joins them.
        assert!(!install(&mut store, "p", "a", &keys));
        let ejected =
            |s: &mut Map| match flush(s, "p/a/0", &shape(), &specs, 0, &Tally::default(), 1_000) {
                Flushed::Done { ejected, .. } => ejected,
                Flushed::Kept => panic!(),
            };
        assert_eq!(ejected(&mut store), 1);
        // b, then a again: a starts over.
        assert!(install(&mut store, "p", "b", &[]));
        assert!(install(&mut store, "p", "a", &keys));
        assert_eq!(ejected(&mut store), 0);
    }
}
