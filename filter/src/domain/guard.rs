//! The guard of a destination: counts its responses over a sliding window
//! and ejects it from the split when too many fail. Pure logic; the
//! proxy-wasm adapter (`adapters/proxy_wasm/guard_host.rs`) feeds it
//! responses and the host's shared data.
//!
//! **What is shared.** One Envoy's workers count together through shared
//! data: one key per guarded *rule* (`canary-router/guard/<root>/<digest>/<n>`)
//! holds a [`Record`]: for each guarded destination of the rule, its
//! [`Window`] (ten buckets of `interval / 10`) and whether it is ejected.
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
    /// Error share that ejects, in (0, 1].
    pub max_error_rate: f64,
    /// Responses the window must hold before it may eject.
    pub min_requests: u32,
    /// Window length in milliseconds.
    pub interval_ms: u64,
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

/// Responses counted but not yet flushed into shared data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Responses (errors included).
    pub requests: u32,
    /// Errors: a 5xx, or a stream that ended without a response.
    pub errors: u32,
}

impl Tally {
    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }
}

/// One bucket: responses in `[index * bucket_ms, (index + 1) * bucket_ms)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    index: u64,
    requests: u32,
    errors: u32,
}

/// A destination's sliding window, and whether it is ejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Ejected from new decisions until the rule set changes.
    pub ejected: bool,
    buckets: [Bucket; BUCKETS],
}

/// What a window measured when it ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Responses in the window.
    pub requests: u64,
    /// Errors among them.
    pub errors: u64,
}

impl Measured {
    /// The error share in tenths of a percent, rounded down (no float
    /// formatting in the module).
    pub fn per_mille(&self) -> u64 {
        self.errors.saturating_mul(1000) / self.requests.max(1)
    }
}

impl Window {
    /// Adds a tally at time `now_ms`.
    pub fn add(&mut self, spec: &Spec, now_ms: u64, t: Tally) {
        let index = now_ms / spec.bucket_ms();
        let slot = (index % BUCKETS as u64) as usize;
        if let Some(b) = self.buckets.get_mut(slot) {
            if b.index != index {
                *b = Bucket {
                    index,
                    requests: 0,
                    errors: 0,
                };
            }
            b.requests = b.requests.saturating_add(t.requests);
            b.errors = b.errors.saturating_add(t.errors);
        }
    }

    /// Responses and errors of the last `interval` at `now_ms`.
    pub fn totals(&self, spec: &Spec, now_ms: u64) -> Measured {
        let index = now_ms / spec.bucket_ms();
        let oldest = index.saturating_sub(BUCKETS as u64 - 1);
        let mut m = Measured {
            requests: 0,
            errors: 0,
        };
        for b in self
            .buckets
            .iter()
            .filter(|b| (oldest..=index).contains(&b.index))
        {
            m.requests += u64::from(b.requests);
            m.errors += u64::from(b.errors);
        }
        m
    }

    /// The window's figures if they call for ejection: at least
    /// `minRequests` responses and an error share of at least `maxErrorRate`.
    pub fn trips(&self, spec: &Spec, now_ms: u64) -> Option<Measured> {
        let m = self.totals(spec, now_ms);
        (m.requests >= u64::from(spec.min_requests)
            && m.errors as f64 >= spec.max_error_rate * m.requests as f64)
            .then_some(m)
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
            || self.live.iter().enumerate().any(|(j, live)| {
                j != slot && *live && !record.windows.get(j).is_some_and(|w| w.ejected)
            })
    }
}

/// The shared record of one guarded rule: a window per guarded destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// In the order of the rule's guarded destinations.
    pub windows: Vec<Window>,
}

const BUCKET_BYTES: usize = 16;
const WINDOW_BYTES: usize = 1 + BUCKETS * BUCKET_BYTES;

impl Record {
    /// A record of `n` empty windows.
    pub fn empty(n: usize) -> Self {
        Record {
            windows: vec![Window::default(); n],
        }
    }

