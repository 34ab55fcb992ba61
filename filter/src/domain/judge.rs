//! How a guard with a `baseline` judges its canary: the canary's figures
//! against the baseline's, over the same window in the same Envoy. Pure
//! arithmetic on counts; the guard ([`crate::domain::guard`]) keeps the counts.
//!
//! **Errors.** The canary is ejected when its error share exceeds the
//! baseline's by at least `maxErrorRate` (δ), and significantly so: when
//! the lower confidence bound of the canary's error share minus the upper
//! confidence bound of the baseline's reaches δ. Each bound is Chernoff's
//! (the binomial's Kullback–Leibler bound: the share `p` such that
//! `n · KL(p̂ ‖ p) = ln(2/α)`), which holds for every error share and
//! every count, not only for large ones. So, for a canary whose error
//! share exceeds the baseline's by δ or less (a canary exactly as good
//! as its baseline among them), one check ejects with probability at most
//! [`ALPHA`] = 10⁻⁴: an ejection needs the canary's bound above its true
//! share, or the baseline's below its own, each at most α/2.
//! `filter/tests/guard_statistics.rs` computes the exact rates (far below
//! α) and simulates the guard. A shared outage, both sides failing alike,
//! has no excess and never ejects.
//!
//! **Latency.** Each side's response times (Envoy's
//! `x-envoy-upstream-service-time`, in milliseconds) fall into a
//! [`Histogram`] of [`BINS`] bins, two per octave; [`Histogram::quantile`]
//! reads its p90 by interpolating inside a bin. The canary is ejected when
//! its p90 exceeds `maxLatencyRatio` × the baseline's, the baseline's
//! taken as at least [`LATENCY_FLOOR_MS`]: below a few milliseconds the
//! header's resolution (whole milliseconds) and a busy proxy's own jitter
//! make a ratio meaningless (a healthy canary at 2 ms against a baseline
//! at 1 ms is twice as slow by the header), so fast services are compared
//! from that floor on. At least `minRequests` timed responses are needed
//! on each side.

/// The least a baseline's p90 counts as, in milliseconds (see the module docs).
pub const LATENCY_FLOOR_MS: f64 = 5.0;

/// The error test's bound on false ejections per check.
pub const ALPHA: f64 = 1e-4;
/// `ln(2 / ALPHA)`: each side's bound may miss with probability α/2.
const LOG_2_OVER_ALPHA: f64 = 9.903_487_552_536_127;
/// The latency percentile compared, as a share.
pub const QUANTILE: f64 = 0.9;
/// Bins of a latency histogram.
pub const BINS: usize = 32;

/// One side's figures over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Side {
    /// Responses.
    pub requests: u64,
    /// Errors among them (5xx, or no response).
    pub errors: u64,
    /// Responses with a time.
    pub timed: u64,
    /// Their p90 in milliseconds (0 without any).
    pub p90_ms: f64,
}

/// Why a canary is ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its error share is significantly above the baseline's, by at least `maxErrorRate`.
    Errors,
    /// Its p90 is over `maxLatencyRatio` × the baseline's.
    Latency,
}

/// A baseline guard's thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The error excess that ejects, in (0, 1].
    pub max_error_rate: f64,
    /// The latency ratio that ejects (0: latency is not judged).
    pub max_latency_ratio: f64,
    /// Responses (and timed responses) each side needs.
    pub min_requests: u64,
}

/// The verdict on a canary against its baseline, if it is to be ejected.
pub fn judge(canary: &Side, baseline: &Side, t: &Thresholds) -> Option<Verdict> {
    let enough = |s: &Side, n: u64| n >= t.min_requests && s.requests >= t.min_requests;
    if enough(canary, canary.requests)
        && enough(baseline, baseline.requests)
        && excess_at_least(canary, baseline, t.max_error_rate)
    {
        return Some(Verdict::Errors);
    }
    (t.max_latency_ratio > 0.0
        && enough(canary, canary.timed)
        && enough(baseline, baseline.timed)
        && canary.p90_ms > t.max_latency_ratio * baseline.p90_ms.max(LATENCY_FLOOR_MS))
    .then_some(Verdict::Latency)
}

/// Whether the canary's error share exceeds the baseline's by at least
/// `delta`, significantly: the canary's lower bound minus the baseline's
/// upper bound reaches `delta`.
pub fn excess_at_least(canary: &Side, baseline: &Side, delta: f64) -> bool {
    let (pc, pb) = (canary.error_share(), baseline.error_share());
    // The bounds lie on either side of the shares: no excess, no test.
    if canary.requests == 0 || baseline.requests == 0 || pc - pb < delta {
        return false;
    }
    // The canary's lower bound reaches q exactly when q is below p̂ and
    // rejected: n · KL(p̂ ‖ q) ≥ ln(2/α).
    let q = upper_bound(pb, baseline.requests) + delta;
    q < pc && canary.requests as f64 * kl(pc, q) >= LOG_2_OVER_ALPHA
}

impl Side {
    /// Errors over responses (0 without responses).
    pub fn error_share(&self) -> f64 {
        self.errors.min(self.requests) as f64 / self.requests.max(1) as f64
    }
}

/// The upper Chernoff bound of an error share `p` measured over `n`
/// responses: the largest `q ≥ p` with `n · KL(p ‖ q) ≤ ln(2/α)`
/// (bisected; returned from above).
fn upper_bound(p: f64, n: u64) -> f64 {
    let (mut low, mut high) = (p, 1.0);
    for _ in 0..48 {
        let mid = (low + high) / 2.0;
        if n as f64 * kl(p, mid) > LOG_2_OVER_ALPHA {
            high = mid;
        } else {
            low = mid;
        }
    }
    high
}

