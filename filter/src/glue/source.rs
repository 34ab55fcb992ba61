//! Polling a rule file (a ConfigMap behind a small web server) with HTTP
//! callouts, shared by all worker threads of one Envoy.
//!
//! Workers agree through shared data:
//! - `<prefix>/lease` holds `owner:next_fetch_ms:failures`. On a tick, a
//!   worker whose clock has passed `next_fetch_ms` claims the lease with a
//!   CAS write; only the winner fetches. A failure pushes `next_fetch_ms` out
//!   by an exponential backoff.
//! - `<prefix>/rules` holds `v1\n<etag>\n<body>` of the last *valid* file.
//!   Every worker adopts it on its next tick when its CAS token changes.
//!
//! A bad file, an error status, a timeout or an unreachable server leaves the
//! last good rules serving, counts `rules.reload_failure`, and is logged once
//! until the error changes or the source recovers.

use std::time::Duration;

use crate::limits;
use crate::plugin::{self, Rules, SourceSettings};
use crate::Workload;

use super::hostio::{self, Buffer, Map, Status};
use super::metrics::bump;
use super::root::Active;

/// The longest backoff after repeated failures.
const MAX_BACKOFF_MS: u64 = 30_000;

pub struct Poller {
    source: SourceSettings,
    lease_key: String,
    rules_key: String,
    me: u64,
    /// CAS token of the shared rules this worker last adopted (or wrote).
    adopted_cas: Option<u32>,
    /// The fetch under way: token and the time after which it is given up.
    in_flight: Option<(u32, u64)>,
    /// The last error logged, so the same error is logged once.
    last_error: Option<String>,
}

struct Lease {
    next_fetch_ms: u64,
    failures: u32,
}

impl Lease {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        let mut parts = s.split(':');
        let _owner = parts.next()?;
        Some(Lease {
            next_fetch_ms: parts.next()?.parse().ok()?,
            failures: parts.next()?.parse().ok()?,
        })
    }
}

/// Splits the shared rules value into etag and body.
fn split_shared(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = bytes.strip_prefix(b"v1\n")?;
    let nl = rest.iter().position(|b| *b == b'\n')?;
    Some((rest.get(..nl)?, rest.get(nl + 1..)?))
}

impl Poller {
    pub fn new(source: SourceSettings, me: u64) -> Self {
        let prefix = format!("canary-router/v1/{}{}", source.cluster, source.path);
        Poller {
            lease_key: format!("{prefix}/lease"),
            rules_key: format!("{prefix}/rules"),
            source,
            me,
            adopted_cas: None,
            in_flight: None,
            last_error: None,
        }
    }

    pub fn cluster(&self) -> &str {
        &self.source.cluster
    }

    pub fn path(&self) -> &str {
        &self.source.path
    }

    /// Ticks often enough that every worker sees new rules well within one
    /// poll interval.
    pub fn tick_period_ms(&self) -> u32 {
        let ms = (self.source.poll_interval.as_millis() / 5).clamp(100, 1000);
        u32::try_from(ms).unwrap_or(1000)
    }

    fn interval_ms(&self) -> u64 {
        u64::try_from(self.source.poll_interval.as_millis()).unwrap_or(u64::MAX)
    }

    fn backoff_ms(&self, failures: u32) -> u64 {
        let cap = MAX_BACKOFF_MS.max(self.interval_ms());
        self.interval_ms()
            .saturating_mul(1u64 << failures.min(16))
            .min(cap)
    }

    /// Compiles the rules another worker published, if they changed.
    pub fn adopt_shared(
        &mut self,
        active: &Active,
        workload: &mut dyn FnMut(&[u8]) -> Workload,
    ) -> Option<Rules> {
        let (bytes, cas) = match hostio::shared_data(&self.rules_key) {
            Ok(v) => v,
            Err(Status::NOT_FOUND) => return None,
            Err(s) => {
                self.fail_once(active, format!("cannot read shared rules: {s}"));
                return None;
            }
        };
        if self.adopted_cas == Some(cas) {
            return None;
        }
        self.adopted_cas = Some(cas);
        let (_, body) = split_shared(bytes.as_slice())?;
        match plugin::rule_file_from_bytes(body, &active.settings, &workload(body)) {
            Ok(rules) => Some(rules),
            Err(e) => {
                self.fail_once(active, format!("shared rules rejected: {e}"));
                None
            }
        }
    }

