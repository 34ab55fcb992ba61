//! The clock the guest sees (`proxy_get_current_time_nanoseconds`, WASI `clock_time_get`).
//! It only moves when the test moves it, so tests are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A manual clock. Clones share the same time, so one clock can drive several VMs.
///
/// The default starts at 2025-01-01T00:00:00Z.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Nanoseconds since the Unix epoch.
    now: AtomicU64,
    /// `now` when the clock was made: the monotonic clock counts from there.
    start: u64,
}

/// 2025-01-01T00:00:00Z.
const DEFAULT_START_SECS: u64 = 1_735_689_600;

impl Default for Clock {
    fn default() -> Self {
        Clock::at(UNIX_EPOCH + Duration::from_secs(DEFAULT_START_SECS))
    }
}

impl Clock {
    /// A clock showing `time`.
    pub fn at(time: SystemTime) -> Self {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Clock {
            inner: Arc::new(Inner {
                now: AtomicU64::new(nanos),
                start: nanos,
            }),
        }
    }

    /// Current wall-clock time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos())
    }

    /// Moves the time forward. [`Vm::advance`](super::Vm::advance) also fires the ticks and
    /// HTTP-call timeouts that fall due; this does not.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.now.fetch_add(by, Ordering::Relaxed);
    }

    /// Nanoseconds since the Unix epoch.
    pub(crate) fn nanos(&self) -> u64 {
        self.inner.now.load(Ordering::Relaxed)
    }

    /// Nanoseconds since the clock was made (the WASI monotonic clock).
    pub(crate) fn monotonic_nanos(&self) -> u64 {
        self.nanos().saturating_sub(self.inner.start)
    }

    pub(crate) fn set_nanos(&self, nanos: u64) {
        self.inner.now.fetch_max(nanos, Ordering::Relaxed);
    }
}
