//! Counting how traffic splits between upstreams, and checking a count
//! against its expected share with a binomial bound.

use std::collections::BTreeMap;
use std::fmt;

use super::http::{HttpClient, Request, Response};
use super::Error;

/// What identifies the upstream that answered a response.
#[derive(Clone, Debug)]
pub enum SplitKey {
    /// A response header, e.g. `x-version` (the examples' backends set it).
    Header(String),
    /// The trimmed response body, e.g. `backend v2`.
    Body,
}

impl SplitKey {
    /// `x-version`, the header the examples' backends answer with.
    pub fn version() -> Self {
        SplitKey::Header("x-version".into())
    }

    /// The key of one response: `status <code>` for non-2xx answers,
    /// `<missing>` when a 2xx lacks the header.
    pub fn of(&self, resp: &Response) -> String {
        if !(200..300).contains(&resp.status) {
            return format!("status {}", resp.status);
        }
        match self {
            SplitKey::Header(name) => resp.header(name).unwrap_or_else(|| "<missing>".into()),
            SplitKey::Body => resp.text().trim().to_owned(),
        }
    }
}

/// Responses counted by upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub counts: BTreeMap<String, u64>,
}

impl Split {
    /// How many responses had this key (0 if none).
    pub fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// How many responses in all.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Keys other than the given ones (e.g. `status 503`), with counts.
    pub fn others(&self, expected: &[&str]) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .filter(|(k, _)| !expected.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Adds one response's key.
    pub fn add(&mut self, key: String) {
        *self.counts.entry(key).or_default() += 1;
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        write!(f, "{{{}}} of {}", parts.join(", "), self.total())
    }
}

/// Sends `n` copies of `req` over `client` (keep-alive) and counts the
/// responses by `key`. A transport error stops the count and is returned.
pub fn count_split(
    client: &mut HttpClient,
    n: usize,
    req: &Request,
    key: &SplitKey,
) -> Result<Split, Error> {
    let mut split = Split::default();
    for i in 0..n {
        let resp = client
            .send(req)
            .map_err(|e| Error::new(format!("request {i} of {n}: {e}")))?;
        split.add(key.of(&resp));
    }
    Ok(split)
}

/// [`count_split`] over `connections` parallel keep-alive connections to the
/// same address (each sends its share of `n`); faster against a
/// multi-threaded Envoy.
pub fn count_split_parallel(
    client: &HttpClient,
    connections: usize,
    n: usize,
    req: &Request,
    key: &SplitKey,
) -> Result<Split, Error> {
    let connections = connections.max(1);
    let addr = client.addr();
    let results: Vec<Result<Split, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                let share = n / connections + usize::from(c < n % connections);
                s.spawn(move || count_split(&mut HttpClient::new(addr), share, req, key))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::new("a request thread panicked")))
            })
            .collect()
    });
    let mut total = Split::default();
    for result in results {
        for (k, v) in result?.counts {
            *total.counts.entry(k).or_default() += v;
        }
    }
    Ok(total)
}

/// The `z` used by [`check_binomial`]: 5 standard deviations.
///
/// Under the normal approximation of the binomial, a two-sided deviation of
/// 5 sigma or more has probability about 5.7e-7, so a correct filter fails a
/// check about once in 1.7 million runs: a failure means the split is wrong,
/// not bad luck. The approximation is good when `n*p*(1-p)` is large (tens or
/// more); the tests use n >= 2000 with p in {0.1, 0.5}, i.e. `n*p*(1-p) >= 180`.
/// Yet the bound is tight enough to catch real errors: for n = 2000,
/// p = 0.1 it allows 200 +/- 67, so swapped weights (1800) or a 20% share
/// (400) fail. `p` of 0 or 1 demands the exact count.
pub const DEFAULT_Z: f64 = 5.0;

/// The result of comparing an observed count with its binomial expectation.
#[derive(Clone, Copy, Debug)]
pub struct BinomialCheck {
    pub n: u64,
    pub p: f64,
    pub k: u64,
    pub z: f64,
    /// `n * p`.
    pub expected: f64,
    /// `sqrt(n * p * (1 - p))`.
    pub sigma: f64,
}

impl BinomialCheck {
    /// `|k - n p|`.
    pub fn deviation(&self) -> f64 {
        (self.k as f64 - self.expected).abs()
    }

    /// Whether `|k - n p| <= z sigma` (with a little slack for float error
    /// when sigma is 0).
    pub fn ok(&self) -> bool {
        self.deviation() <= self.z * self.sigma + 1e-9
    }
}

impl fmt::Display for BinomialCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "observed {} of {} (p = {}), expected {:.1} +/- {:.1} ({} sigma = {:.1}); deviation {:.1} = {:.2} sigma",
            self.k,
            self.n,
            self.p,
            self.expected,
            self.z * self.sigma,
            self.z,
            self.sigma,
            self.deviation(),
            if self.sigma > 0.0 {
                self.deviation() / self.sigma
            } else {
                0.0
            }
        )
    }
}

/// Compares `k` successes out of `n` with probability `p`, using `z` sigmas.
pub fn binomial(n: u64, p: f64, k: u64, z: f64) -> BinomialCheck {
    let nf = n as f64;
    BinomialCheck {
        n,
        p,
        k,
        z,
        expected: nf * p,
        sigma: (nf * p * (1.0 - p)).max(0.0).sqrt(),
    }
}

/// `Ok` when `|k - n p| <= 5 sqrt(n p (1 - p))` (see [`DEFAULT_Z`]), else an
/// error that shows the numbers.
pub fn check_binomial(n: u64, p: f64, k: u64) -> Result<BinomialCheck, String> {
    let check = binomial(n, p, k, DEFAULT_Z);
    if check.ok() {
        Ok(check)
    } else {
        Err(format!("outside the binomial bound: {check}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_accepts_expected_and_rejects_wrong_splits() {
        // 2000 at 10%: 200 +/- 5 * sqrt(180) = 200 +/- 67.08
        assert!(check_binomial(2000, 0.1, 200).is_ok());
        assert!(check_binomial(2000, 0.1, 267).is_ok());
        assert!(check_binomial(2000, 0.1, 133).is_ok());
        assert!(check_binomial(2000, 0.1, 268).is_err());
        assert!(check_binomial(2000, 0.1, 132).is_err());
        assert!(check_binomial(2000, 0.1, 1800).is_err());
        assert!(check_binomial(2000, 0.5, 1000).is_ok());
        assert!(check_binomial(2000, 0.5, 1200).is_err());
        // Degenerate shares demand exact counts.
        assert!(check_binomial(2000, 0.0, 0).is_ok());
        assert!(check_binomial(2000, 0.0, 1).is_err());
        assert!(check_binomial(2000, 1.0, 2000).is_ok());
        assert!(check_binomial(2000, 1.0, 1999).is_err());
    }

    #[test]
    fn split_counts_and_display() {
        let mut s = Split::default();
        s.add("v1".into());
        s.add("v1".into());
        s.add("status 503".into());
        assert_eq!(s.count("v1"), 2);
        assert_eq!(s.count("v2"), 0);
        assert_eq!(s.total(), 3);
        assert_eq!(s.others(&["v1", "v2"]).len(), 1);
        assert_eq!(s.to_string(), "{status 503: 1, v1: 2} of 3");
    }
}