    /// The bytes kept in shared data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.windows.len() * WINDOW_BYTES);
        for w in &self.windows {
            out.push(u8::from(w.ejected));
            for b in &w.buckets {
                out.extend_from_slice(&b.index.to_le_bytes());
                out.extend_from_slice(&b.requests.to_le_bytes());
                out.extend_from_slice(&b.errors.to_le_bytes());
            }
        }
        out
    }

    /// Reads [`encode`](Self::encode)'s bytes; `None` unless they hold
    /// exactly `n` windows.
    #[inline(never)]
    pub fn decode(bytes: &[u8], n: usize) -> Option<Self> {
        if bytes.len() != n * WINDOW_BYTES {
            return None;
        }
        let windows = bytes
            .chunks_exact(WINDOW_BYTES)
            .map(|c| {
                let mut w = Window {
                    ejected: c.first() == Some(&1),
                    buckets: [Bucket::default(); BUCKETS],
                };
                let rest = c.get(1..).unwrap_or_default();
                for (b, raw) in w.buckets.iter_mut().zip(rest.chunks_exact(BUCKET_BYTES)) {
                    let u64_at = |i: usize| {
                        raw.get(i..i + 8)
                            .and_then(|s| <[u8; 8]>::try_from(s).ok())
                            .map_or(0, u64::from_le_bytes)
                    };
                    let u32_at = |i: usize| {
                        raw.get(i..i + 4)
                            .and_then(|s| <[u8; 4]>::try_from(s).ok())
                            .map_or(0, u32::from_le_bytes)
                    };
                    *b = Bucket {
                        index: u64_at(0),
                        requests: u32_at(8),
                        errors: u32_at(12),
                    };
                }
                w
            })
            .collect();
        Some(Record { windows })
    }

    /// Which windows are ejected, as a bit mask by slot.
    pub fn ejected_mask(&self) -> u64 {
        self.windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.ejected)
            .fold(0, |m, (i, _)| m | (1u64 << (i % 64)))
    }
}

