//! Envoy's dynamic-module ABI: the part of it this module uses, declared
//! here from the ABI header of Envoy 1.40 (`abi.h`, ABI version `v0.2.0`),
//! and the module's event hooks. Every `unsafe` of the crate is in this
//! file; the rest of the crate sees [`Stream`] and [`ConfigHandle`], whose
//! methods are safe.
//!
//! No panic crosses the ABI: every hook runs its body under
//! `catch_unwind` (the `module` profile unwinds) and answers Envoy with a
//! harmless value if the body panicked. A panic is logged and counted in the
//! log; the request carries on as Envoy routes it.
//!
//! The version check: Envoy calls [`envoy_dynamic_module_on_program_init`]
//! and compares the string it returns with its own ABI version (1.40:
//! `v0.2.0`), logging `matched`, or only a warning when they differ. A
//! warning is not enough for this module: a callback whose signature
//! changed would be called with the wrong arguments. So before answering,
//! the module looks up, in the Envoy process, every callback it calls plus
//! the callbacks that appeared with `v0.2.0`; when one is missing the
//! Envoy is of another ABI, and the module logs which symbol is missing and
//! returns null, which makes Envoy refuse the module with
//! `Failed to initialize dynamic module` instead of crashing later. The
//! `.so` is also linked with immediate binding (`-z now`, Rust's default),
//! so a missing callback fails `dlopen` itself, naming the symbol.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::config::FilterConfig;
use crate::stream::StreamFilter;

/// The ABI version this module is built against: Envoy 1.40's.
pub const ABI_VERSION: &CStr = c"v0.2.0";

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

/// `envoy_dynamic_module_type_http_header_type`.
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;

