//! Polling a rule file (a ConfigMap behind a small web server) over HTTP,
//! shared by every VM of one Envoy (the main thread's and each worker's).
//!
//! This is the poller's whole logic, apart from the host: the proxy-wasm
//! adapter (`adapters/proxy_wasm/poll_host.rs`) implements [`PollHost`] with
//! host calls, and the tests implement it with a shared map and a fake
//! clock, so the protocol below is tested natively as well as in the built
//! `.wasm`.
//!
//! VMs agree through shared data (one store per `vm_id`; every key starts
//! with `canary-router/v1/<cluster><path>`):
//! - `…/lease` holds `owner:next_fetch_ms:failures`. On a tick, a VM whose
//!   clock has passed `next_fetch_ms` claims the lease with a CAS write; only
//!   the winner fetches. The claim lasts until the fetch has answered or
//!   timed out, so two fetches never overlap; an answer sets the next fetch
//!   one interval later, a failure by an exponential backoff.
//! - `…/rules` holds the body of the last *valid* rule file, and `…/head`
//!   `<digest> <etag>` of it (written after the body). Every VM reads the
//!   small `head` on each tick and only reads and compiles the body when the
//!   digest is not the one it already runs.
//! - `…/error` holds the last failure that was logged (empty once the source
//!   recovered), so a failure is logged once per Envoy, not once per VM or
//!   per poll.
//!
//! A bad file, an error status, a timeout or an unreachable server leaves the
//! last good rules serving and counts `rules.reload_failure`.

use alloc::{borrow::ToOwned, format, string::String, string::ToString, vec, vec::Vec};

use core::time::Duration;

use crate::domain::pick::hash_key;
use crate::domain::plugin::{Rules, SourceSettings};
use crate::domain::shared::{CasMismatch, SharedStore};
use crate::domain::text;
use crate::schema::error::ConfigError;
use crate::schema::limits;

/// The longest backoff after repeated failures (unless the poll interval is
/// longer still).
pub const MAX_BACKOFF_MS: u64 = 30_000;
/// How long after a fetch's timeout its lease is given up, should the host
/// never answer.
pub const LEASE_GRACE_MS: u64 = 1_000;

/// Counters the poller bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// New rules were fetched, validated and installed.
    ReloadSuccess,
    /// A fetch failed, or the file was refused; the last good rules stay.
    ReloadFailure,
    /// The server answered 304, or the same bytes as the rules in use.
    NotModified,
}

/// Log levels the poller uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// State changes (recovered).
    Info,
    /// Failures (once per distinct failure).
    Warn,
}

/// What the poller needs from the host: its shared data, and the rest.
pub trait PollHost: SharedStore {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&mut self) -> Option<u64>;
    /// Starts a GET of the rule file from `cluster`; returns the call's token.
    fn fetch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, String>;
    /// A header of the answer being handled (`:status`, `etag`).
    fn response_header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// The body of the answer being handled.
    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, String>;
    /// Bumps a counter.
    fn count(&mut self, counter: Counter);
    /// Logs a line.
    fn log(&mut self, level: Level, message: &str);
}

/// The lease: who fetches next, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The VM that claimed it last (random per poller), `-` for nobody.
    pub owner: String,
    /// No VM fetches before this time.
    pub next_fetch_ms: u64,
    /// Consecutive failures, for the backoff.
    pub failures: u32,
}

impl Lease {
    /// Parses `owner:next_fetch_ms:failures`.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let s = core::str::from_utf8(bytes).ok()?;
        let mut parts = [""; 3];
        if !text::split_exact(s, b':', &mut parts) {
            return None;
        }
        let [owner, next, failures] = parts;
        Some(Lease {
            owner: owner.to_owned(),
            next_fetch_ms: text::parse_u64(next.as_bytes(), 10)?,
            failures: u32::try_from(text::parse_u64(failures.as_bytes(), 10)?).ok()?,
        })
    }

    /// `owner:next_fetch_ms:failures`.
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.owner, self.next_fetch_ms, self.failures)
    }
}

/// The digest of a rule file's bytes, as kept in `…/head`.
pub fn digest(body: &[u8]) -> u64 {
    hash_key(body)
}

/// Parses `…/head`: `<digest hex> <etag>` (the ETag may be empty).
pub fn parse_head(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let sp = bytes.iter().position(|b| *b == b' ')?;
    let digest = text::parse_u64(bytes.get(..sp)?, 16)?;
    Some((digest, bytes.get(sp + 1..)?))
}

