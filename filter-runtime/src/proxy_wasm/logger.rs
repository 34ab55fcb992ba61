//! The module's logger over `proxy_log`, which ignores host errors (the
//! SDK's logger unwraps them, which would abort the VM).
//!
//! A level threshold that follows the host's, and macros ([`error!`],
//! [`warn!`], [`info!`], [`debug!`], [`log!`]) that test it before they
//! evaluate their arguments, then make one call of an out-of-line writer.
//! Not the `log` crate: its call sites each carry a record (target, module
//! path, file and line, which nothing here reads) and it brings a dispatch
//! of its own.

use alloc::string::ToString;
use core::sync::atomic::{AtomicU32, Ordering};

use super::hostcalls;

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

/// The lowest level written.
static THRESHOLD: AtomicU32 = AtomicU32::new(INFO);

/// Writes from `info` on, until [`follow_host_level`].
#[inline]
pub fn init() {
    THRESHOLD.store(INFO, Ordering::Relaxed);
}

/// Follows Envoy's own level for the wasm component, so `--component-log-level
/// wasm:debug` shows debug lines and nothing is formatted needlessly otherwise.
/// (Not callable from `_initialize`, where Envoy restricts host calls.)
/// Above `error` (`critical`), errors are still written.
#[inline]
pub fn follow_host_level() {
    let level = match hostcalls::log_level() {
        Ok(level) => level.min(ERROR),
        Err(_) => INFO,
    };
    THRESHOLD.store(level, Ordering::Relaxed);
}

/// Whether a line at `level` is written.
#[inline]
pub fn enabled(level: u32) -> bool {
    level >= THRESHOLD.load(Ordering::Relaxed)
}

/// Formats and writes one line (the macros call it once [`enabled`] said yes).
#[inline(never)]
pub fn write(level: u32, args: core::fmt::Arguments<'_>) {
    let _ = hostcalls::log(level, &args.to_string());
}

/// Writes a line at a level given as a value: `log!(level, "format", args...)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:expr, $($arg:tt)+) => {{
        let level: u32 = $level;
        if $crate::proxy_wasm::logger::enabled(level) {
            $crate::proxy_wasm::logger::write(level, ::core::format_args!($($arg)+));
        }
    }};
}

/// Writes a line at `error`.
#[doc(hidden)]
#[macro_export]
macro_rules! __error {
    ($($arg:tt)+) => { $crate::__log!($crate::proxy_wasm::logger::ERROR, $($arg)+) };
}

/// Writes a line at `warn`.
#[doc(hidden)]
#[macro_export]
macro_rules! __warn {
    ($($arg:tt)+) => { $crate::__log!($crate::proxy_wasm::logger::WARN, $($arg)+) };
}

/// Writes a line at `info`.
#[doc(hidden)]
#[macro_export]
macro_rules! __info {
    ($($arg:tt)+) => { $crate::__log!($crate::proxy_wasm::logger::INFO, $($arg)+) };
}

/// Writes a line at `debug`.
#[doc(hidden)]
#[macro_export]
macro_rules! __debug {
    ($($arg:tt)+) => { $crate::__log!($crate::proxy_wasm::logger::DEBUG, $($arg)+) };
}

pub use crate::{__debug as debug, __error as error, __info as info, __log as log, __warn as warn};
