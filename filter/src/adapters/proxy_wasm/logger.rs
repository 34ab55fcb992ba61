//! A `log` backend over `proxy_log` that ignores host errors (the SDK's
//! logger unwraps them, which would abort the VM), and the panic handler,
//! which reports the panic through the host before the VM aborts.

use alloc::{format, string::ToString};

use super::hostio;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

/// proxy-wasm log levels.
const TRACE: u32 = 0;
const DEBUG: u32 = 1;
const INFO: u32 = 2;
const WARN: u32 = 3;
const ERROR: u32 = 4;
const CRITICAL: u32 = 5;

pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// The module is `no_std`: a panic (a bug; the crate denies `unwrap`,
/// `expect` and `panic!`) is reported through the host, then the VM aborts
/// as `panic = "abort"` would.
#[cfg(not(test))]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = hostio::log(CRITICAL, &format!("canary-router: panic: {info}"));
    core::arch::wasm32::unreachable()
}

/// Follows Envoy's own level for the wasm component, so `--component-log-level
/// wasm:debug` shows debug lines and nothing is formatted needlessly otherwise.
/// (Not callable from `_initialize`, where Envoy restricts host calls.)
pub fn follow_host_level() {
    let level = match hostio::log_level() {
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
        let _ = hostio::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}
