//! Safe handles on Envoy's objects: a configuration ([`ConfigHandle`]), a
//! main-thread scheduler of it ([`Scheduler`]) and a stream ([`Stream`]).

use std::ffi::c_void;

use super::headers::HeaderList;
use super::*;
use crate::metrics::Metric;
use crate::stream::Host;

/// Envoy's configuration object (`DynamicModuleHttpFilterConfig*`), valid
/// from `on_http_filter_config_new` until the module's configuration is
/// destroyed (the module's configuration owns the handle and nothing
/// outlives it); Envoy's stats behind it are thread-safe.
#[derive(Clone, Copy, Debug)]
pub struct ConfigHandle(pub(super) *mut c_void);

// SAFETY: the handle is passed back to Envoy's metric callbacks, which
// Envoy allows from any thread (its counters and gauges are atomic), and to
// the scheduler and callout callbacks only on the main thread (the hooks
// that run there hold it).
unsafe impl Send for ConfigHandle {}
// SAFETY: as above; the handle itself is never dereferenced by the module.
unsafe impl Sync for ConfigHandle {}

/// Why Envoy did not start an HTTP callout
/// (`envoy_dynamic_module_type_http_callout_init_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutError {
    /// `:path`, `:method` or `host` is missing.
    MissingRequiredHeaders,
    /// No such cluster in Envoy's configuration.
    ClusterNotFound,
    /// The id is in use (Envoy's own bookkeeping).
    DuplicateCalloutId,
    /// The request could not be made (e.g. no healthy host).
    CannotCreateRequest,
    /// A value this module does not know.
    Other(u32),
}

impl std::fmt::Display for CalloutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalloutError::MissingRequiredHeaders => f.write_str("missing :path, :method or host"),
            CalloutError::ClusterNotFound => f.write_str("no such cluster"),
            CalloutError::DuplicateCalloutId => f.write_str("duplicate callout id"),
            CalloutError::CannotCreateRequest => f.write_str("cannot create the request"),
            CalloutError::Other(n) => write!(f, "callout refused ({n})"),
        }
    }
}

impl ConfigHandle {
    fn define(&self, gauge: bool, name: &str, labels: &[&str]) -> Option<usize> {
        let names: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        let mut id = 0usize;
        // SAFETY: `self.0` is Envoy's live config object (see the type); the
        // name and label buffers are alive for the call and copied by Envoy.
        let r = unsafe {
            let define = if gauge {
                envoy_dynamic_module_callback_http_filter_config_define_gauge
            } else {
                envoy_dynamic_module_callback_http_filter_config_define_counter
            };
            define(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                names.as_ptr(),
                names.len(),
                &mut id,
            )
        };
        (r == METRICS_SUCCESS).then_some(id)
    }

    /// Defines a counter (with these label names); `None` if Envoy refuses
    /// (after the configuration was created, or a bad name).
    pub fn define_counter(&self, name: &str, labels: &[&str]) -> Option<usize> {
        self.define(false, name, labels)
    }

    /// Defines a gauge; `None` if Envoy refuses.
    pub fn define_gauge(&self, name: &str, labels: &[&str]) -> Option<usize> {
        self.define(true, name, labels)
    }

    /// Adds `n` to a counter of this configuration.
    pub fn add(&self, metric: Option<&Metric>, n: u64) {
        if let Some(m) = metric {
            let (labels, count) = label_buffers(&m.labels);
            // SAFETY: the id was defined on this live config object, with as
            // many label names as `m` has values; the buffers outlive the call.
            unsafe {
                envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    self.0,
                    m.id,
                    labels.as_ptr(),
                    count,
                    n,
                );
            }
        }
    }

    /// Adds one to a counter of this configuration.
    pub fn bump(&self, metric: Option<&Metric>) {
        self.add(metric, 1);
    }

    /// Sets a gauge of this configuration.
    pub fn set_gauge(&self, metric: Option<&Metric>, value: u64) {
        if let Some(m) = metric {
            let (labels, count) = label_buffers(&m.labels);
            // SAFETY: as in `add`.
            unsafe {
                envoy_dynamic_module_callback_http_filter_config_set_gauge(
                    self.0,
                    m.id,
                    labels.as_ptr(),
                    count,
                    value,
                );
            }
        }
    }

    /// A scheduler that runs events of this configuration on Envoy's main
    /// thread; `None` if Envoy gives none. Call on the main thread.
    pub fn scheduler(&self) -> Option<Scheduler> {
        // SAFETY: live config object; Envoy allocates the scheduler, which
        // `Scheduler` owns and deletes.
        let ptr = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!ptr.is_null()).then_some(Scheduler(ptr))
    }

    /// Starts an HTTP callout to `cluster` with these request headers (no
    /// body); its answer comes to the configuration's callout hook, on the
    /// main thread. Call on the main thread.
    pub fn http_callout(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u64, CalloutError> {
        let headers: Vec<ModuleHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHeader {
                key_ptr: k.as_ptr(),
                key_len: k.len(),
                value_ptr: v.as_ptr(),
                value_len: v.len(),
            })
            .collect();
        let mut id = 0u64;
        // SAFETY: live config object, on the main thread (the caller's
        // contract, as Envoy's); every buffer is alive for the call and
        // copied by Envoy into its request.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(&[]),
                timeout_ms,
            )
        };
        match r {
            CALLOUT_INIT_SUCCESS => Ok(id),
            1 => Err(CalloutError::MissingRequiredHeaders),
            2 => Err(CalloutError::ClusterNotFound),
            3 => Err(CalloutError::DuplicateCalloutId),
            4 => Err(CalloutError::CannotCreateRequest),
            n => Err(CalloutError::Other(n)),
        }
    }
}

