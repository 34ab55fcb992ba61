//! The host calls of the proxy-wasm ABI 0.2.1 the filter makes, none of
//! which panics.
//!
//! The proxy-wasm SDK's `hostcalls` functions `panic!` on any status they do
//! not expect, and a panic aborts the VM — the sidecar's filter is then dead.
//! Every host call goes through here instead and returns `Err(status)`;
//! callers decide how to carry on.

// The SDK declares the same imports with its own enum types; ours use plain
// integers so an unexpected status from the host is a value, not UB.
#![allow(clashing_extern_declarations)]

use alloc::vec::Vec;
use core::ptr::{null, null_mut};

/// A non-Ok status returned by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    /// No such header, property or shared-data key.
    pub const NOT_FOUND: Status = Status(1);
    /// A shared-data write whose CAS token is no longer current.
    pub const CAS_MISMATCH: Status = Status(8);
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            7 => "Empty",
            8 => "CasMismatch",
            10 => "InternalFailure",
            12 => "Unimplemented",
            _ => "Unknown",
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// What a host call gives: its value, or the host's status.
pub type HostResult<T> = Result<T, Status>;

#[inline]
fn check(status: u32) -> HostResult<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Header maps.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Map {
    /// The request headers of the stream.
    Request = 0,
    /// The response headers of the stream.
    Response = 2,
    /// The headers of an HTTP callout's response.
    HttpCallResponse = 6,
}

/// Buffers.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    /// The body of an HTTP callout's response.
    HttpCallResponseBody = 4,
    /// The plugin's configuration (`on_configure`).
    PluginConfiguration = 7,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

/// Bytes the host wrote into memory it allocated through
/// `proxy_on_memory_allocate` (a `Vec<u8>` of exactly `len` capacity);
/// freed on drop.
pub struct HostBytes {
    ptr: *mut u8,
    len: usize,
}

impl HostBytes {
    fn empty() -> Self {
        HostBytes {
            ptr: null_mut(),
            len: 0,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the host wrote `len` bytes at `ptr`, in a block we own.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl Drop for HostBytes {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: allocated by proxy_on_memory_allocate as a Vec with capacity `len`.
            unsafe { drop(Vec::from_raw_parts(self.ptr, self.len, self.len)) }
        }
    }
}

/// Calls a host function that returns a host-allocated buffer.
#[inline]
fn returning_bytes(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> HostResult<HostBytes> {
    let mut out = HostBytes::empty();
    let status = call(&mut out.ptr, &mut out.len);
    check(status)?;
    Ok(out)
}

/// Writes `message` to the host's log at `level` (`logger`'s levels).
#[inline]
pub fn log(level: u32, message: &str) -> HostResult<()> {
    // SAFETY: pointer and length of a live &str.
    check(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

/// The host's log level for the module.
#[inline]
pub fn log_level() -> HostResult<u32> {
    let mut level = 0;
    // SAFETY: a valid out-pointer.
    check(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> HostResult<u64> {
    let mut ns = 0u64;
    // SAFETY: a valid out-pointer.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut ns) })?;
    Ok(ns / 1_000_000)
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, buf_len: usize) -> i32;
}

/// Fills `dest` with random bytes from the host (WASI's `random_get`, as
/// the `getrandom` crate asks it on `wasm32-wasip1`).
#[inline(never)]
pub fn random(dest: &mut [u8]) -> Result<(), RandomError> {
    if dest.is_empty() {
        return Ok(());
    }
    // SAFETY: pointer and length of a live, writable slice.
    match unsafe { random_get(dest.as_mut_ptr(), dest.len()) } {
        0 => Ok(()),
        code => Err(RandomError(code)),
    }
}

/// WASI's error code of a failed [`random`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomError(pub i32);

/// As the `getrandom` crate (0.4, without `std`) writes the same failure:
/// `OS Error: N` for a WASI errno (1 to 65535), else `unexpected situation`.
impl core::fmt::Display for RandomError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match u32::try_from(self.0) {
            Ok(errno @ 1..=65535) => write!(f, "OS Error: {errno}"),
            _ => f.write_str("unexpected situation"),
        }
    }
}

/// Asks for `on_tick` every `ms` milliseconds (0: never).
#[inline]
pub fn set_tick_period_ms(ms: u32) -> HostResult<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// A whole header map, serialized as [`super::pairs`] reads it.
#[inline]
pub fn header_pairs(map: Map) -> HostResult<HostBytes> {
    // SAFETY: out-pointers into a live HostBytes.
    returning_bytes(|d, s| unsafe { proxy_get_header_map_pairs(map as u32, d, s) })
}

/// The value of one header (its first, as Envoy answers).
#[inline]
pub fn header_value(map: Map, name: &str) -> HostResult<HostBytes> {
    // SAFETY: pointer and length of a live &str; out-pointers into a live HostBytes.
    returning_bytes(|d, s| unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), d, s)
    })
}

