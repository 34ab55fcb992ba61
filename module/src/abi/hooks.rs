//! The event hooks Envoy calls. Each one only converts pointers and
//! delegates to safe code under `shielded`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::*;
use crate::config::{Active, FilterConfig};
use crate::source::Answer;
use crate::stream::{route, NewStream, StreamFilter};

/// Called once when Envoy loads the module: the ABI version, or null when
/// this Envoy lacks a callback the module needs (another ABI).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    shielded("on_program_init", std::ptr::null(), || {
        if let Some(name) = crate::version::first_missing(exported) {
            let msg = crate::version::refusal(name);
            // Envoy's own log callback may be the missing one: stderr too.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{msg}");
            if crate::version::can_log(name) {
                log(Level::Error, &msg);
            }
            return std::ptr::null();
        }
        crate::logger::install();
        crate::version::ABI_VERSION.as_ptr()
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

/// Borrows the module's configuration.
///
/// # Safety
/// `config` must be a pointer made by `on_http_filter_config_new` and not
/// yet destroyed.
unsafe fn config_ref<'a>(config: *const c_void) -> Option<&'a FilterConfig> {
    // SAFETY: the caller's contract.
    unsafe { (config as *const FilterConfig).as_ref() }
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

/// An event the configuration's ticker committed, now on the main thread.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: *mut c_void,
    config: *const c_void,
    event_id: u64,
) {
    shielded("on_http_filter_config_scheduled", (), || {
        // SAFETY: Envoy runs the event only while the configuration lives
        // (its scheduler holds a weak reference), on the main thread.
        if let Some(cfg) = unsafe { config_ref(config) } {
            cfg.on_scheduled(event_id);
        }
    })
}

/// The answer to a callout the configuration made (the rule file's fetch).
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: *mut c_void,
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body: *const EnvoyBuffer,
    body_chunks: usize,
) {
    shielded("on_http_filter_config_http_callout_done", (), || {
        // SAFETY: as in `config_scheduled`; a pending callout keeps the
        // configuration alive.
        let Some(cfg) = (unsafe { config_ref(config) }) else {
            return;
        };
        let answer = (result == CALLOUT_SUCCESS).then(|| {
            // SAFETY: Envoy's arrays and the bytes they point to are valid
            // until this hook returns; `answer` is dropped before.
            let (headers, chunks) =
                unsafe { (items(headers, headers_size), items(body, body_chunks)) };
            Answer {
                headers: headers
                    .iter()
                    // SAFETY: as above.
                    .map(|h| unsafe {
                        (bytes(h.key_ptr, h.key_len), bytes(h.value_ptr, h.value_len))
                    })
                    .collect(),
                // SAFETY: as above.
                body: chunks
                    .iter()
                    .flat_map(|c| unsafe { bytes(c.ptr, c.len) })
                    .copied()
                    .collect(),
            }
        });
        cfg.on_callout_done(callout_id, answer.as_ref());
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

/// A new stream. Its pointer is a boxed [`StreamFilter`], or, tagged
/// with bit 0 (both are aligned to 8), the `Arc<Active>` of a stream whose
/// response has nothing to do ([`NewStream::RoutingOnly`]).
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    shielded("on_http_filter_new", std::ptr::null(), || {
        // SAFETY: a configuration made by config_new, alive while Envoy
        // creates streams from it.
        match unsafe { config_ref(config) }.map(FilterConfig::new_stream) {
            Some(NewStream::Filter(f)) => Box::into_raw(f) as *const c_void,
            Some(NewStream::RoutingOnly(a)) => {
                (Arc::into_raw(a) as *const c_void).map_addr(|p| p | ROUTING_ONLY)
            }
            None => std::ptr::null(),
        }
    })
}

/// The tag of a [`NewStream::RoutingOnly`] stream's pointer.
const ROUTING_ONLY: usize = 1;

/// The `Arc<Active>` a stream's pointer holds, untagged, if it is a
/// [`NewStream::RoutingOnly`] stream's; `None` for a boxed filter.
fn routing_only(filter: *const c_void) -> Option<*const Active> {
    (filter.addr() & ROUTING_ONLY != 0)
        .then(|| filter.map_addr(|p| p & !ROUTING_ONLY) as *const Active)
}

/// A stream's state, borrowed for one hook.
enum StreamRef<'a> {
    Filter(&'a mut StreamFilter),
    RoutingOnly(&'a Active),
}

/// Borrows the module's stream state.
///
/// # Safety
/// `filter` must be a pointer made by `on_http_filter_new` and not yet
/// destroyed; Envoy calls a stream's hooks one at a time, on its worker.
unsafe fn stream_ref<'a>(filter: *const c_void) -> Option<StreamRef<'a>> {
    if let Some(active) = routing_only(filter) {
        // SAFETY: made by `Arc::into_raw` in filter_new (the caller's
        // contract); the stream's reference keeps it alive until destroy.
        unsafe { active.as_ref() }.map(StreamRef::RoutingOnly)
    } else {
        // SAFETY: made by `Box::into_raw` in filter_new (the caller's
        // contract), used by one hook at a time.
        unsafe { (filter as *mut StreamFilter).as_mut() }.map(StreamRef::Filter)
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    shielded("on_http_filter_request_headers", 0, || {
        let mut stream = Stream { ptr: filter_envoy };
        // SAFETY: Envoy passes the stream's own filter pointer.
        match unsafe { stream_ref(filter) } {
            Some(StreamRef::Filter(f)) => f.on_request_headers(&mut stream),
            Some(StreamRef::RoutingOnly(active)) => {
                route(active, &mut stream);
            }
            None => {}
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
        // SAFETY: Envoy passes the stream's own filter pointer. A
        // routing-only stream's response has nothing to do.
        if let Some(StreamRef::Filter(f)) = unsafe { stream_ref(filter) } {
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
        if filter.is_null() {
            return;
        }
        if let Some(active) = routing_only(filter) {
            // SAFETY: made by `Arc::into_raw` in filter_new; destroyed once.
            drop(unsafe { Arc::from_raw(active) });
        } else {
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