/// Encodes `…/head`.
pub fn encode_head(digest: u64, etag: &[u8]) -> Vec<u8> {
    let mut head = format!("{digest:016x} ").into_bytes();
    head.extend_from_slice(etag);
    head
}

/// How long to wait after `failures` consecutive failures: one interval
/// after the first, doubling after each next one, at most
/// [`MAX_BACKOFF_MS`] (or the interval, if longer).
pub fn backoff_ms(interval_ms: u64, failures: u32) -> u64 {
    let cap = MAX_BACKOFF_MS.max(interval_ms);
    let exp = failures.saturating_sub(1).min(20);
    interval_ms.saturating_mul(1u64 << exp).min(cap)
}

/// The tick period: often enough that every VM sees new rules well within
/// one poll interval (a fifth of it, between 100 ms and 1 s).
pub fn tick_period_ms(interval: Duration) -> u32 {
    // In u64: a u128 division would link compiler_builtins' (1 KiB).
    let ms = (millis(interval) / 5).clamp(100, 1000);
    u32::try_from(ms).unwrap_or(1000)
}

/// A duration in whole milliseconds (saturating).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole milliseconds as `Duration`'s `{:?}` writes them (`500ms`, `5s`,
/// `1.25s`), without its general formatter.
pub fn show_ms(ms: u64) -> String {
    if ms == 0 {
        return "0ns".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut out = format!("{}", ms / 1000);
    // The thousandths, without trailing zeros.
    let frac = ms % 1000;
    let digits = [frac / 100, frac / 10 % 10, frac % 10];
    let keep = digits.iter().rposition(|d| *d != 0).map_or(0, |i| i + 1);
    if keep > 0 {
        out.push('.');
    }
    for d in digits.iter().take(keep) {
        out.push(char::from(b'0' + *d as u8));
    }
    out.push('s');
    out
}

/// How much of an error answer's body is logged.
const MAX_DETAIL_BYTES: usize = 256;

/// Bytes as one log-safe line: control characters become spaces, runs of
/// spaces one, invalid UTF-8 is replaced.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    lossy_chars(bytes, &mut |c| {
        let c = if c.is_control() { ' ' } else { c };
        if !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    });
    text::trim_end(&out).to_string()
}

/// The characters `String::from_utf8_lossy(bytes)` holds, one by one: each
/// invalid sequence (as `Utf8Error::error_len` delimits it, or a truncated
/// one at the end) is one U+FFFD. Built on `core::str::from_utf8`, which is
/// linked anyway, rather than on `from_utf8_lossy` and its `Utf8Chunks`.
fn lossy_chars(mut bytes: &[u8], f: &mut dyn FnMut(char)) {
    loop {
        let e = match core::str::from_utf8(bytes) {
            Ok(s) => return s.chars().for_each(f),
            Err(e) => e,
        };
        let (head, tail) = bytes.split_at(e.valid_up_to());
        // `head` is valid: checking it again cannot fail.
        core::str::from_utf8(head)
            .unwrap_or_default()
            .chars()
            .for_each(&mut *f);
        f('\u{fffd}');
        // No `error_len`: the input ends inside a sequence.
        match e.error_len().and_then(|n| tail.get(n..)) {
            Some(rest) => bytes = rest,
            None => return,
        }
    }
}

/// An ETag as it may be sent back in `if-none-match`: visible ASCII and
/// spaces only (anything else is dropped, and the fetch is unconditional).
fn clean_etag(etag: Option<Vec<u8>>) -> Vec<u8> {
    match etag {
        Some(e) if e.iter().all(|b| *b == b' ' || b.is_ascii_graphic()) => e,
        _ => Vec::new(),
    }
}

/// One VM's poller.
pub struct Poller {
    source: SourceSettings,
    lease_key: String,
    rules_key: String,
    head_key: String,
    error_key: String,
    me: String,
    user_agent: String,
    /// Digest of the rule file this VM compiled last (installed, or refused).
    adopted: Option<u64>,
    /// The fetch under way: token and the time after which it is given up.
    in_flight: Option<(u32, u64)>,
    /// The last failure this VM logged, for when shared data fails too.
    last_error: Option<String>,
}

/// What a fetch came to.
enum Outcome {
    /// The source answered with nothing new.
    Unchanged,
    /// New, valid rules.
    New(Rules),
    /// The source failed, or sent a file that was refused: why, and a detail
    /// that is logged but does not make the failure a new one.
    Failed(String, String),
}

