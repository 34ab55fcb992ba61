//! A rule's scheduled ramp: Argo Rollouts' canary steps (`setWeight`,
//! `pause`), walked from a `start` time by every proxy's own clock.
//!
//! Everything here is a pure function of the rule set and a time:
//! [`compile`] turns the steps into a [`Schedule`], a short list of
//! [`Phase`]s (the state from an instant on), and [`Schedule::phase_at`]
//! says which one holds at a time. Two proxies with the same rules and
//! clocks are in the same phase, whenever they received the rules, and a
//! reload with the same ramp is in the phase it was in.
//!
//! **Weights.** Before `start`, the route's own weights apply. A phase
//! gives the canary a share in basis points (`setWeight` 12.5 is 1250);
//! the other destinations share the rest in the proportions of their own
//! weights. [`weights_at`] writes that exactly, in integers: the canary
//! gets `bp × W` and another destination `(10000 − bp) × w`, where `W` is
//! the sum of the others' weights, so the total is `10000 × W`.
//!
//! **Sticky users.** The sticky pick (weighted rendezvous hashing,
//! [`crate::domain::pick`]) keeps a user on a destination whose weight grows
//! relative to every other one's. Every phase raises the canary's share
//! and scales the others by one factor, so a user on the canary stays on
//! it from phase to phase; that is why a `setWeight` may never go down,
//! not even below the route's own share of the canary.

use alloc::{boxed::Box, vec::Vec};

use crate::schema::config;
use crate::schema::error::{field_path, index_path, ConfigError, Fault, Reason};

/// Basis points in a whole: `setWeight` 100 is 10,000.
pub const WHOLE_BP: u32 = 10_000;

/// The state of a ramp from an instant on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// From when, in milliseconds since the Unix epoch (0 for the phase
    /// before `start`).
    pub at_ms: u64,
    /// Steps completed (Argo's `currentStepIndex`): 0 before `start`, the
    /// index of the pause in progress, `steps.len()` once all are done.
    pub steps_done: u32,
    /// The canary's share in basis points; `None` while the route's own
    /// weights apply (before `start`, or in a pause before any `setWeight`).
    pub canary_bp: Option<u32>,
}

/// A compiled ramp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The canary's index among the route's destinations.
    pub canary: usize,
    /// In time order; the first is the phase before `start`. Two phases
    /// never share an instant (the later step wins).
    pub phases: Box<[Phase]>,
    /// Number of steps.
    pub steps: u32,
}

impl Schedule {
    /// The index of the phase that holds at `now_ms`.
    pub fn phase_at(&self, now_ms: u64) -> usize {
        self.phases
            .iter()
            .rposition(|p| p.at_ms <= now_ms)
            .unwrap_or(0)
    }

    /// When the phase after `phase` begins, if one does.
    pub fn next_at(&self, phase: usize) -> Option<u64> {
        self.phases.get(phase + 1).map(|p| p.at_ms)
    }
}