/// `envoy_dynamic_module_type_attribute_id` values (the header's order).
const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
const ATTRIBUTE_DESTINATION_PORT: u32 = 27;

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_log_level`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
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
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The callbacks this module calls, and markers of ABI `v0.2.0` (callbacks
/// Envoy 1.40 added): all must be exported by the Envoy that loads it.
const REQUIRED: &[&CStr] = &[
    c"envoy_dynamic_module_callback_log",
    c"envoy_dynamic_module_callback_log_enabled",
    c"envoy_dynamic_module_callback_http_get_headers_size",
    c"envoy_dynamic_module_callback_http_get_headers",
    c"envoy_dynamic_module_callback_http_get_header",
    c"envoy_dynamic_module_callback_http_set_header",
    c"envoy_dynamic_module_callback_http_add_header",
    c"envoy_dynamic_module_callback_http_clear_route_cache",
    c"envoy_dynamic_module_callback_http_filter_get_attribute_string",
    c"envoy_dynamic_module_callback_http_filter_get_attribute_int",
    c"envoy_dynamic_module_callback_http_filter_config_define_counter",
    c"envoy_dynamic_module_callback_http_filter_config_define_gauge",
    c"envoy_dynamic_module_callback_http_filter_increment_counter",
    c"envoy_dynamic_module_callback_http_filter_config_increment_counter",
    c"envoy_dynamic_module_callback_http_filter_config_set_gauge",
    // New in v0.2.0 (Envoy 1.40): absent from v0.1.0 (Envoy 1.39).
    c"envoy_dynamic_module_callback_cluster_specifier_set_cluster_name",
    c"envoy_dynamic_module_callback_http_get_typed_metadata",
];

/// The first required callback this process does not export, if any.
fn missing_callback() -> Option<&'static CStr> {
    REQUIRED.iter().copied().find(|name| {
        // SAFETY: `dlsym` with RTLD_DEFAULT (a null handle on glibc) and a
        // NUL-terminated name only looks the symbol up; it reads nothing else.
        let found = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
        found.is_null()
    })
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

/// Envoy's configuration object (`DynamicModuleHttpFilterConfig*`), valid
/// from `on_http_filter_config_new` until the module's configuration is
/// destroyed; Envoy's stats behind it are thread-safe.
#[derive(Clone, Copy, Debug)]
pub struct ConfigHandle(*mut c_void);

// SAFETY: the handle is only passed back to Envoy's metric callbacks, which
// Envoy allows from any thread (its counters and gauges are atomic).
unsafe impl Send for ConfigHandle {}
// SAFETY: as above; the handle itself is never dereferenced by the module.
unsafe impl Sync for ConfigHandle {}

/// A metric defined on a [`ConfigHandle`].
#[derive(Clone, Copy, Debug)]
pub struct MetricId(usize);

impl ConfigHandle {
    /// Defines a counter; `None` if Envoy refuses (after configuration, or a bad name).
    pub fn define_counter(&self, name: &str) -> Option<MetricId> {
        let mut id = 0usize;
        // SAFETY: `self.0` is Envoy's live config object (see the type); the
        // name buffer is alive for the call and copied by Envoy; no labels.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (r == METRICS_SUCCESS).then_some(MetricId(id))
    }

    /// Defines a gauge; `None` if Envoy refuses.
    pub fn define_gauge(&self, name: &str) -> Option<MetricId> {
        let mut id = 0usize;
        // SAFETY: as in `define_counter`.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_gauge(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (r == METRICS_SUCCESS).then_some(MetricId(id))
    }

    /// Adds one to a counter of this configuration.
    pub fn bump(&self, id: Option<MetricId>) {
        if let Some(MetricId(id)) = id {
            // SAFETY: the id was defined on this live config object.
            unsafe {
                envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    self.0,
                    id,
                    std::ptr::null(),
                    0,
                    1,
                );
            }
        }
    }

    /// Sets a gauge of this configuration.
    pub fn set_gauge(&self, id: Option<MetricId>, value: u64) {
        if let Some(MetricId(id)) = id {
            // SAFETY: the id was defined on this live config object.
            unsafe {
                envoy_dynamic_module_callback_http_filter_config_set_gauge(
                    self.0,
                    id,
                    std::ptr::null(),
                    0,
                    value,
                );
            }
        }
    }
}

/// One HTTP stream, for the duration of one hook call.
pub struct Stream {
    ptr: *mut c_void,
}

/// A request or response header, borrowed from Envoy's header map.
pub type Header<'s> = (&'s [u8], &'s [u8]);

impl Stream {
    /// Every request header, in order (repeated names repeatedly); `None`
    /// if Envoy cannot list them. The slices live as long as the borrow of
    /// the stream: a header write needs `&mut self`, so none outlives one.
    pub fn request_headers(&self) -> Option<Vec<Header<'_>>> {
        // SAFETY: `self.ptr` is the stream Envoy passed to the running hook.
        let n = unsafe {
            envoy_dynamic_module_callback_http_get_headers_size(self.ptr, REQUEST_HEADERS)
        };
        let mut raw: Vec<EnvoyHeader> = Vec::with_capacity(n);
        // SAFETY: Envoy writes exactly `n` headers (the size it just
        // reported, unchanged within this hook) into the spare capacity.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(
                self.ptr,
                REQUEST_HEADERS,
                raw.as_mut_ptr(),
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: the `n` elements were initialised by the call above.
        unsafe { raw.set_len(n) };
        Some(
            raw.iter()
                .map(|h| {
                    // SAFETY: Envoy's header map owns these bytes and keeps
                    // them until the hook returns or a header is written;
                    // the returned borrow of `self` ends before either.
                    unsafe { (bytes(h.key_ptr, h.key_len), bytes(h.value_ptr, h.value_len)) }
                })
                .collect(),
        )
    }

    /// The first value of a response header.
    pub fn response_header(&self, name: &str) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            len: 0,
        };
        let mut count = 0usize;
        // SAFETY: live stream; the key buffer is alive for the call; `out`
        // and `count` are valid for writes.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                RESPONSE_HEADERS,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                &mut count,
            )
        };
        // SAFETY: Envoy's bytes, alive while the stream is borrowed (as above).
        (found && !out.ptr.is_null()).then(|| unsafe { bytes(out.ptr, out.len) })
    }

    fn write(&mut self, kind: u32, name: &str, value: Option<&[u8]>, add: bool) -> bool {
        let key = ModuleBuffer::of(name.as_bytes());
        // A null value removes the header (the ABI's convention).
        let value = value.map_or(
            ModuleBuffer {
                ptr: std::ptr::null(),
                len: 0,
            },
            ModuleBuffer::of,
        );
        // SAFETY: live stream; both buffers are alive for the call and
        // copied by Envoy.
        unsafe {
            if add {
                envoy_dynamic_module_callback_http_add_header(self.ptr, kind, key, value)
            } else {
                envoy_dynamic_module_callback_http_set_header(self.ptr, kind, key, value)
            }
        }
    }

    /// Sets a request header (replacing every value); false if Envoy refused.
    pub fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(REQUEST_HEADERS, name, Some(value), false)
    }

    /// Removes a request header.
    pub fn remove_request_header(&mut self, name: &str) -> bool {
        self.write(REQUEST_HEADERS, name, None, false)
    }

    /// Sets a response header (replacing every value).
    pub fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(RESPONSE_HEADERS, name, Some(value), false)
    }

    /// Adds a response header (other values of it stay).
    pub fn add_response_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(RESPONSE_HEADERS, name, Some(value), true)
    }

    /// Asks Envoy to select the route again (the request headers changed).
    pub fn clear_route_cache(&mut self) {
        // SAFETY: live stream.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    /// The client's address (`source.address`, `ip:port`).
    pub fn source_address(&self) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            len: 0,
        };
        // SAFETY: live stream; `out` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.ptr,
                ATTRIBUTE_SOURCE_ADDRESS,
                &mut out,
            )
        };
        // SAFETY: Envoy's bytes (the connection's address string), alive for the hook.
        (ok && !out.ptr.is_null()).then(|| unsafe { bytes(out.ptr, out.len) })
    }

    /// The port the request arrived on (`destination.port`).
    pub fn local_port(&self) -> Option<u16> {
        let mut out = 0u64;
        // SAFETY: live stream; `out` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_int(
                self.ptr,
                ATTRIBUTE_DESTINATION_PORT,
                &mut out,
            )
        };
        ok.then(|| u16::try_from(out).ok())
            .flatten()
            .filter(|p| *p > 0)
    }

    /// Adds one to a counter of the stream's configuration.
    pub fn bump(&mut self, id: Option<MetricId>) {
        if let Some(MetricId(id)) = id {
            // SAFETY: live stream, whose configuration defined `id`.
            unsafe {
                envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.ptr,
                    id,
                    std::ptr::null(),
                    0,
                    1,
                );
            }
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

// ---------------------------------------------------------------------------
// Event hooks: what Envoy calls. Each one only converts pointers and
// delegates to safe code under `shielded`.
// ---------------------------------------------------------------------------

/// Called once when Envoy loads the module: the ABI version, or null when
/// this Envoy lacks a callback the module needs (another ABI).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    shielded("on_program_init", std::ptr::null(), || {
        if let Some(name) = missing_callback() {
            let msg = format!(
                "canary-router: this Envoy does not export {}: it is not of dynamic-module ABI {} \
                 (Envoy 1.40), which this module is built for; refusing to load",
                name.to_string_lossy(),
                ABI_VERSION.to_string_lossy()
            );
            // Envoy's own log callback may be the missing one: stderr too.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{msg}");
            if !REQUIRED.iter().take(2).any(|n| *n == name) {
                log(Level::Error, &msg);
            }
            return std::ptr::null();
        }
        crate::logger::install();
        ABI_VERSION.as_ptr()
    })
}

/// A new filter configuration (listener load, or an ECDS update): the rule
/// JSON, parsed and compiled; null refuses it (Envoy keeps the last good one).
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    shielded("on_http_filter_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffers, alive for this call.
        let (name, bytes) = unsafe { (bytes(name.ptr, name.len), bytes(config.ptr, config.len)) };
        match FilterConfig::new(ConfigHandle(config_envoy), name, bytes) {
            Some(cfg) => Box::into_raw(Box::new(cfg)) as *const c_void,
            None => std::ptr::null(),
        }
    })
}

/// The configuration is gone (no stream uses it any more).
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    shielded("on_http_filter_config_destroy", (), || {
        if !config.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in config_new and
            // Envoy destroys each configuration once.
            drop(unsafe { Box::from_raw(config as *mut FilterConfig) });
        }
    })
}

/// Per-route configuration is not used: refused.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    shielded(
        "on_http_filter_per_route_config_new",
        std::ptr::null(),
        || {
            log(
            Level::Error,
            "canary-router: per-route configuration is not supported; configure the filter itself",
        );
            std::ptr::null()
        },
    )
}

/// Never called: no per-route configuration is ever created.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_config: *const c_void) {
}

/// A new stream.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    shielded("on_http_filter_new", std::ptr::null(), || {
        if config.is_null() {
            return std::ptr::null();
        }
        // SAFETY: a configuration made by config_new, alive while Envoy
        // creates streams from it.
        let config = unsafe { &*(config as *const FilterConfig) };
        Box::into_raw(Box::new(config.new_stream())) as *const c_void
    })
}

/// Borrows the module's stream filter.
///
/// # Safety
/// `filter` must be a pointer made by `on_http_filter_new` and not yet
/// destroyed; Envoy calls a stream's hooks one at a time, on its worker.
unsafe fn filter_mut<'a>(filter: *const c_void) -> Option<&'a mut StreamFilter> {
    // SAFETY: the caller's contract.
    unsafe { (filter as *mut StreamFilter).as_mut() }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    shielded("on_http_filter_request_headers", 0, || {
        // SAFETY: Envoy passes the stream's own filter pointer.
        if let Some(f) = unsafe { filter_mut(filter) } {
            f.on_request_headers(&mut Stream { ptr: filter_envoy });
        }
        0 // Continue
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    0 // Continue
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) -> u32 {
    0 // Continue
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    shielded("on_http_filter_response_headers", 0, || {
        // SAFETY: Envoy passes the stream's own filter pointer.
        if let Some(f) = unsafe { filter_mut(filter) } {
            f.on_response_headers(&mut Stream { ptr: filter_envoy });
        }
        0 // Continue
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    0 // Continue
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) -> u32 {
    0 // Continue
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) {
}

/// The stream is gone.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    shielded("on_http_filter_destroy", (), || {
        if !filter.is_null() {
            // SAFETY: made by `Box::into_raw` in filter_new; destroyed once.
            drop(unsafe { Box::from_raw(filter as *mut StreamFilter) });
        }
    })
}

/// Unused: the stream schedules nothing.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _event_id: u64,
) {
}

/// Unused: the stream makes no callout.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_chunks: usize,
) {
}

/// Unused: the stream's own callout streams (none are started).
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

/// Unused: the configuration schedules nothing on the main thread.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _event_id: u64,
) {
}

/// Unused: the configuration makes no callout.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_chunks: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

/// A local reply (Envoy's own error response): nothing to do; carry on.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    0 // Continue
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: *mut c_void,
    _filter: *const c_void,
) {
}
