//! Load generators: `wrk` (HTTP/1.1) and `h2load` (HTTP/2 over cleartext,
//! prior knowledge), their output parsed, and the CPU use of each core
//! sampled while they run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::configs::HOST;

/// One measured run.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Requests completed.
    pub requests: u64,
    /// Busy share (0..1) of each core during the run.
    pub cpu: Vec<f64>,
    /// CPU time the Envoy under test spent per request, µs (all its
    /// threads, from the scheduler's own accounting): the cost of a request
    /// in the sidecar, which other work sharing the machine disturbs far
    /// less than throughput.
    pub envoy_cpu_us: Option<f64>,
}

/// Requests in flight by default (`--connections`).
pub const DEFAULT_IN_FLIGHT: u32 = 16;
/// HTTP/2 connections carrying them by default (`--h2-connections`).
pub const DEFAULT_H2_CONNECTIONS: u32 = 4;

/// How to generate load.
#[derive(Clone, Debug)]
pub struct Load {
    /// Requests in flight (wrk connections; h2load connections x streams).
    pub in_flight: u32,
    /// HTTP/2 connections (each carries `in_flight / h2_connections` streams).
    pub h2_connections: u32,
    /// Core the load generator is pinned to, if any.
    pub core: Option<u32>,
    /// Niceness of the load generator, if changed.
    pub nice: Option<i32>,
    /// A header every request carries (the sticky rows' user).
    pub header: Option<(&'static str, &'static str)>,
}

/// The protocol of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 with `wrk`.
    H1,
    /// HTTP/2 (h2c, prior knowledge) with `h2load`.
    H2,
    /// HTTP/1.1 with `wrk -c1`: one request at a time, so latency is the
    /// request's own path through the proxies, without queueing.
    Serial,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1 (wrk)",
            Proto::H2 => "HTTP/2 (h2load, h2c)",
            Proto::Serial => "HTTP/1.1, one request at a time (wrk -c1)",
        }
    }
}

fn pinned(core: Option<u32>, nice: Option<i32>, program: &str) -> Command {
    let mut args: Vec<String> = Vec::new();
    if let Some(n) = nice {
        args.extend(["nice".into(), "-n".into(), n.to_string()]);
    }
    if let Some(c) = core {
        args.extend(["taskset".into(), "-c".into(), c.to_string()]);
    }
    args.push(program.into());
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    cmd
}

impl Load {
    /// This load for an Envoy of `kind`: with the header its rules key on.
    pub fn for_kind(&self, kind: &crate::configs::Kind) -> Load {
        Load {
            header: kind.load_header(),
            ..self.clone()
        }
    }

    /// Runs one protocol's load generator against `addr` for `duration`.
    /// `envoy` is the pid of the Envoy under test, whose CPU time is measured.
    pub fn run(
        &self,
        proto: Proto,
        addr: SocketAddr,
        envoy: u32,
        duration: Duration,
        scratch: &Path,
    ) -> Result<Sample, String> {
        let envoy_before = process_cpu_ns(envoy);
        let before = cpu_times();
        let mut sample = match proto {
            Proto::H1 => self.wrk(addr, duration, self.in_flight)?,
            Proto::Serial => self.wrk(addr, duration, 1)?,
            Proto::H2 => self.h2load(addr, duration, scratch)?,
        };
        let after = cpu_times();
        sample.cpu = busy_shares(&before, &after);
        if let (Some(b), Some(a)) = (envoy_before, process_cpu_ns(envoy)) {
            if sample.requests > 0 && a > b {
                sample.envoy_cpu_us = Some((a - b) as f64 / 1000.0 / sample.requests as f64);
            }
        }
        Ok(sample)
    }

    fn wrk(&self, addr: SocketAddr, duration: Duration, conns: u32) -> Result<Sample, String> {
        let secs = duration.as_secs().max(1);
        let out = pinned(self.core, self.nice, "wrk")
            .args(["-t1", &format!("-c{conns}")])
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .args(["-H", &format!("Host: {HOST}")])
            .args(
                self.header
                    .iter()
                    .flat_map(|(k, v)| ["-H".to_string(), format!("{k}: {v}")]),
            )
            .arg(format!("http://{addr}/"))
            .output()
            .map_err(|e| format!("running wrk: {e} (apt-get install -y wrk)"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "wrk failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        parse_wrk(&text)
    }

    fn h2load(
        &self,
        addr: SocketAddr,
        duration: Duration,
        scratch: &Path,
    ) -> Result<Sample, String> {
        let secs = duration.as_secs().max(1);
        let conns = self.h2_connections.clamp(1, self.in_flight.max(1));
        let streams = (self.in_flight / conns).max(1);
        let log = scratch.join("h2load.log");
        let _ = std::fs::remove_file(&log);
        let out = pinned(self.core, self.nice, "h2load")
            .args(["-t1", &format!("-c{conns}"), &format!("-m{streams}")])
            .args(["-D", &secs.to_string()])
            .args(["-H", &format!(":authority: {HOST}")])
            .args(
                self.header
                    .iter()
                    .flat_map(|(k, v)| ["-H".to_string(), format!("{k}: {v}")]),
            )
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("http://{addr}/"))
            .output()
            .map_err(|e| format!("running h2load: {e} (apt-get install -y nghttp2-client)"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "h2load failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut sample = parse_h2load(&text)?;
        let log = std::fs::read_to_string(&log).map_err(|e| format!("h2load log: {e}"))?;
        let mut times: Vec<f64> = log
            .lines()
            .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
            .collect();
        if times.is_empty() {
            return Err("h2load logged no request".into());
        }
        times.sort_by(f64::total_cmp);
        sample.p50_us = percentile(&times, 0.50);
        sample.p99_us = percentile(&times, 0.99);
        Ok(sample)
    }
}

/// The `q` quantile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Parses a wrk latency like `534.00us`, `1.15ms`, `2.01s` into µs.
fn duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * scale)
}

/// Parses `wrk --latency` output; any non-2xx response or socket error is an error.
pub fn parse_wrk(text: &str) -> Result<Sample, String> {
    let mut s = Sample::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse().map_err(|_| format!("wrk: {line}"))?;
        } else if let Some(v) = line.strip_prefix("50%") {
            s.p50_us = duration_us(v).ok_or_else(|| format!("wrk: {line}"))?;
        } else if let Some(v) = line.strip_prefix("99%") {
            s.p99_us = duration_us(v).ok_or_else(|| format!("wrk: {line}"))?;
        } else if line.contains("requests in") {
            s.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            return Err(format!("wrk reported errors: {line}\n{text}"));
        }
    }
    if s.rps <= 0.0 || s.p99_us <= 0.0 || s.requests == 0 {
        return Err(format!("wrk output not understood:\n{text}"));
    }
    Ok(s)
}