/// Compiles the `ramp` of a rule at `path` (the ramp's own path). `canary`
/// is the index of the destination it names, `weights` the route's own.
#[inline(never)]
pub fn compile(
    ramp: &config::Ramp,
    path: &str,
    canary: usize,
    weights: &[u32],
) -> Result<Schedule, ConfigError> {
    let start = parse_time(&ramp.start)
        .ok_or_else(|| ConfigError::at(path, "start", Reason::Fault(Fault::BadStart)))?;
    let mut total = 0u64;
    for w in weights {
        total += u64::from(*w);
    }
    let own = weights.get(canary).map_or(0, |w| u64::from(*w));
    if total == own {
        return Err(ConfigError::invalid(
            path,
            Reason::Fault(Fault::NoOtherWeight),
        ));
    }
    let spath = field_path(path, "steps");
    if ramp.steps.len() > crate::schema::limits::MAX_RAMP_STEPS {
        return Err(ConfigError::invalid(
            spath,
            Reason::TooMany {
                what: "steps",
                limit: crate::schema::limits::MAX_RAMP_STEPS,
            },
        ));
    }
    let mut phases = alloc::vec![Phase {
        at_ms: 0,
        steps_done: 0,
        canary_bp: None,
    }];
    // The canary's share so far, as a fraction (the route's own at first).
    let (mut at, mut num, mut den, mut bp) = (start, own, total, None);
    for (i, step) in ramp.steps.iter().enumerate() {
        let fault = match (step.set_weight, &step.pause) {
            (Some(w), None) => match percent_bp(w) {
                None => Some(("setWeight", Reason::Fault(Fault::WeightRange))),
                Some(x) if u64::from(x) * den < num * u64::from(WHOLE_BP) => {
                    Some(("setWeight", Reason::Fault(Fault::WeightDown)))
                }
                Some(x) => {
                    (num, den, bp) = (u64::from(x), u64::from(WHOLE_BP), Some(x));
                    None
                }
            },
            (None, Some(p)) => match crate::domain::guard::parse_duration(&p.duration) {
                Some(d) => {
                    at = at.saturating_add(d);
                    None
                }
                None => Some((
                    "pause.duration",
                    Reason::MalformedDuration(p.duration.clone()),
                )),
            },
            _ => Some(("", Reason::Fault(Fault::StepKind))),
        };
        if let Some((field, reason)) = fault {
            return Err(step_error(&spath, i, field, reason));
        }
        // A step at the same instant as the one before replaces it.
        if phases.len() > 1 && phases.last().is_some_and(|p| p.at_ms == at) {
            phases.pop();
        }
        phases.push(Phase {
            at_ms: at,
            steps_done: i as u32 + 1,
            canary_bp: bp,
        });
    }
    if bp.is_none() {
        return Err(ConfigError::invalid(
            spath,
            Reason::Fault(Fault::NothingToDo),
        ));
    }
    Ok(Schedule {
        canary,
        phases: phases.into(),
        steps: ramp.steps.len() as u32,
    })
}

/// The error of step `i` of the steps at `spath` (of its `field`, unless empty).
#[inline(never)]
fn step_error(spath: &str, i: usize, field: &str, reason: Reason) -> ConfigError {
    let at = index_path(spath, i);
    if field.is_empty() {
        ConfigError::invalid(at, reason)
    } else {
        ConfigError::at(&at, field, reason)
    }
}

/// A percentage with at most two decimals, in basis points.
fn percent_bp(w: f64) -> Option<u32> {
    if !(0.0..=100.0).contains(&w) {
        return None;
    }
    let scaled = w * 100.0;
    let bp = (scaled + 0.5) as u32;
    ((f64::from(bp) - scaled).abs() < 1e-6).then_some(bp)
}

/// The route's weights while the canary (`canary`) has `bp` basis points
/// of the traffic and the others share the rest in proportion to `own`.
/// Exact: the total is `10000 × W`, `W` the others' own weights' sum.
pub fn weights_at(own: &[u32], canary: usize, bp: u32) -> Vec<u64> {
    let rest = u64::from(WHOLE_BP.saturating_sub(bp));
    let (mut all, mut out) = (0u64, Vec::with_capacity(own.len()));
    for w in own {
        all += u64::from(*w);
        out.push(rest * u64::from(*w));
    }
    let others = all - own.get(canary).map_or(0, |w| u64::from(*w));
    if let Some(c) = out.get_mut(canary) {
        *c = u64::from(bp) * others;
    }
    out
}

/// A weight's share of `total` in basis points, rounded to the nearest:
/// what `canary_router_weight` reports and `canaryctl verify` expects.
/// (Weights are at most 10,000 × 64 × 10⁶, so the products fit a u64.)
pub fn share_bp(weight: u64, total: u64) -> u64 {
    match total {
        0 => 0,
        t => (weight * u64::from(WHOLE_BP) * 2 + t) / (2 * t),
    }
}

