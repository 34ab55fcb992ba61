//! The polled rule file (`ruleSource`) in the module: the wasm filter's
//! poller ([`canary_router::domain::poll`]: lease, ETags, backoff, last good rules,
//! one log line per failure), driven by what the dynamic-module ABI offers.
//!
//! The ABI gives an HTTP filter's configuration no timer, but a scheduler
//! that runs an event on Envoy's main thread and an HTTP callout from there.
//! So a [`Ticker`] thread of the module's own sleeps one tick period and
//! commits a tick event; on the main thread the tick adopts rules another
//! configuration published and, when the lease says so, starts the fetch
//! as a callout; its answer comes back on the main thread too. Shared data
//! is the module's process-wide [`Shared`] store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canary_router::domain::poll::{Counter, Level, PollHost};
use canary_router::domain::shared::{CasMismatch, SharedStore};

use crate::abi::ConfigHandle;
use crate::metrics::Global;
use crate::store::Shared;
use crate::stream::Header;

/// The answer to a fetch: Envoy's response headers and the body.
pub struct Answer<'a> {
    /// The response headers (`:status` among them).
    pub headers: Vec<Header<'a>>,
    /// The body, its chunks joined.
    pub body: Vec<u8>,
}

/// The poller's host: Envoy's callouts and stats of one configuration, the
/// module's shared store, and the answer being handled, if any.
pub struct Host<'a> {
    /// The configuration that fetches and counts.
    pub handle: &'a ConfigHandle,
    /// Its stats.
    pub global: &'a Global,
    /// The answer being handled.
    pub answer: Option<&'a Answer<'a>>,
}

impl SharedStore for Host<'_> {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Shared.get(key)
    }

    fn set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<Result<(), CasMismatch>, String> {
        Shared.set(key, value, cas)
    }
}

impl PollHost for Host<'_> {
    fn now_ms(&mut self) -> Option<u64> {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(since.as_millis()).ok()
    }

    fn fetch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, String> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let id = self
            .handle
            .http_callout(cluster, headers, ms)
            .map_err(|e| e.to_string())?;
        // Envoy numbers a configuration's callouts from 1.
        u32::try_from(id).map_err(|_| format!("callout id {id} out of range"))
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        let answer = self.answer?;
        answer
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.to_vec())
    }

    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, String> {
        let body = self.answer.map_or(&[][..], |a| &a.body);
        Ok(body
            .get(..size.min(body.len()))
            .unwrap_or_default()
            .to_vec())
    }

    fn count(&mut self, counter: Counter) {
        let g = self.global;
        self.handle.bump(match counter {
            Counter::ReloadSuccess => g.reload_success.as_ref(),
            Counter::ReloadFailure => g.reload_failure.as_ref(),
            Counter::NotModified => g.fetch_not_modified.as_ref(),
        });
    }

    fn log(&mut self, level: Level, message: &str) {
        match level {
            Level::Info => log::info!("{message}"),
            Level::Warn => log::warn!("{message}"),
        }
    }
}

/// A native thread that calls `commit` (which commits event [`TICK`]
/// through a scheduler onto Envoy's main thread) every period, from its
/// start until it is dropped. The period is read before each wait, so the
/// configuration can change it, and [`Ticker::poke`] makes a wait under
/// way start over with the new period (a ramp's next step may be due
/// sooner than the tick in progress); 0 pauses the ticks (checked every
/// second).
pub struct Ticker {
    state: Arc<(Mutex<TickerState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct TickerState {
    stopped: bool,
    poked: bool,
}

/// The event id of a tick.
pub const TICK: u64 = 1;

impl Ticker {
    /// Starts ticking at once, then every `period_ms`; `commit` is called
    /// on the ticker's own thread.
    pub fn start(
        period_ms: Arc<AtomicU64>,
        commit: impl Fn() + Send + 'static,
    ) -> std::io::Result<Ticker> {
        let state = Arc::new((Mutex::new(TickerState::default()), Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("canary-router-tick".into())
            .spawn(move || {
                let (lock, cv) = &*shared;
                let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
                let mut poked = false;
                while !st.stopped {
                    let ms = period_ms.load(Ordering::Relaxed);
                    if ms > 0 && !poked {
                        commit();
                    }
                    let wait = Duration::from_millis(if ms > 0 { ms } else { 1000 });
                    st = match cv.wait_timeout(st, wait) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    };
                    poked = std::mem::take(&mut st.poked);
                }
            })?;
        Ok(Ticker {
            state,
            thread: Some(thread),
        })
    }

    /// The period changed: the wait under way starts over with it (no
    /// tick is committed for the poke itself).
    pub fn poke(&self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).poked = true;
        cv.notify_all();
    }
}

impl Drop for Ticker {
    /// Stops the thread at once (it waits on the condition variable) and
    /// joins it: no tick is committed after this returns.
    fn drop(&mut self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    #[test]
    fn the_ticker_ticks_at_once_then_each_period_and_stops_when_dropped() {
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = Ticker::start(Arc::new(AtomicU64::new(50)), move || {
            t.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "no ticks");
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = Instant::now();
        drop(ticker);
        assert!(start.elapsed() < Duration::from_secs(1), "stops at once");
        let after = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(ticks.load(Ordering::SeqCst), after, "no tick after drop");
    }

    #[test]
    fn a_poke_makes_a_long_wait_start_over_with_the_new_period() {
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        let period = Arc::new(AtomicU64::new(60_000));
        let ticker = Ticker::start(period.clone(), move || {
            t.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < 1 {
            assert!(Instant::now() < deadline, "no first tick");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ticks.load(Ordering::SeqCst), 1, "the poke itself ticks not");
        period.store(50, Ordering::SeqCst);
        ticker.poke();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "still waiting out the minute");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