/// Parses h2load's summary (throughput and counts; latency comes from its log).
pub fn parse_h2load(text: &str) -> Result<Sample, String> {
    let mut s = Sample::default();
    let mut ok = 0u64;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("finished in") {
            // "finished in 6.01s, 24229.20 req/s, 946.83KB/s"
            s.rps = rest
                .split(',')
                .nth(1)
                .and_then(|f| f.trim().strip_suffix("req/s"))
                .and_then(|f| f.trim().parse().ok())
                .ok_or_else(|| format!("h2load: {line}"))?;
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // "requests: 121146 total, 121146 started, 121146 done, 121146 succeeded, 0 failed, 0 errored, 0 timeout"
            for part in rest.split(',') {
                let mut it = part.split_whitespace();
                let (Some(n), Some(what)) = (it.next(), it.next()) else {
                    continue;
                };
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "succeeded" => ok = n,
                    "failed" | "errored" | "timeout" if n > 0 => {
                        return Err(format!("h2load reported errors: {line}\n{text}"))
                    }
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            let bad: u64 = rest
                .split(',')
                .filter(|p| !p.contains("2xx"))
                .filter_map(|p| p.split_whitespace().next()?.parse::<u64>().ok())
                .sum();
            if bad > 0 {
                return Err(format!("h2load: non-2xx responses: {line}\n{text}"));
            }
        }
    }
    s.requests = ok;
    if s.rps <= 0.0 || ok == 0 {
        return Err(format!("h2load output not understood:\n{text}"));
    }
    Ok(s)
}

/// Per-core (busy, total) jiffies from /proc/stat.
fn cpu_times() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

fn busy_shares(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((b0, t0), (b1, t1))| {
            let t = t1.saturating_sub(*t0);
            if t == 0 {
                0.0
            } else {
                b1.saturating_sub(*b0) as f64 / t as f64
            }
        })
        .collect()
}

/// Nanoseconds every thread of `pid` has run on a CPU: the first field of
/// `/proc/<pid>/task/<tid>/schedstat`, summed (threads that exit between
/// two readings are rare in an Envoy under steady load).
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// The load average (1 minute) right now.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:19000/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   725.72us  773.06us   9.42ms   93.51%
    Req/Sec    26.87k     4.33k   32.74k    68.63%
  Latency Distribution
     50%  534.00us
     75%  600.00us
     90%  767.00us
     99%    4.66ms
  136312 requests in 5.10s, 21.84MB read
Requests/sec:  26728.04
Transfer/sec:      4.28MB
";

    const H2LOAD: &str = "finished in 6.01s, 24229.20 req/s, 946.83KB/s
requests: 121146 total, 121146 started, 121146 done, 121146 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 121146 2xx, 0 3xx, 0 4xx, 0 5xx
";

    #[test]
    fn wrk_output() {
        let s = parse_wrk(WRK).unwrap();
        assert_eq!(s.rps, 26728.04);
        assert_eq!(s.p50_us, 534.0);
        assert_eq!(s.p99_us, 4660.0);
        assert_eq!(s.requests, 136312);
        let bad = WRK.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 5\nRequests/sec",
        );
        assert!(parse_wrk(&bad).is_err());
    }

    #[test]
    fn h2load_output() {
        let s = parse_h2load(H2LOAD).unwrap();
        assert_eq!(s.rps, 24229.20);
        assert_eq!(s.requests, 121146);
        assert!(parse_h2load(&H2LOAD.replace("0 failed", "3 failed")).is_err());
        assert!(parse_h2load(&H2LOAD.replace("0 5xx", "2 5xx")).is_err());
    }

    #[test]
    fn a_process_cpu_time_is_read_and_grows() {
        let me = std::process::id();
        let before = process_cpu_ns(me).expect("own schedstat");
        // Spin until the counter shows 10 ms more CPU, or give up after a
        // generous wall-clock bound: on a loaded machine the process may get
        // only a fraction of a core, so a fixed spin proves nothing.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after < before + 10_000_000 && t.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = process_cpu_ns(me).expect("own schedstat");
        }
        assert!(after >= before + 10_000_000, "{before} -> {after}");
        assert_eq!(process_cpu_ns(u32::MAX), None);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
