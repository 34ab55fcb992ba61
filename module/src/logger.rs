//! The `log` records of the shared core (and of this crate) into Envoy's
//! log, under its `dynamic_modules` logger, prefixed `canary-router: `.

use crate::abi::{self, Level};

struct EnvoyLog;

static LOGGER: EnvoyLog = EnvoyLog;

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug | log::Level::Trace => Level::Debug,
        };
        abi::log(level, &format!("canary-router: {}", record.args()));
    }

    fn flush(&self) {}
}

/// Installs the logger, at the level Envoy logs `dynamic_modules` at when
/// the module loads (`--component-log-level dynamic_modules:debug` for debug).
pub fn install() {
    let _ = log::set_logger(&LOGGER);
    let level = if abi::log_enabled(Level::Debug) {
        log::LevelFilter::Debug
    } else if abi::log_enabled(Level::Info) {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    };
    log::set_max_level(level);
}