    /// Starts a fetch if it is time and this worker wins the lease.
    pub fn maybe_fetch(&mut self, active: &Active) {
        let Ok(now) = hostio::now_ms() else { return };
        if let Some((_, give_up_at)) = self.in_flight {
            if now < give_up_at {
                return;
            }
            // The host never answered: count it and let the lease decide again.
            self.in_flight = None;
        }
        let (lease, cas) = match hostio::shared_data(&self.lease_key) {
            Ok((bytes, cas)) => (Lease::parse(bytes.as_slice()), cas),
            Err(Status::NOT_FOUND) => (None, 0),
            Err(_) => return,
        };
        let failures = lease.as_ref().map_or(0, |l| l.failures);
        if lease.as_ref().is_some_and(|l| now < l.next_fetch_ms) {
            return;
        }
        // Claim: nobody else fetches before the next interval.
        let claim = format!(
            "{:x}:{}:{}",
            self.me,
            now.saturating_add(self.interval_ms()),
            failures
        );
        if hostio::set_shared_data(&self.lease_key, claim.as_bytes(), cas).is_err() {
            return; // another worker won, or shared data failed: try next tick
        }
        let etag = hostio::shared_data(&self.rules_key)
            .ok()
            .and_then(|(b, _)| split_shared(b.as_slice()).map(|(e, _)| e.to_vec()))
            .filter(|e| !e.is_empty())
            .and_then(|e| String::from_utf8(e).ok());
        let mut headers = vec![
            (":method", "GET"),
            (":path", &*self.source.path),
            (":authority", &*self.source.authority),
            ("accept", "application/json"),
            ("user-agent", "canary-router"),
        ];
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag));
        }
        let timeout = self.source.timeout;
        match proxy_wasm::hostcalls::dispatch_http_call(
            &self.source.cluster,
            headers,
            None,
            vec![],
            timeout,
        ) {
            Ok(token) => {
                let give_up =
                    now.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(0) + 1000);
                self.in_flight = Some((token, give_up));
            }
            Err(s) => self.failed(
                active,
                format!("cannot call cluster {}: {s:?}", self.source.cluster),
                now,
                failures,
            ),
        }
    }

    /// Handles the rule server's answer; returns new rules if they are valid.
    pub fn on_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        active: &Active,
        workload: &mut dyn FnMut(&[u8]) -> Workload,
    ) -> Option<Rules> {
        if self.in_flight.map(|(t, _)| t) != Some(token) {
            return None;
        }
        self.in_flight = None;
        let now = hostio::now_ms().unwrap_or(0);
        let failures = hostio::shared_data(&self.lease_key)
            .ok()
            .and_then(|(b, _)| Lease::parse(b.as_slice()))
            .map_or(0, |l| l.failures);
        if num_headers == 0 {
            self.failed(
                active,
                "no answer from the rule server (unreachable, reset or timed out)".into(),
                now,
                failures,
            );
            return None;
        }
        let status = hostio::header_value(Map::HttpCallResponse, ":status")
            .ok()
            .and_then(|b| {
                std::str::from_utf8(b.as_slice())
                    .ok()
                    .and_then(|s| s.parse::<u16>().ok())
            });
        match status {
            Some(304) => {
                bump(active.global.fetch_not_modified);
                self.succeeded(now);
                None
            }
            Some(200) => self.accept_body(body_size, active, workload, now, failures),
            Some(code) => {
                self.failed(
                    active,
                    format!("rule server answered HTTP {code}"),
                    now,
                    failures,
                );
                None
            }
            None => {
                self.failed(
                    active,
                    "rule server answered without a valid :status".into(),
                    now,
                    failures,
                );
                None
            }
        }
    }

    fn accept_body(
        &mut self,
        body_size: usize,
        active: &Active,
        workload: &mut dyn FnMut(&[u8]) -> Workload,
        now: u64,
        failures: u32,
    ) -> Option<Rules> {
        if body_size > limits::MAX_CONFIG_BYTES {
            self.failed(
                active,
                format!(
                    "rule file is {body_size} bytes, over the limit of {}",
                    limits::MAX_CONFIG_BYTES
                ),
                now,
                failures,
            );
            return None;
        }
        let body = match hostio::buffer(Buffer::HttpCallResponseBody, body_size) {
            Ok(b) => b,
            Err(s) => {
                self.failed(
                    active,
                    format!("cannot read the rule file: {s}"),
                    now,
                    failures,
                );
                return None;
            }
        };
        let body = body.as_slice();
        let rules = match plugin::rule_file_from_bytes(body, &active.settings, &workload(body)) {
            Ok(r) => r,
            Err(e) => {
                self.failed(active, format!("rule file rejected: {e}"), now, failures);
                return None;
            }
        };
        let etag = hostio::header_value(Map::HttpCallResponse, "etag")
            .map(|b| b.as_slice().to_vec())
            .unwrap_or_default();
        let etag: Vec<u8> = etag
            .into_iter()
            .filter(|b| *b != b'\n' && *b != b'\r')
            .collect();
        let mut shared = Vec::with_capacity(body.len() + etag.len() + 4);
        shared.extend_from_slice(b"v1\n");
        shared.extend_from_slice(&etag);
        shared.push(b'\n');
        shared.extend_from_slice(body);
        let unchanged = hostio::shared_data(&self.rules_key)
            .ok()
            .and_then(|(b, cas)| split_shared(b.as_slice()).map(|(_, old)| (old == body, cas)));
        match unchanged {
            // Same bytes without an ETag: nothing to install.
            Some((true, cas)) => {
                self.adopted_cas = Some(cas);
                self.succeeded(now);
                return None;
            }
            _ => {
                if let Err(s) = hostio::set_shared_data(&self.rules_key, &shared, 0) {
                    log::warn!("cannot share the new rules with other workers: {s}");
                }
                self.adopted_cas = hostio::shared_data(&self.rules_key)
                    .ok()
                    .map(|(_, cas)| cas);
            }
        }
        bump(active.global.reload_success);
        self.succeeded(now);
        Some(rules)
    }

    fn succeeded(&mut self, now: u64) {
        if self.last_error.take().is_some() {
            log::info!(
                "rule source {}{} recovered",
                self.source.cluster,
                self.source.path
            );
        }
        let lease = format!("{:x}:{}:0", self.me, now.saturating_add(self.interval_ms()));
        let _ = hostio::set_shared_data(&self.lease_key, lease.as_bytes(), 0);
    }

    fn failed(&mut self, active: &Active, why: String, now: u64, failures: u32) {
        let failures = failures.saturating_add(1);
        let backoff = self.backoff_ms(failures);
        let lease = format!("{:x}:{}:{}", self.me, now.saturating_add(backoff), failures);
        let _ = hostio::set_shared_data(&self.lease_key, lease.as_bytes(), 0);
        bump(active.global.reload_failure);
        if self.last_error.as_deref() != Some(why.as_str()) {
            log::warn!(
                "rule source {}{}: {why}; keeping the last good rules; next try in {:?}",
                self.source.cluster,
                self.source.path,
                Duration::from_millis(backoff)
            );
            self.last_error = Some(why);
        }
    }

    fn fail_once(&mut self, active: &Active, why: String) {
        bump(active.global.reload_failure);
        if self.last_error.as_deref() != Some(why.as_str()) {
            log::warn!("{why}; keeping the last good rules");
            self.last_error = Some(why);
        }
    }
}
