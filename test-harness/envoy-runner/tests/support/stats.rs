//! Waiting for an Envoy's stats to say something.

use std::time::{Duration, Instant};

use envoy_runner::{Envoy, Stats};

/// Polls `/stats` until `ok` holds, for at most `timeout`; returns the stats
/// that satisfied it. Fails the test with Envoy's failure report otherwise.
pub fn wait_stats(
    envoy: &Envoy,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&Stats) -> bool,
) -> Stats {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = envoy.stats().unwrap_or_else(|e| panic!("{e}"));
        if ok(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            envoy.failure_report()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
