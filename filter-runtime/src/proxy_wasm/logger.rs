//! A `log` backend over `proxy_log` that ignores host errors (the SDK's
//! logger unwraps them, which would abort the VM).

use alloc::string::ToString;

use super::hostcalls;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

/// proxy-wasm log levels.
pub const TRACE: u32 = 0;
/// Debug.
pub const DEBUG: u32 = 1;
/// Info.
pub const INFO: u32 = 2;
/// Warn.
pub const WARN: u32 = 3;
/// Error.
pub const ERROR: u32 = 4;
/// Critical: what a panic handler reports.
pub const CRITICAL: u32 = 5;

/// Installs the backend, at `info` until [`follow_host_level`].
#[inline]
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Follows Envoy's own level for the wasm component, so `--component-log-level
/// wasm:debug` shows debug lines and nothing is formatted needlessly otherwise.
/// (Not callable from `_initialize`, where Envoy restricts host calls.)
#[inline]
pub fn follow_host_level() {
    let level = match hostcalls::log_level() {
        Ok(TRACE) => log::LevelFilter::Trace,
        Ok(DEBUG) => log::LevelFilter::Debug,
        Ok(INFO) | Err(_) => log::LevelFilter::Info,
        Ok(WARN) => log::LevelFilter::Warn,
        Ok(_) => log::LevelFilter::Error,
    };
    log::set_max_level(level);
}

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => TRACE,
            log::Level::Debug => DEBUG,
            log::Level::Info => INFO,
            log::Level::Warn => WARN,
            log::Level::Error => ERROR,
        };
        let _ = hostcalls::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}