/// The Kullback–Leibler divergence of Bernoulli(q) from Bernoulli(p), for
/// p in (0, 1).
fn kl(q: f64, p: f64) -> f64 {
    let term = |a: f64, b: f64| if a > 0.0 { a * libm::log(a / b) } else { 0.0 };
    term(q, p) + term(1.0 - q, 1.0 - p)
}

/// Response times in [`BINS`] bins: 0, 1, 2 and 3 ms each their own, then
/// two bins per octave (4–5, 6–7, 8–11, 12–15 … 49152–65535 ms; longer
/// times fall into the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram(pub [u32; BINS]);

impl Default for Histogram {
    fn default() -> Self {
        Histogram([0; BINS])
    }
}

/// The bin of a time in milliseconds.
pub fn bin(ms: u64) -> usize {
    if ms < 4 {
        return ms as usize;
    }
    let octave = 63 - ms.leading_zeros() as usize;
    let half = (ms >> (octave - 1)) as usize & 1;
    (2 * octave + half).min(BINS - 1)
}

/// The times bin `k` holds: `[low, high)` in milliseconds.
fn bin_range(k: usize) -> (f64, f64) {
    if k < 4 {
        return (k as f64, k as f64 + 1.0);
    }
    let half_octave = (1u64 << (k / 2 - 1)) as f64;
    let low = 2.0 * half_octave + (k % 2) as f64 * half_octave;
    (low, low + half_octave)
}

impl Histogram {
    /// Adds the counts of another.
    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Times counted.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|c| u64::from(*c)).sum()
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds, interpolated inside
    /// its bin as if the bin's times were spread evenly; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let target = q * self.count() as f64;
        let mut below = 0.0;
        for (k, c) in self.0.iter().enumerate() {
            let c = f64::from(*c);
            if c > 0.0 && below + c >= target {
                let (low, high) = bin_range(k);
                return low + (high - low) * ((target - below) / c);
            }
            below += c;
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn side(requests: u64, errors: u64) -> Side {
        Side {
            requests,
            errors,
            ..Side::default()
        }
    }

    const T: Thresholds = Thresholds {
        max_error_rate: 0.05,
        max_latency_ratio: 2.0,
        min_requests: 50,
    };

    #[test]
    fn bins_cover_every_time_once() {
        for ms in 0..70_000u64 {
            let (low, high) = bin_range(bin(ms));
            assert!(
                (low..high).contains(&(ms as f64)) || (bin(ms) == BINS - 1 && ms >= 49_152),
                "{ms} in bin {} = {low}..{high}",
                bin(ms)
            );
        }
        assert_eq!(bin(u64::MAX), BINS - 1);
        // Contiguous.
        for k in 1..BINS {
            assert_eq!(bin_range(k - 1).1, bin_range(k).0, "bin {k}");
        }
    }

    #[test]
    fn quantiles_interpolate_inside_a_bin() {
        let mut h = Histogram::default();
        for ms in 0..1000u64 {
            h.0[bin(ms)] += 1;
        }
        let p90 = h.quantile(0.9);
        assert!((p90 - 900.0).abs() < 20.0, "{p90}");
        let mut same = Histogram::default();
        same.0[bin(300)] = 100;
        assert!((256.0..384.0).contains(&same.quantile(0.9)));
        assert_eq!(Histogram::default().quantile(0.9), 0.0);
    }

    #[test]
    fn a_failing_canary_is_ejected_a_shared_outage_is_not() {
        assert_eq!(
            judge(&side(50, 50), &side(450, 0), &T),
            Some(Verdict::Errors)
        );
        assert_eq!(judge(&side(50, 50), &side(450, 450), &T), None, "both fail");
        assert_eq!(
            judge(&side(49, 49), &side(450, 0), &T),
            None,
            "below minRequests"
        );
        assert_eq!(
            judge(&side(50, 50), &side(49, 0), &T),
            None,
            "baseline below minRequests"
        );
        // An excess below maxErrorRate: 3% against 0%, even over many requests.
        assert_eq!(judge(&side(100_000, 3_000), &side(900_000, 0), &T), None);
        // An excess above it, significant only with enough requests.
        assert_eq!(judge(&side(50, 8), &side(450, 2), &T), None);
        assert_eq!(
            judge(&side(5_000, 800), &side(45_000, 200), &T),
            Some(Verdict::Errors)
        );
        // At the least: 100% errors over 7 responses against 0 of 63.
        let fast = Thresholds {
            min_requests: 1,
            ..T
        };
        assert_eq!(
            judge(&side(7, 7), &side(63, 0), &fast),
            Some(Verdict::Errors)
        );
        assert_eq!(judge(&side(6, 6), &side(54, 0), &fast), None);
    }

    #[test]
    fn latency_by_ratio_of_p90s() {
        let timed = |p90_ms| Side {
            requests: 100,
            errors: 0,
            timed: 100,
            p90_ms,
        };
        assert_eq!(
            judge(&timed(300.0), &timed(2.0), &T),
            Some(Verdict::Latency)
        );
        assert_eq!(judge(&timed(300.0), &timed(290.0), &T), None);
        assert_eq!(
            judge(&timed(10.0), &timed(1.0), &T),
            None,
            "the baseline counts as 5 ms"
        );
        assert_eq!(judge(&timed(10.5), &timed(0.0), &T), Some(Verdict::Latency));
        assert_eq!(judge(&timed(2.5), &timed(1.0), &T), None);
        let off = Thresholds {
            max_latency_ratio: 0.0,
            ..T
        };
        assert_eq!(judge(&timed(300.0), &timed(2.0), &off), None);
        let few = Side {
            timed: 49,
            ..timed(300.0)
        };
        assert_eq!(judge(&few, &timed(2.0), &T), None);
    }
}