/// Writes `ms` since the Unix epoch as RFC 3339 in UTC, with milliseconds
/// (`2026-12-07T10:00:00.250Z`): what [`parse_time`] reads. For the tools
/// and tests that write a ramp's `start`; the filter never writes one.
pub fn format_time(ms: u64) -> alloc::string::String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    alloc::format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Parses an RFC 3339 time in UTC (`2026-12-07T10:00:00Z`,
/// `2026-12-07T10:00:00.250Z`) into milliseconds since the Unix epoch;
/// digits past milliseconds are dropped. Times before 1970, offsets other
/// than `Z` and leap seconds (`:60`) are refused.
pub fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    // Year, month, day, hour, minute, second, each followed by its separator.
    let mut f = [0u64; 6];
    let mut i = 0;
    for (k, (v, sep)) in f.iter_mut().zip(*b"--T::.").enumerate() {
        for _ in 0..if k == 0 { 4 } else { 2 } {
            let d = b.get(i).filter(|d| d.is_ascii_digit())?;
            *v = *v * 10 + u64::from(d - b'0');
            i += 1;
        }
        if k < 5 && !b.get(i)?.eq_ignore_ascii_case(&sep) {
            return None;
        }
        i += usize::from(k < 5);
    }
    let [year, month, day, hour, minute, second] = f;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let first = i;
        while let Some(d @ b'0'..=b'9') = b.get(i) {
            if i - first < 3 {
                ms = ms * 10 + u64::from(d - b'0');
            }
            i += 1;
        }
        for _ in (i - first).min(3)..3 {
            ms *= 10;
        }
        if i == first {
            return None;
        }
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 => 28 + u64::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let ok = !matches!(b.get(i..), Some([b'Z' | b'z']))
        || year < 1970
        || !(1..=12).contains(&month)
        || !(1..=days_in_month).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59;
    if ok {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil, years from March).
    let y = year - u64::from(month <= 2);
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = (era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy).checked_sub(719_468)?;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_in_rfc_3339() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-12-07T10:00:00Z"), Some(1_796_637_600_000));
        assert_eq!(
            parse_time("2026-12-07t10:00:00.25z"),
            Some(1_796_637_600_250)
        );
        assert_eq!(
            parse_time("2026-12-07T10:00:00.123456789Z"),
            Some(1_796_637_600_123)
        );
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(parse_time("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        for bad in [
            "",
            "2026-12-07",
            "2026-12-07T10:00:00",
            "2026-12-07 10:00:00Z",
            "2026-12-07T10:00Z",
            "2026-13-07T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2100-02-29T10:00:00Z",
            "2026-12-00T10:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07T10:60:00Z",
            "2026-12-07T10:00:60Z",
            "2026-12-07T10:00:00.Z",
            "2026-12-07T10:00:00+01:00",
            "2026-12-07T10:00:00-00:00",
            "2026-12-07T10:00:00ZZ",
            "1969-12-31T23:59:59Z",
            "+026-12-07T10:00:00Z",
            "2026-1a-07T10:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formatted_times_parse_back() {
        assert_eq!(format_time(1_796_637_600_250), "2026-12-07T10:00:00.250Z");
        for ms in [
            0,
            951_868_800_000,
            1_709_164_800_000,
            1_796_637_600_250,
            4_102_444_799_999,
        ] {
            assert_eq!(parse_time(&format_time(ms)), Some(ms));
        }
    }

    #[test]
    fn every_day_of_four_centuries_counts_from_the_epoch() {
        // Walk day by day from 1970 and compare with the parser.
        let mut expect = 0u64;
        for year in 1970..2400u64 {
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            for month in 1..=12u64 {
                let days = match month {
                    2 if leap => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                for day in 1..=days {
                    let text = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
                    assert_eq!(parse_time(&text), Some(expect), "{text}");
                    expect += 86_400_000;
                }
            }
        }
    }

    fn ramp(steps: &str) -> config::Ramp {
        let steps = steps
            .split(',')
            .map(|s| match s.strip_prefix('p') {
                Some(d) => config::RampStep {
                    set_weight: None,
                    pause: Some(config::Pause { duration: d.into() }),
                },
                None => config::RampStep {
                    set_weight: Some(s.parse().unwrap()),
                    pause: None,
                },
            })
            .collect();
        config::Ramp {
            canary: "v2".into(),
            start: "2026-12-07T10:00:00Z".into(),
            steps,
        }
    }

    const T: u64 = 1_796_637_600_000;

    #[test]
    fn phases_of_the_walkthrough() {
        let s = compile(&ramp("10,p10m,50,p30m,100"), "r", 1, &[90, 10]).unwrap();
        let p = |at_ms, steps_done, bp| Phase {
            at_ms,
            steps_done,
            canary_bp: bp,
        };
        assert_eq!(
            &*s.phases,
            &[
                p(0, 0, None),
                p(T, 1, Some(1000)),
                p(T + 600_000, 3, Some(5000)),
                p(T + 2_400_000, 5, Some(10_000)),
            ]
        );
        assert_eq!(s.phase_at(T - 1), 0);
        assert_eq!(s.phase_at(T), 1);
        assert_eq!(s.phase_at(T + 599_999), 1);
        assert_eq!(s.phase_at(T + 600_000), 2);
        assert_eq!(s.phase_at(u64::MAX), 3);
        assert_eq!(s.next_at(1), Some(T + 600_000));
        assert_eq!(s.next_at(3), None);
    }

    #[test]
    fn a_leading_pause_keeps_the_route_weights() {
        let s = compile(&ramp("p1m,20,p1m"), "r", 1, &[90, 10]).unwrap();
        assert_eq!(s.phases[1].at_ms, T + 60_000);
        assert_eq!(s.phases[1].canary_bp, Some(2000));
        assert_eq!(s.phases[1].steps_done, 2);
        assert_eq!(s.phases[2].steps_done, 3);
        assert_eq!(s.phases[2].canary_bp, Some(2000));
    }

    #[test]
    fn bad_ramps_name_their_step() {
        let err = |steps: &str, w: &[u32]| {
            compile(&ramp(steps), "services[0].http[1].ramp", 1, w)
                .unwrap_err()
                .to_string()
        };
        assert!(err("10,50,40", &[90, 10])
            .starts_with("services[0].http[1].ramp.steps[2].setWeight: goes down"));
        assert!(err("5", &[90, 10])
            .starts_with("services[0].http[1].ramp.steps[0].setWeight: goes down"));
        assert!(err("100.5", &[90, 10]).contains("steps[0].setWeight: must be a percentage"));
        assert!(err("12.345", &[90, 10]).contains("steps[0].setWeight: must be a percentage"));
        assert!(err("-1", &[90, 10]).contains("steps[0].setWeight: must be a percentage"));
        assert!(err("10,p10x", &[90, 10]).starts_with(
            "services[0].http[1].ramp.steps[1].pause.duration: `10x` is not a duration"
        ));
        assert!(err("p1m", &[90, 10])
            .starts_with("services[0].http[1].ramp.steps: no step sets a weight"));
        assert!(err("10", &[0, 10]).starts_with(
            "services[0].http[1].ramp: the route's other destinations have no weight"
        ));
        let mut both = ramp("10");
        both.steps[0].pause = Some(config::Pause {
            duration: "1s".into(),
        });
        assert!(compile(&both, "r", 1, &[9, 1])
            .unwrap_err()
            .to_string()
            .starts_with("r.steps[0]: give either"));
        let mut late = ramp("10");
        late.start = "tomorrow".into();
        assert!(compile(&late, "r", 1, &[9, 1])
            .unwrap_err()
            .to_string()
            .starts_with("r.start: is not an RFC 3339 time"));
        // Equal to the route's own share is not down; fractions to 0.01.
        assert!(compile(&ramp("10,10,33.33,100"), "r", 1, &[90, 10]).is_ok());
        assert!(compile(&ramp("0.01"), "r", 1, &[1, 0]).is_ok());
    }

    #[test]
    fn weights_are_exact_and_shares_round() {
        assert_eq!(weights_at(&[90, 10], 1, 5000), vec![450_000, 450_000]);
        assert_eq!(weights_at(&[3, 1, 1], 1, 1000), vec![27_000, 4_000, 9_000]);
        let w = weights_at(&[3, 1, 1], 1, 1000);
        let total: u64 = w.iter().sum();
        let shares: Vec<u64> = w.iter().map(|w| share_bp(*w, total)).collect();
        assert_eq!(shares, vec![6750, 1000, 2250]);
        assert_eq!(share_bp(w[0], w[0] + w[2]), 7500);
        assert_eq!((share_bp(1, 3), share_bp(2, 3)), (3333, 6667));
        assert_eq!(share_bp(1, 0), 0);
        let most = 10_000 * 64 * 1_000_000u64;
        assert_eq!(share_bp(most, most), 10_000);
        let big = weights_at(&[1_000_000; 64], 5, 1);
        assert_eq!(big.iter().sum::<u64>(), 10_000 * 63_000_000);
        assert_eq!(percent_bp(0.01), Some(1));
        assert_eq!(percent_bp(33.33), Some(3333));
        assert_eq!(percent_bp(100.0), Some(10_000));
        assert_eq!(percent_bp(0.005), None);
    }
}