/// Envoy's scheduler of one configuration's events onto the main thread
/// (`DynamicModuleHttpFilterConfigScheduler*`). Committing an event posts
/// it to the main thread's dispatcher, which Envoy allows from any thread;
/// the event runs only if the configuration still exists then.
#[derive(Debug)]
pub struct Scheduler(*mut c_void);

// SAFETY: `commit` posts to Envoy's dispatcher, which is thread-safe, and
// the scheduler holds only a weak reference to the configuration, so it
// may outlive it; it is deleted once, by `Drop`.
unsafe impl Send for Scheduler {}
// SAFETY: as above.
unsafe impl Sync for Scheduler {}

impl Scheduler {
    /// Runs `on_http_filter_config_scheduled(event_id)` on the main thread.
    pub fn commit(&self, event_id: u64) {
        // SAFETY: a live scheduler (deleted only by `Drop`).
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id)
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: made by `scheduler_new`, deleted once.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// One HTTP stream, for the duration of one hook call.
pub struct Stream {
    pub(super) ptr: *mut c_void,
}

impl Stream {
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
}

impl Host for Stream {
    /// Every request header, in order (repeated names repeatedly); `None`
    /// if Envoy cannot list them. The slices live as long as the borrow of
    /// the stream: a header write needs `&mut self`, so none outlives one.
    fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool {
        // SAFETY: `self.ptr` is the stream Envoy passed to the running hook.
        let n = unsafe {
            envoy_dynamic_module_callback_http_get_headers_size(self.ptr, REQUEST_HEADERS)
        };
        // SAFETY: Envoy writes exactly the `n` request headers it just
        // reported for this stream; its header map owns their bytes and keeps
        // them until the hook returns or a header is written; the list's
        // borrow of `self` ends before either.
        unsafe {
            list.fill_from(n, |raw| {
                envoy_dynamic_module_callback_http_get_headers(self.ptr, REQUEST_HEADERS, raw)
            })
        }
    }

    fn response_header(&self, name: &str) -> Option<&[u8]> {
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
        if !found || out.ptr.is_null() {
            return None;
        }
        // SAFETY: Envoy's bytes, alive for this hook; the borrow of `self`
        // ends before a header is written (that needs `&mut self`).
        Some(unsafe { bytes(out.ptr, out.len) })
    }

    fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(REQUEST_HEADERS, name, Some(value), false)
    }

    fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(REQUEST_HEADERS, name, Some(value), true)
    }

    fn remove_request_header(&mut self, name: &str) -> bool {
        self.write(REQUEST_HEADERS, name, None, false)
    }

    fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(RESPONSE_HEADERS, name, Some(value), false)
    }

    fn add_response_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.write(RESPONSE_HEADERS, name, Some(value), true)
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: live stream.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    fn source_address(&self) -> Option<&[u8]> {
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

    fn local_port(&self) -> Option<u16> {
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

    fn bump(&mut self, metric: Option<&Metric>) {
        if let Some(m) = metric {
            let (labels, count) = label_buffers(&m.labels);
            // SAFETY: live stream, whose configuration defined `m.id` with as
            // many label names as `m` has values.
            unsafe {
                envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.ptr,
                    m.id,
                    labels.as_ptr(),
                    count,
                    1,
                );
            }
        }
    }
}