/// What a flush came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// The tally is in the record. `ejected` lists the rule's ejected
    /// destinations (a mask by slot); `tripped` is set when this very write
    /// ejected destination `slot` (log it, once).
    Done {
        /// Ejected destinations of the rule, by slot.
        ejected: u64,
        /// What the window held when this write ejected the destination.
        tripped: Option<Measured>,
    },
    /// Shared data failed, or every CAS was lost: keep the tally for the next flush.
    Kept,
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
    tally: Tally,
    now_ms: u64,
) -> Flushed {
    let n = specs.len();
    for _ in 0..CAS_ATTEMPTS {
        let (mut record, cas) = match store.get(key) {
            Ok(Some((bytes, cas))) => (Record::decode(&bytes, n).unwrap_or(Record::empty(n)), cas),
            Ok(None) => (Record::empty(n), 0),
            Err(_) => return Flushed::Kept,
        };
        if tally.is_empty() {
            return Flushed::Done {
                ejected: record.ejected_mask(),
                tripped: None,
            };
        }
        let (Some(spec), true) = (specs.get(slot), slot < record.windows.len()) else {
            return Flushed::Kept;
        };
        let may_eject = shape.may_eject(&record, slot);
        let mut tripped = None;
        if let Some(w) = record.windows.get_mut(slot) {
            w.add(spec, now_ms, tally);
            if !w.ejected && may_eject {
                if let Some(m) = w.trips(spec, now_ms) {
                    w.ejected = true;
                    tripped = Some(m);
                }
            }
        }
        match store.set(key, &record.encode(), cas) {
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
/// guarded rules (with their number of windows) unless `…/current` already
/// names it (another VM of this Envoy installed it: join its counts).
/// Returns whether the records were cleared.
pub fn install(
    store: &mut dyn SharedStore,
    prefix: &str,
    digest: &str,
    keys: &[(String, usize)],
) -> bool {
    let current = format!("{prefix}/current");
    if let Ok(Some((bytes, _))) = store.get(&current) {
        if bytes == digest.as_bytes() {
            return false;
        }
    }
    for (key, n) in keys {
        let _ = store.set(key, &Record::empty(*n).encode(), 0);
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
    (!is_ejected(target.stat_index)).then_some(Decision {
        destination: index,
        target,
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
                let mut r = Record::decode(&bytes, 2).unwrap_or(Record::empty(2));
                r.windows[0].add(&spec, 1_000, self.other.unwrap());
                self.next += 1;
                let _ = c;
                self.data.insert(key.into(), (r.encode(), self.next));
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
    };

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
        let mut w = Window::default();
        w.add(
            &SPEC,
            0,
            Tally {
                requests: 10,
                errors: 10,
            },
        );
        w.add(
            &SPEC,
            9_999,
            Tally {
                requests: 10,
                errors: 0,
            },
        );
        assert_eq!(
            w.totals(&SPEC, 9_999),
            Measured {
                requests: 20,
                errors: 10
            }
        );
        assert!(w.trips(&SPEC, 9_999).is_some(), "20 responses, half failed");
        // One bucket (1 s) later the first ten fell out.
        assert_eq!(
            w.totals(&SPEC, 10_000),
            Measured {
                requests: 10,
                errors: 0
            }
        );
        assert!(w.trips(&SPEC, 10_000).is_none());
        // Far later, a reused slot starts over.
        w.add(
            &SPEC,
            100_000,
            Tally {
                requests: 1,
                errors: 1,
            },
        );
        assert_eq!(
            w.totals(&SPEC, 100_000),
            Measured {
                requests: 1,
                errors: 1
            }
        );
    }

    #[test]
    fn below_min_requests_or_rate_never_trips() {
        let mut w = Window::default();
        w.add(
            &SPEC,
            0,
            Tally {
                requests: 19,
                errors: 19,
            },
        );
        assert!(w.trips(&SPEC, 0).is_none(), "19 < minRequests");
        w.add(
            &SPEC,
            0,
            Tally {
                requests: 21,
                errors: 0,
            },
        );
        assert!(w.trips(&SPEC, 0).is_none(), "19 of 40 < 0.5");
        w.add(
            &SPEC,
            0,
            Tally {
                requests: 1,
                errors: 1,
            },
        );
        assert!(w.trips(&SPEC, 0).is_none(), "20 of 41 < 0.5");
        w.add(
            &SPEC,
            0,
            Tally {
                requests: 1,
                errors: 1,
            },
        );
        assert_eq!(
            w.trips(&SPEC, 0),
            Some(Measured {
                requests: 42,
                errors: 21
            })
        );
    }

    #[test]
    fn records_round_trip() {
        let mut r = Record::empty(3);
        r.windows[1].add(
            &SPEC,
            123_456,
            Tally {
                requests: 7,
                errors: 2,
            },
        );
        r.windows[2].ejected = true;
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes, 3), Some(r.clone()));
        assert_eq!(Record::decode(&bytes, 2), None);
        assert_eq!(r.ejected_mask(), 0b100);
    }

    #[test]
    fn one_flush_ejects_once() {
        let mut store = Map::default();
        let specs = [SPEC, SPEC];
        let err = Tally {
            requests: 1,
            errors: 1,
        };
        let mut ejections = 0;
        for i in 0..30 {
            match flush(&mut store, "k", &shape(), &specs, 1, err, 1_000) {
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
        let err = Tally {
            requests: 20,
            errors: 20,
        };
        assert!(matches!(
            flush(&mut store, "k", &shape(), &specs, 0, err, 1_000),
            Flushed::Done {
                tripped: Some(_),
                ..
            }
        ));
        // Slot 1 fails as badly, but slot 0 is gone: it stays.
        assert_eq!(
            flush(&mut store, "k", &shape(), &specs, 1, err, 1_000),
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
            flush(&mut store, "k", &other, &specs, 1, err, 1_000),
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
            flush(&mut store, "k", &zero, &specs, 1, err, 1_000),
            Flushed::Done {
                ejected: 0,
                tripped: None
            }
        );
    }

    #[test]
    fn a_lost_cas_retries_without_counting_twice() {
        let mut store = Map {
            other: Some(Tally {
                requests: 5,
                errors: 5,
            }),
            ..Map::default()
        };
        // The record exists (install wrote it), so every write is a real CAS.
        assert!(install(&mut store, "p", "d", &[("k".into(), 2)]));
        store.interfere = 3;
        let specs = [SPEC, SPEC];
        let r = flush(
            &mut store,
            "k",
            &shape(),
            &specs,
            0,
            Tally {
                requests: 4,
                errors: 4,
            },
            1_000,
        );
        assert_eq!(
            r,
            Flushed::Done {
                ejected: 0,
                tripped: None
            }
        );
        let (bytes, _) = store.data.get("k").cloned().unwrap();
        let rec = Record::decode(&bytes, 2).unwrap();
        // Three foreign flushes of 5 and ours of 4, each once.
        assert_eq!(
            rec.windows[0].totals(&SPEC, 1_000),
            Measured {
                requests: 19,
                errors: 19
            }
        );
    }

    #[test]
    fn install_clears_only_for_a_new_digest() {
        let mut store = Map::default();
        let keys = [("p/a/0".to_string(), 2usize)];
        assert!(install(&mut store, "p", "a", &keys));
        let specs = [SPEC, SPEC];
        let _ = flush(
            &mut store,
            "p/a/0",
            &shape(),
            &specs,
            0,
            Tally {
                requests: 20,
                errors: 20,
            },
            1_000,
        );
        // Another VM installing the same rules joins them.
        assert!(!install(&mut store, "p", "a", &keys));
        let ejected =
            |s: &mut Map| match flush(s, "p/a/0", &shape(), &specs, 0, Tally::default(), 1_000) {
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