impl Poller {
    /// A poller for `source`; `me` identifies this VM in the lease.
    pub fn new(source: SourceSettings, me: u64) -> Self {
        let prefix = format!("canary-router/v1/{}{}", source.cluster, source.path);
        Poller {
            lease_key: format!("{prefix}/lease"),
            rules_key: format!("{prefix}/rules"),
            head_key: format!("{prefix}/head"),
            error_key: format!("{prefix}/error"),
            source,
            me: format!("{me:x}"),
            user_agent: format!("canary-router/{}", env!("CARGO_PKG_VERSION")),
            adopted: None,
            in_flight: None,
            last_error: None,
        }
    }

    /// The rule source.
    pub fn source(&self) -> &SourceSettings {
        &self.source
    }

    /// The tick period to ask the host for.
    pub fn tick_period_ms(&self) -> u32 {
        tick_period_ms(self.source.poll_interval)
    }

    fn interval_ms(&self) -> u64 {
        millis(self.source.poll_interval)
    }

    /// One tick: adopts rules another VM published, then fetches if it is
    /// time and this VM wins the lease. Returns rules to install.
    pub fn tick(
        &mut self,
        host: &mut dyn PollHost,
        compile: &mut dyn FnMut(&[u8]) -> Result<Rules, ConfigError>,
    ) -> Option<Rules> {
        let adopted = self.adopt_shared(host, compile);
        self.maybe_fetch(host);
        adopted
    }

    /// Compiles the rules another VM published, if they are not the ones
    /// this VM runs.
    pub fn adopt_shared(
        &mut self,
        host: &mut dyn PollHost,
        compile: &mut dyn FnMut(&[u8]) -> Result<Rules, ConfigError>,
    ) -> Option<Rules> {
        let head = match host.get(&self.head_key) {
            Ok(Some((head, _))) => head,
            Ok(None) => return None,
            Err(e) => {
                self.fail_locally(host, format!("cannot read the shared rules: {e}"));
                return None;
            }
        };
        let (want, _) = parse_head(&head)?;
        if self.adopted == Some(want) {
            return None;
        }
        let body = match host.get(&self.rules_key) {
            Ok(Some((body, _))) => body,
            Ok(None) => return None,
            Err(e) => {
                self.fail_locally(host, format!("cannot read the shared rules: {e}"));
                return None;
            }
        };
        // The body is written before its head: a body newer than the head is
        // adopted on the next tick, once the head names it.
        if digest(&body) != want {
            return None;
        }
        self.adopted = Some(want);
        match compile(&body) {
            Ok(rules) => Some(rules),
            Err(e) => {
                self.fail_locally(host, format!("the shared rules are refused here: {e}"));
                None
            }
        }
    }