/// Sets a header to `value`, replacing the values it had.
#[inline]
pub fn replace_header(map: Map, name: &str, value: &[u8]) -> HostResult<()> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Adds a value to a header, keeping the values it has.
#[inline]
pub fn add_header(map: Map, name: &str, value: &[u8]) -> HostResult<()> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe {
        proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every value of a header.
#[inline]
pub fn remove_header(map: Map, name: &str) -> HostResult<()> {
    // SAFETY: pointer and length of a live &str.
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// Up to `max` bytes of a buffer from offset `start` (fewer at its end,
/// none past it: Envoy clamps both).
#[inline]
pub fn buffer(buffer: Buffer, start: usize, max: usize) -> HostResult<HostBytes> {
    // SAFETY: out-pointers into a live HostBytes.
    returning_bytes(|d, s| unsafe { proxy_get_buffer_bytes(buffer as u32, start, max, d, s) })
}

/// A property, by path segments.
#[inline]
pub fn property(path: &[&str]) -> HostResult<HostBytes> {
    let mut serialized = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            serialized.push(0);
        }
        serialized.extend_from_slice(part.as_bytes());
    }
    property_at(&serialized)
}

/// A property, by its path already serialized (segments separated by NUL,
/// e.g. `b"destination\0port"`): no allocation, for the request path.
#[inline]
pub fn property_at(serialized: &[u8]) -> HostResult<HostBytes> {
    // SAFETY: pointer and length of a live slice; out-pointers into a live HostBytes.
    returning_bytes(|d, s| unsafe {
        proxy_get_property(serialized.as_ptr(), serialized.len(), d, s)
    })
}

/// A shared-data value and its CAS token.
#[inline]
pub fn shared_data(key: &str) -> HostResult<(HostBytes, u32)> {
    let mut cas = 0;
    // SAFETY: pointer and length of a live &str; out-pointers into live locals.
    let bytes = returning_bytes(|d, s| unsafe {
        proxy_get_shared_data(key.as_ptr(), key.len(), d, s, &mut cas)
    })?;
    Ok((bytes, cas))
}

/// Writes shared data if its CAS token is still `cas` (0: unconditionally).
#[inline]
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> HostResult<()> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Calls a foreign function registered by the host (e.g. `clear_route_cache`).
#[inline]
pub fn call_foreign(name: &str, args: &[u8]) -> HostResult<HostBytes> {
    let args_ptr = if args.is_empty() {
        null()
    } else {
        args.as_ptr()
    };
    // SAFETY: pointers and lengths of live slices; out-pointers into a live HostBytes.
    returning_bytes(|d, s| unsafe {
        proxy_call_foreign_function(name.as_ptr(), name.len(), args_ptr, args.len(), d, s)
    })
}

/// Metric kinds.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum MetricKind {
    /// Only goes up.
    Counter = 0,
    /// Set to a value.
    Gauge = 1,
}

/// Defines a metric (or finds the one of that name): its id.
#[inline]
pub fn define_metric(kind: MetricKind, name: &str) -> HostResult<u32> {
    let mut id = 0;
    // SAFETY: pointer and length of a live &str; a valid out-pointer.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds `offset` to a counter or gauge.
#[inline]
pub fn increment_metric(id: u32, offset: i64) -> HostResult<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, offset) })
}

/// Sets a gauge to `value`.
#[inline]
pub fn record_metric(id: u32, value: u64) -> HostResult<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_record_metric(id, value) })
}

/// A header map in the ABI's encoding: the pair count, each pair's name
/// and value lengths (all u32 little-endian), then each name and value
/// followed by a NUL.
#[inline]
fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let text: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + 8 * pairs.len() + text);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (n, v) in pairs {
        out.extend_from_slice(&len(n.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (n, v) in pairs {
        for part in [n, v] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
    }
    out
}

/// Sends an HTTP request without a body to `cluster`; the answer comes to
/// the calling root context's `proxy_on_http_call_response` with the token.
#[inline]
pub fn http_call(cluster: &str, headers: &[(&str, &str)], timeout_ms: u32) -> HostResult<u32> {
    let headers = encode_pairs(headers);
    let trailers = encode_pairs(&[]);
    let mut token = 0;
    // SAFETY: pointers and lengths of live slices; a valid out-pointer.
    check(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            null(),
            0,
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}
