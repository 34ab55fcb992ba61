//! Envoy's dynamic-module ABI: the part of it this module uses, declared
//! here from the ABI header of Envoy 1.40 (`abi.h`, ABI version `v0.2.0`),
//! and the module's event hooks. Every `unsafe` of the crate is in this
//! module; the rest of the crate sees [`Stream`], [`ConfigHandle`] and
//! [`Scheduler`], whose methods are safe.
//!
//! - here: the ABI's types and the callbacks Envoy exports, declared;
//! - [`handles`]: safe handles on Envoy's objects (a stream, a
//!   configuration, a main-thread scheduler);
//! - [`headers`]: a request's headers listed in the hook's stack frame;
//! - [`hooks`]: the event hooks Envoy calls, each converting pointers and
//!   delegating to safe code.
//!
//! No panic crosses the ABI: every hook runs its body under
//! `catch_unwind` (the `module` profile unwinds) and answers Envoy with a
//! harmless value if the body panicked. A panic is logged; the request
//! carries on as Envoy routes it.
//!
//! The ABI version check is [`crate::version`]'s; the `.so` is also linked
//! with immediate binding (`-z now`, Rust's default), so a callback that an
//! Envoy does not export at all fails `dlopen` itself, naming the symbol.

#![allow(unsafe_code)]

mod handles;
mod headers;
mod hooks;
mod specifier;

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use handles::{CalloutError, ConfigHandle, Scheduler, Stream};
pub use headers::HeaderList;

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
struct EnvoyBuffer {
    ptr: *const u8,
    len: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const u8,
    len: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`: one header, in Envoy's memory.
#[repr(C)]
#[derive(Clone, Copy)]
struct EnvoyHeader {
    key_ptr: *const u8,
    key_len: usize,
    value_ptr: *const u8,
    value_len: usize,
}

/// `envoy_dynamic_module_type_module_http_header`: one header, in the module's memory.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleHeader {
    key_ptr: *const u8,
    key_len: usize,
    value_ptr: *const u8,
    value_len: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;

/// `envoy_dynamic_module_type_attribute_id` values (the header's order).
const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
const ATTRIBUTE_DESTINATION_PORT: u32 = 27;

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_http_callout_init_result_Success`.
const CALLOUT_INIT_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_http_callout_result_Success`.
const CALLOUT_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_log_level`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    /// `Debug`.
    Debug = 1,
    /// `Info`.
    Info = 2,
    /// `Warn`.
    Warn = 3,
    /// `Error`.
    Error = 4,
}

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(filter: *mut c_void, kind: u32)
        -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: *mut c_void,
        kind: u32,
        out: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: *mut c_void,
        kind: u32,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
        index: usize,
        count: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: *mut c_void,
        kind: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: *mut c_void,
        kind: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: *mut c_void,
        id: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: *mut c_void,
        id: u32,
        out: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_count: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_count: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: *mut c_void,
    ) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: *mut c_void,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHeader,
        header_count: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// Whether this process exports `name` (looked up with `dlsym`).
fn exported(name: &std::ffi::CStr) -> bool {
    symbol(name).is_some()
}

/// The address of `name` in this process, if it exports it.
fn symbol(name: &std::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: `dlsym` with RTLD_DEFAULT (a null handle on glibc) and a
    // NUL-terminated name only looks the symbol up; it reads nothing else.
    let found = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
    (!found.is_null()).then_some(found)
}

/// Logs through Envoy (its `dynamic_modules` logger).
pub fn log(level: Level, message: &str) {
    // SAFETY: the buffer points to `message`, alive for the call; Envoy
    // copies it.
    unsafe { envoy_dynamic_module_callback_log(level as u32, ModuleBuffer::of(message.as_bytes())) }
}

/// Whether Envoy logs `level` (checked once, at load).
pub fn log_enabled(level: Level) -> bool {
    // SAFETY: takes and returns plain values.
    unsafe { envoy_dynamic_module_callback_log_enabled(level as u32) }
}

/// Runs a hook's body; a panic is logged and `fallback` returned instead of
/// unwinding into Envoy.
fn shielded<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            // Logging itself must not unwind either.
            let _ = catch_unwind(|| {
                log(
                    Level::Error,
                    &format!("canary-router: a panic was caught in {hook}; the request continues as Envoy routes it"),
                )
            });
            fallback
        }
    }
}

/// # Safety
/// `ptr` must point to `len` readable bytes for the chosen lifetime (null
/// is accepted when `len` is 0).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// # Safety
/// `ptr` must point to `len` readable items for the chosen lifetime (null
/// is accepted when `len` is 0).
unsafe fn items<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Up to three label values as the ABI takes them (a stat of this module
/// has at most three labels; more are ignored).
fn label_buffers(labels: &[Box<str>]) -> ([ModuleBuffer; 3], usize) {
    let mut out = [ModuleBuffer::of(&[]); 3];
    let n = labels.len().min(3);
    for (slot, label) in out.iter_mut().zip(labels) {
        *slot = ModuleBuffer::of(label.as_bytes());
    }
    (out, n)
}