    /// Starts a fetch if it is time and this VM wins the lease.
    pub fn maybe_fetch(&mut self, host: &mut dyn PollHost) {
        let Some(now) = host.now_ms() else { return };
        if let Some((_, give_up_at)) = self.in_flight {
            if now < give_up_at {
                return;
            }
            // The host never answered; the lease expired too, so whoever
            // wins it next fetches again.
            self.in_flight = None;
        }
        let (lease, cas) = match self.read_lease(host) {
            Some(v) => v,
            None => return,
        };
        if now < lease.next_fetch_ms {
            return;
        }
        // Claim the lease until this fetch has surely answered or timed out.
        let timeout = millis(self.source.timeout);
        let give_up_at = now.saturating_add(timeout.saturating_add(LEASE_GRACE_MS));
        let claim = Lease {
            owner: self.me.clone(),
            next_fetch_ms: give_up_at.max(now.saturating_add(self.interval_ms())),
            failures: lease.failures,
        };
        match host.set(&self.lease_key, claim.encode().as_bytes(), cas) {
            Ok(Ok(())) => {}
            // Another VM won, or shared data failed: try again next tick.
            Ok(Err(CasMismatch)) | Err(_) => return,
        }
        let etag = match host.get(&self.head_key) {
            Ok(Some((head, _))) => parse_head(&head).map(|(_, e)| e.to_vec()),
            _ => None,
        }
        .and_then(|e| String::from_utf8(e).ok())
        .filter(|e| !e.is_empty());
        let mut headers = vec![
            (":method", "GET"),
            (":path", &*self.source.path),
            (":authority", &*self.source.authority),
            ("accept", "application/json"),
            ("user-agent", &*self.user_agent),
        ];
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag));
        }
        match host.fetch(&self.source.cluster, &headers, self.source.timeout) {
            Ok(token) => self.in_flight = Some((token, give_up_at)),
            Err(e) => {
                let why = format!("cannot call cluster {}: {e}", self.source.cluster);
                self.failed(host, why, "", now, lease.failures);
            }
        }
    }

    /// The lease and its CAS token; creates a free lease if there is none.
    fn read_lease(&mut self, host: &mut dyn PollHost) -> Option<(Lease, u32)> {
        let (bytes, cas) = match host.get(&self.lease_key).ok()? {
            Some(v) => v,
            None => {
                // Creating a key cannot be conditional (CAS 0 always
                // writes): write a free lease, then claim it with a real CAS
                // like any other, so that two VMs starting together do not
                // both fetch.
                let free = Lease {
                    owner: "-".into(),
                    next_fetch_ms: 0,
                    failures: 0,
                };
                host.set(&self.lease_key, free.encode().as_bytes(), 0)
                    .ok()?
                    .ok()?;
                host.get(&self.lease_key).ok()??
            }
        };
        let lease = Lease::parse(&bytes).unwrap_or(Lease {
            owner: "?".into(),
            next_fetch_ms: 0,
            failures: 0,
        });
        Some((lease, cas))
    }

    /// Handles the rule server's answer to the fetch `token`; returns rules to
    /// install. `num_headers` 0 means the call failed (reset, unreachable,
    /// timed out).
    pub fn on_response(
        &mut self,
        host: &mut dyn PollHost,
        token: u32,
        num_headers: usize,
        body_size: usize,
        compile: &mut dyn FnMut(&[u8]) -> Result<Rules, ConfigError>,
    ) -> Option<Rules> {
        if self.in_flight.map(|(t, _)| t) != Some(token) {
            return None;
        }
        self.in_flight = None;
        let now = host.now_ms().unwrap_or(0);
        let failures = match host.get(&self.lease_key) {
            Ok(Some((bytes, _))) => Lease::parse(&bytes).map_or(0, |l| l.failures),
            _ => 0,
        };
        let outcome = self.judge(host, num_headers, body_size, compile);
        match outcome {
            Outcome::Unchanged => {
                host.count(Counter::NotModified);
                self.succeeded(host, now);
                None
            }
            Outcome::New(rules) => {
                host.count(Counter::ReloadSuccess);
                self.succeeded(host, now);
                Some(rules)
            }
            Outcome::Failed(why, detail) => {
                self.failed(host, why, &detail, now, failures);
                None
            }
        }
    }

    fn judge(
        &mut self,
        host: &mut dyn PollHost,
        num_headers: usize,
        body_size: usize,
        compile: &mut dyn FnMut(&[u8]) -> Result<Rules, ConfigError>,
    ) -> Outcome {
        if num_headers == 0 {
            return Outcome::Failed(
                "no answer from the rule server (unreachable, reset or timed out)".into(),
                String::new(),
            );
        }
        let status = host
            .response_header(":status")
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| text::parse_u64(text::trim(&s).as_bytes(), 10))
            .and_then(|s| u16::try_from(s).ok());
        match status {
            Some(304) => return Outcome::Unchanged,
            Some(200) => {}
            Some(code) => {
                // The body says why (Envoy's own 503 names the connection
                // failure); it is logged, but the failure is judged "the
                // same" by its status alone, so a body with a timestamp in
                // it does not log every poll.
                let detail = match host.response_body(body_size.min(MAX_DETAIL_BYTES)) {
                    Ok(b) if body_size > 0 => format!(": {}", printable(&b)),
                    _ => String::new(),
                };
                return Outcome::Failed(
                    format!("rule server answered HTTP {}", u32::from(code)),
                    detail,
                );
            }
            None => {
                return Outcome::Failed(
                    "rule server answered without a valid :status".into(),
                    String::new(),
                )
            }
        }
        if body_size == 0 {
            return Outcome::Failed(
                "rule file is empty (HTTP 200 with no body)".into(),
                String::new(),
            );
        }
        if body_size > limits::MAX_CONFIG_BYTES {
            return Outcome::Failed(
                format!(
                    "rule file is {body_size} bytes, over the limit of {}",
                    limits::MAX_CONFIG_BYTES
                ),
                String::new(),
            );
        }
        let body = match host.response_body(body_size) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Failed(format!("cannot read the rule file: {e}"), String::new())
            }
        };
        let etag = clean_etag(host.response_header("etag"));
        let new = digest(&body);
        let head = match host.get(&self.head_key) {
            Ok(Some((head, _))) => parse_head(&head).map(|(d, e)| (d, e.to_vec())),
            _ => None,
        };
        if let Some((shared, old_etag)) = &head {
            if *shared == new && self.adopted == Some(new) {
                // The same bytes (a server without ETags, or one whose ETag
                // changed with nothing else): keep the new ETag so the next
                // polls get 304s, and install nothing.
                if *old_etag != etag {
                    let _ = host.set(&self.head_key, &encode_head(new, &etag), 0);
                }
                return Outcome::Unchanged;
            }
        }
        let rules = match compile(&body) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("rule file rejected: {e}"), String::new()),
        };
        // Body first, then the head naming it (see the module doc).
        let published = host
            .set(&self.rules_key, &body, 0)
            .and_then(|_| host.set(&self.head_key, &encode_head(new, &etag), 0));
        if let Err(e) = published {
            host.log(
                Level::Warn,
                &format!("cannot share the new rules with the other workers: {e}"),
            );
        }
        self.adopted = Some(new);
        Outcome::New(rules)
    }

    fn succeeded(&mut self, host: &mut dyn PollHost, now: u64) {
        let lease = Lease {
            owner: self.me.clone(),
            next_fetch_ms: now.saturating_add(self.interval_ms()),
            failures: 0,
        };
        let _ = host.set(&self.lease_key, lease.encode().as_bytes(), 0);
        let recovered = match host.get(&self.error_key) {
            Ok(Some((error, cas))) if !error.is_empty() => {
                matches!(host.set(&self.error_key, b"", cas), Ok(Ok(())))
            }
            Ok(_) => false,
            Err(_) => self.last_error.is_some(),
        };
        self.last_error = None;
        if recovered {
            host.log(
                Level::Info,
                &format!(
                    "rule source {}{} recovered",
                    self.source.cluster, self.source.path
                ),
            );
        }
    }

    fn failed(
        &mut self,
        host: &mut dyn PollHost,
        why: String,
        detail: &str,
        now: u64,
        failures: u32,
    ) {
        let failures = failures.saturating_add(1);
        let backoff = backoff_ms(self.interval_ms(), failures);
        let lease = Lease {
            owner: self.me.clone(),
            next_fetch_ms: now.saturating_add(backoff),
            failures,
        };
        let _ = host.set(&self.lease_key, lease.encode().as_bytes(), 0);
        host.count(Counter::ReloadFailure);
        // Log once per Envoy: the first VM to record a new failure logs it.
        let first = match host.get(&self.error_key) {
            Ok(Some((seen, _))) if seen == why.as_bytes() => false,
            Ok(Some((_, cas))) => {
                matches!(host.set(&self.error_key, why.as_bytes(), cas), Ok(Ok(())))
            }
            Ok(None) => matches!(host.set(&self.error_key, why.as_bytes(), 0), Ok(Ok(()))),
            Err(_) => self.last_error.as_deref() != Some(why.as_str()),
        };
        if first {
            host.log(
                Level::Warn,
                &format!(
                    "rule source {}{}: {why}{detail}; keeping the last good rules; next try in {}",
                    self.source.cluster,
                    self.source.path,
                    show_ms(backoff)
                ),
            );
        }
        self.last_error = Some(why);
    }

    /// A failure of this VM alone (shared data unreadable, shared rules that
    /// do not compile here): logged once per VM.
    fn fail_locally(&mut self, host: &mut dyn PollHost, why: String) {
        host.count(Counter::ReloadFailure);
        if self.last_error.as_deref() != Some(why.as_str()) {
            host.log(Level::Warn, &format!("{why}; keeping the last good rules"));
            self.last_error = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_round_trips_and_rejects_garbage() {
        let l = Lease {
            owner: "a1".into(),
            next_fetch_ms: 1_700_000_000_123,
            failures: 3,
        };
        assert_eq!(Lease::parse(l.encode().as_bytes()), Some(l));
        for bad in ["", "a", "a:1", "a:x:1", "a:1:y", "a:1:2:3", "a:-1:0"] {
            assert_eq!(Lease::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn head_round_trips_with_and_without_etag() {
        for etag in [&b""[..], b"\"5f-1a\"", b"W/\"x y\""] {
            let head = encode_head(0xdead_beef, etag);
            assert_eq!(parse_head(&head), Some((0xdead_beef, etag)));
        }
        assert_eq!(parse_head(b"nothex x"), None);
        assert_eq!(parse_head(b"abc"), None);
    }

    #[test]
    fn backoff_starts_at_one_interval_doubles_and_is_capped() {
        assert_eq!(backoff_ms(500, 1), 500);
        assert_eq!(backoff_ms(500, 2), 1000);
        assert_eq!(backoff_ms(500, 3), 2000);
        assert_eq!(backoff_ms(500, 10), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(500, u32::MAX), MAX_BACKOFF_MS);
        // A poll interval longer than the cap is never shortened.
        assert_eq!(backoff_ms(120_000, 5), 120_000);
    }

    #[test]
    fn tick_period_is_a_fifth_of_the_interval_within_bounds() {
        assert_eq!(tick_period_ms(Duration::from_millis(500)), 100);
        for ms in [
            0,
            1,
            500,
            999,
            1000,
            1001,
            1250,
            1500,
            5000,
            60_000,
            3_600_000,
            123_456_789,
        ] {
            assert_eq!(show_ms(ms), format!("{:?}", Duration::from_millis(ms)));
        }
        assert_eq!(tick_period_ms(Duration::from_millis(2000)), 400);
        assert_eq!(tick_period_ms(Duration::from_secs(3600)), 1000);
    }

    #[test]
    fn error_bodies_are_logged_on_one_line() {
        assert_eq!(
            printable(b"upstream connect error\r\n  reset reason: \x01refused\n"),
            "upstream connect error reset reason: refused"
        );
        assert_eq!(printable(b"\xff ok"), "\u{fffd} ok");
    }

    /// `lossy_chars` against `String::from_utf8_lossy`.
    fn check_lossy(bytes: &[u8]) {
        let mut got = String::new();
        lossy_chars(bytes, &mut |c| got.push(c));
        assert_eq!(got, String::from_utf8_lossy(bytes), "{bytes:x?}");
    }

    #[test]
    fn lossy_chars_replace_invalid_utf8_as_from_utf8_lossy_does() {
        let crafted: &[&[u8]] = &[
            b"",
            b"plain",
            b"\xff",
            b"\xff\xfe\xfd",
            b"a\xffb",
            "é€😀".as_bytes(),
            b"\xc3",             // truncated 2-byte
            b"\xe2\x82",         // truncated 3-byte
            b"\xf0\x9f\x98",     // truncated 4-byte
            b"x\xf0\x9f\x98",    // truncated after text
            b"\xf0\x9f\x98x",    // cut short by text
            b"\xc0\x80",         // overlong NUL
            b"\xc1\xbf",         // overlong
            b"\xe0\x80\xaf",     // overlong 3-byte
            b"\xf0\x80\x80\xaf", // overlong 4-byte
            b"\xed\xa0\x80",     // surrogate D800
            b"\xed\xbf\xbf",     // surrogate DFFF
            b"\xf4\x90\x80\x80", // over U+10FFFF
            b"\xf5\x80\x80\x80",
            b"\x80", // lone continuation
            b"\x80\x80\x80\x80",
            b"\xe2\x82\xe2\x82\xac",
            b"\xc3\xa9\xff\xc3",
        ];
        for bytes in crafted {
            check_lossy(bytes);
        }
        // Every string of up to three bytes drawn from a set that covers
        // every lead, continuation and invalid class.
        let alphabet = [
            0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
            0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xfe, 0xff,
        ];
        for &a in &alphabet {
            check_lossy(&[a]);
            for &b in &alphabet {
                check_lossy(&[a, b]);
                for &c in &alphabet {
                    check_lossy(&[a, b, c]);
                }
            }
        }
        // Random strings, biased towards bytes that start or continue
        // multi-byte sequences (xorshift, fixed seed).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let r = state >> 32;
                let byte = match r % 4 {
                    0 => r as u8 & 0x7f,
                    1 => 0x80 | (r as u8 & 0x3f),
                    2 => 0xc0 | (r as u8 & 0x3f),
                    _ => (r >> 8) as u8,
                };
                bytes.push(byte);
            }
            check_lossy(&bytes);
        }
    }

    #[test]
    fn etags_with_control_characters_are_not_sent_back() {
        assert_eq!(clean_etag(Some(b"\"ok\"".to_vec())), b"\"ok\"");
        assert_eq!(clean_etag(Some(b"a\r\nx: y".to_vec())), b"");
        assert_eq!(clean_etag(None), b"");
    }
}
