//! The proxy-wasm ABI 0.2.1 imports (module `env`), implemented the way Envoy
//! (proxy-wasm-cpp-host + Envoy's `Context`) implements them, and the wiring of every import
//! the module needs: implemented calls, WASI calls (see [`super::wasi`]), and a loud failure
//! for anything else.

use super::maps::{parse_pairs, HeaderMap};
use super::memory::{parts, read, return_bytes, return_with, write_u32, write_u64, Ctx};
use super::properties::Lookup;
use super::state::{HostCall, HostState, PendingCall};
use super::types::{ForeignCall, HttpCall, LocalReply, LogLevel, Status};
use std::collections::HashSet;
use std::time::Duration;
use wasmtime::{ExternType, Linker, Module};

type R = wasmtime::Result<u32>;

/// Returns `Ok(status)` from the host call.
fn status(status: Status) -> R {
    Ok(status as u32)
}

/// Unwraps a `Result<T, Status>`, returning the status from the host call on error.
macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(status) => return Ok(status as u32),
        }
    };
}

/// Counts the call; returns the injected failure status, if any.
macro_rules! enter {
    ($c:expr, $call:ident) => {
        if let Some(status) = $c.data_mut().enter(HostCall::$call) {
            return Ok(status as u32);
        }
    };
}

const MAX_MAP_TYPE: u32 = 7;
const MAX_BUFFER_TYPE: u32 = 8;
const EMPTY: &[u8] = &[];

/// Builds the linker for `module`: every host call, plus a trapping stub for each import this
/// host does not implement. Returns the linker and the names of the stubbed imports.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    module: &Module,
) -> wasmtime::Result<(Linker<HostState>, Vec<String>)> {
    let mut linker = Linker::new(engine);
    add_proxy_calls(&mut linker)?;
    super::wasi::add_wasi_calls(&mut linker)?;
    let implemented: HashSet<(&str, &str)> = HostCall::ALL
        .iter()
        .map(|call| (call.module(), call.name()))
        .collect();
    let mut stubbed = Vec::new();
    for import in module.imports() {
        if implemented.contains(&(import.module(), import.name())) {
            continue;
        }
        let name = format!("{}.{}", import.module(), import.name());
        match import.ty() {
            ExternType::Func(ty) => {
                let message = format!(
                    "the module called `{name}`, which this test host does not implement \
                     (see wasm_host for what it does)"
                );
                linker.func_new(import.module(), import.name(), ty, move |_, _, _| {
                    Err(wasmtime::Error::msg(message.clone()))
                })?;
                stubbed.push(name);
            }
            other => {
                return Err(wasmtime::Error::msg(format!(
                    "the module imports `{name}` ({other:?}); this host only provides functions"
                )))
            }
        }
    }
    Ok((linker, stubbed))
}

fn add_proxy_calls(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let env = "env";
    linker.func_wrap(env, "proxy_log", proxy_log)?;
    linker.func_wrap(env, "proxy_get_log_level", proxy_get_log_level)?;
    linker.func_wrap(
        env,
        "proxy_get_current_time_nanoseconds",
        proxy_get_current_time_nanoseconds,
    )?;
    linker.func_wrap(
        env,
        "proxy_set_tick_period_milliseconds",
        proxy_set_tick_period_milliseconds,
    )?;
    linker.func_wrap(env, "proxy_get_buffer_bytes", proxy_get_buffer_bytes)?;
    linker.func_wrap(
        env,
        "proxy_get_header_map_pairs",
        proxy_get_header_map_pairs,
    )?;
    linker.func_wrap(
        env,
        "proxy_set_header_map_pairs",
        proxy_set_header_map_pairs,
    )?;
    linker.func_wrap(
        env,
        "proxy_get_header_map_value",
        proxy_get_header_map_value,
    )?;
    linker.func_wrap(
        env,
        "proxy_replace_header_map_value",
        proxy_replace_header_map_value,
    )?;
    linker.func_wrap(
        env,
        "proxy_remove_header_map_value",
        proxy_remove_header_map_value,
    )?;
    linker.func_wrap(
        env,
        "proxy_add_header_map_value",
        proxy_add_header_map_value,
    )?;
    linker.func_wrap(env, "proxy_get_property", proxy_get_property)?;
    linker.func_wrap(env, "proxy_set_property", proxy_set_property)?;
    linker.func_wrap(env, "proxy_get_shared_data", proxy_get_shared_data)?;
    linker.func_wrap(env, "proxy_set_shared_data", proxy_set_shared_data)?;
    linker.func_wrap(env, "proxy_continue_stream", proxy_continue_stream)?;
    linker.func_wrap(env, "proxy_close_stream", proxy_close_stream)?;
    linker.func_wrap(env, "proxy_send_local_response", proxy_send_local_response)?;
    linker.func_wrap(env, "proxy_http_call", proxy_http_call)?;
    linker.func_wrap(
        env,
        "proxy_set_effective_context",
        proxy_set_effective_context,
    )?;
    linker.func_wrap(
        env,
        "proxy_call_foreign_function",
        proxy_call_foreign_function,
    )?;
    linker.func_wrap(env, "proxy_done", proxy_done)?;
    linker.func_wrap(env, "proxy_define_metric", proxy_define_metric)?;
    linker.func_wrap(env, "proxy_increment_metric", proxy_increment_metric)?;
    linker.func_wrap(env, "proxy_record_metric", proxy_record_metric)?;
    linker.func_wrap(env, "proxy_get_metric", proxy_get_metric)?;
    Ok(())
}

// --- Logging, time, timers -------------------------------------------------------------------

fn proxy_log(mut c: Ctx<'_>, level: u32, ptr: u32, len: u32) -> R {
    enter!(c, ProxyLog);
    let Some(level) = LogLevel::from_abi(level) else {
        return status(Status::BadArgument);
    };
    let (mem, st) = parts(&mut c)?;
    let message = check!(read(mem, ptr, len));
    if level >= st.log_level {
        st.logs
            .push((level, String::from_utf8_lossy(message).into_owned()));
    }
    status(Status::Ok)
}

fn proxy_get_log_level(mut c: Ctx<'_>, ret: u32) -> R {
    enter!(c, ProxyGetLogLevel);
    let (mem, st) = parts(&mut c)?;
    check!(write_u32(mem, ret, st.log_level as u32));
    status(Status::Ok)
}

fn proxy_get_current_time_nanoseconds(mut c: Ctx<'_>, ret: u32) -> R {
    enter!(c, ProxyGetCurrentTimeNanoseconds);
    let (mem, st) = parts(&mut c)?;
    check!(write_u64(mem, ret, st.clock.nanos()));
    status(Status::Ok)
}

fn proxy_set_tick_period_milliseconds(mut c: Ctx<'_>, period: u32) -> R {
    enter!(c, ProxySetTickPeriodMilliseconds);
    let st = c.data_mut();
    st.tick_period_ms = period;
    st.next_tick = st.clock.nanos() + u64::from(period) * 1_000_000;
    status(Status::Ok)
}

// --- Buffers ---------------------------------------------------------------------------------

/// The buffer `buffer_type` as Envoy exposes it now; `None` is Envoy's null buffer (NotFound).
fn buffer(st: &HostState, buffer_type: u32) -> Option<&[u8]> {
    match buffer_type {
        // Plugin configuration: only while on_configure runs.
        7 => st.in_configure.then_some(st.plugin_config.as_slice()),
        6 => Some(st.vm_config.as_slice()),
        4 => st.call_response.as_ref().map(|r| r.body.as_slice()),
        // No bodies, TCP data, gRPC or call data in this host: empty buffers.
        _ => Some(EMPTY),
    }
}

fn proxy_get_buffer_bytes(
    mut c: Ctx<'_>,
    buffer_type: u32,
    start: u32,
    max_size: u32,
    ret_ptr: u32,
    ret_size: u32,
) -> R {
    enter!(c, ProxyGetBufferBytes);
    if buffer_type > MAX_BUFFER_TYPE {
        return status(Status::BadArgument);
    }
    let Some(len) = buffer(c.data(), buffer_type).map(<[u8]>::len) else {
        return status(Status::NotFound);
    };
    let start = start as usize;
    let mut length = max_size as usize;
    if start > len {
        length = 0;
    } else if start + length > len {
        length = len - start;
    }
    Ok(return_with(&mut c, length, ret_ptr, ret_size, |out, st| {
        if let Some(bytes) = buffer(st, buffer_type).and_then(|b| b.get(start..start + length)) {
            out.copy_from_slice(bytes);
        }
    })? as u32)
}

// --- Header maps -----------------------------------------------------------------------------

fn proxy_get_header_map_pairs(mut c: Ctx<'_>, map_type: u32, ret_ptr: u32, ret_size: u32) -> R {
    enter!(c, ProxyGetHeaderMapPairs);
    // Envoy answers an absent map with no pairs.
    let size = match check!(c.data().map(map_type)) {
        Some(map) if !map.is_empty() => map.pairs_size(),
        _ => 0,
    };
    Ok(return_with(&mut c, size, ret_ptr, ret_size, |out, st| {
        if let Ok(Some(map)) = st.map(map_type) {
            if map.pairs_size() == out.len() {
                map.write_pairs(out);
            }
        }
    })? as u32)
}

fn proxy_set_header_map_pairs(mut c: Ctx<'_>, map_type: u32, ptr: u32, size: u32) -> R {
    enter!(c, ProxySetHeaderMapPairs);
    if map_type > MAX_MAP_TYPE {
        return status(Status::BadArgument);
    }
    let (mem, st) = parts(&mut c)?;
    let data = check!(read(mem, ptr, size));
    let Some(map) = check!(st.map_mut(map_type)) else {
        return status(Status::BadArgument);
    };
    // Envoy would turn malformed pairs into an empty map; a test host says so instead.
    let Some(pairs) = parse_pairs(data) else {
        return status(Status::BadArgument);
    };
    map.clear();
    for (key, value) in pairs {
        map.add(key, value);
    }
    status(Status::Ok)
}

fn proxy_get_header_map_value(
    mut c: Ctx<'_>,
    map_type: u32,
    key_ptr: u32,
    key_size: u32,
    ret_ptr: u32,
    ret_size: u32,
) -> R {
    enter!(c, ProxyGetHeaderMapValue);
    if map_type > MAX_MAP_TYPE {
        return status(Status::BadArgument);
    }
    let value = {
        let (mem, st) = parts(&mut c)?;
        let key = check!(read(mem, key_ptr, key_size));
        // A map that does not exist now (response headers while decoding, a request map in
        // the root context) is BadArgument in Envoy; a missing key is NotFound.
        let Some(map) = check!(st.map(map_type)) else {
            return status(Status::BadArgument);
        };
        let Some(index) = map.find(key) else {
            return status(Status::NotFound);
        };
        map.value_at(index).to_vec()
    };
    Ok(return_bytes(&mut c, &value, ret_ptr, ret_size)? as u32)
}

/// Shared body of replace/remove/add: reads key (and value), finds the writable map.
fn modify_map(
    c: &mut Ctx<'_>,
    map_type: u32,
    key: (u32, u32),
    value: Option<(u32, u32)>,
    apply: impl FnOnce(&mut HeaderMap, &[u8], &[u8]),
) -> R {
    if map_type > MAX_MAP_TYPE {
        return status(Status::BadArgument);
    }
    let (mem, st) = parts(c)?;
    let key = check!(read(mem, key.0, key.1));
    let value = match value {
        Some((ptr, len)) => check!(read(mem, ptr, len)),
        None => EMPTY,
    };
    let Some(map) = check!(st.map_mut(map_type)) else {
        return status(Status::BadArgument);
    };
    apply(map, key, value);
    status(Status::Ok)
}

fn proxy_replace_header_map_value(
    mut c: Ctx<'_>,
    map_type: u32,
    key_ptr: u32,
    key_size: u32,
    value_ptr: u32,
    value_size: u32,
) -> R {
    enter!(c, ProxyReplaceHeaderMapValue);
    modify_map(
        &mut c,
        map_type,
        (key_ptr, key_size),
        Some((value_ptr, value_size)),
        |map, key, value| map.replace(key, value),
    )
}

fn proxy_remove_header_map_value(mut c: Ctx<'_>, map_type: u32, key_ptr: u32, key_size: u32) -> R {
    enter!(c, ProxyRemoveHeaderMapValue);
    modify_map(
        &mut c,
        map_type,
        (key_ptr, key_size),
        None,
        |map, key, _| map.remove(key),
    )
}

fn proxy_add_header_map_value(
    mut c: Ctx<'_>,
    map_type: u32,
    key_ptr: u32,
    key_size: u32,
    value_ptr: u32,
    value_size: u32,
) -> R {
    enter!(c, ProxyAddHeaderMapValue);
    modify_map(
        &mut c,
        map_type,
        (key_ptr, key_size),
        Some((value_ptr, value_size)),
        |map, key, value| map.add(key, value),
    )
}

// --- Properties ------------------------------------------------------------------------------

fn proxy_get_property(
    mut c: Ctx<'_>,
    path_ptr: u32,
    path_size: u32,
    ret_ptr: u32,
    ret_size: u32,
) -> R {
    enter!(c, ProxyGetProperty);
    let lookup = {
        let (mem, st) = parts(&mut c)?;
        let path = check!(read(mem, path_ptr, path_size));
        match st.stream().and_then(|s| s.properties.get(path)) {
            Some(value) => Lookup::Found(value.clone()),
            None => st.properties.get(path),
        }
    };
    match lookup {
        Lookup::Found(bytes) => Ok(return_bytes(&mut c, &bytes, ret_ptr, ret_size)? as u32),
        Lookup::Missing(missing) => status(missing),
        Lookup::Unsupported(why) => Err(wasmtime::Error::msg(format!("proxy_get_property: {why}"))),
    }
}

fn proxy_set_property(
    mut c: Ctx<'_>,
    path_ptr: u32,
    path_size: u32,
    value_ptr: u32,
    value_size: u32,
) -> R {
    enter!(c, ProxySetProperty);
    let (mem, st) = parts(&mut c)?;
    let path = check!(read(mem, path_ptr, path_size));
    let value = check!(read(mem, value_ptr, value_size));
    // Envoy stores it in the stream's filter state; without a stream there is none.
    let Some(stream) = st.stream_mut() else {
        return status(Status::NotFound);
    };
    stream.properties.insert(path.to_vec(), value.to_vec());
    status(Status::Ok)
}

// --- Shared data -----------------------------------------------------------------------------

fn proxy_get_shared_data(
    mut c: Ctx<'_>,
    key_ptr: u32,
    key_size: u32,
    ret_ptr: u32,
    ret_size: u32,
    cas_ptr: u32,
) -> R {
    enter!(c, ProxyGetSharedData);
    let (value, cas) = {
        let (mem, st) = parts(&mut c)?;
        let key = check!(read(mem, key_ptr, key_size));
        check!(st.shared.get_raw(&st.vm_id, key))
    };
    let returned = return_bytes(&mut c, &value, ret_ptr, ret_size)?;
    if returned != Status::Ok {
        return status(returned);
    }
    let (mem, _) = parts(&mut c)?;
    check!(write_u32(mem, cas_ptr, cas));
    status(Status::Ok)
}

fn proxy_set_shared_data(
    mut c: Ctx<'_>,
    key_ptr: u32,
    key_size: u32,
    value_ptr: u32,
    value_size: u32,
    cas: u32,
) -> R {
    enter!(c, ProxySetSharedData);
    let (mem, st) = parts(&mut c)?;
    let key = check!(read(mem, key_ptr, key_size));
    let value = check!(read(mem, value_ptr, value_size));
    check!(st.shared.set_raw(&st.vm_id, key, value, cas));
    status(Status::Ok)
}

// --- Stream control --------------------------------------------------------------------------

fn proxy_continue_stream(mut c: Ctx<'_>, stream_type: u32) -> R {
    enter!(c, ProxyContinueStream);
    if stream_type > 3 {
        return status(Status::BadArgument);
    }
    // Envoy answers Ok without a stream (the root context has no decoder callbacks).
    if let Some(stream) = c.data_mut().stream_mut() {
        match stream_type {
            0 => stream.resumed_request = true,
            1 => stream.resumed_response = true,
            // Downstream/upstream are TCP streams.
            _ => return status(Status::BadArgument),
        }
    }
    status(Status::Ok)
}

fn proxy_close_stream(mut c: Ctx<'_>, stream_type: u32) -> R {
    enter!(c, ProxyCloseStream);
    if stream_type > 3 {
        return status(Status::BadArgument);
    }
    if let Some(stream) = c.data_mut().stream_mut() {
        stream.reset = true;
    }
    status(Status::Ok)
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    mut c: Ctx<'_>,
    status_code: u32,
    details_ptr: u32,
    details_size: u32,
    body_ptr: u32,
    body_size: u32,
    headers_ptr: u32,
    headers_size: u32,
    grpc_status: i32,
) -> R {
    enter!(c, ProxySendLocalResponse);
    let (mem, st) = parts(&mut c)?;
    let details = check!(read(mem, details_ptr, details_size));
    let body = check!(read(mem, body_ptr, body_size));
    let headers = check!(read(mem, headers_ptr, headers_size));
    let Some(extra) = parse_pairs(headers) else {
        return status(Status::BadArgument);
    };
    let Some(stream) = st.stream_mut() else {
        // A root context has no stream to answer.
        return status(Status::BadArgument);
    };
    if stream.local_reply.is_some() {
        // Envoy sends one local reply per stream; later ones are dropped.
        return status(Status::Ok);
    }
    let mut reply_headers = HeaderMap::new();
    reply_headers.add(b":status", status_code.to_string().as_bytes());
    for (key, value) in extra {
        reply_headers.add(key, value);
    }
    if !body.is_empty() {
        if !reply_headers.contains("content-length") {
            reply_headers.add(b"content-length", body.len().to_string().as_bytes());
        }
        if !reply_headers.contains("content-type") {
            reply_headers.add(b"content-type", b"text/plain");
        }
    }
    stream.local_reply = Some(LocalReply {
        status: status_code,
        body: body.to_vec(),
        headers: reply_headers,
        details: String::from_utf8_lossy(details).into_owned(),
        grpc_status,
    });
    stream.reply_pending = true;
    status(Status::Ok)
}

// --- HTTP calls ------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn proxy_http_call(
    mut c: Ctx<'_>,
    upstream_ptr: u32,
    upstream_size: u32,
    headers_ptr: u32,
    headers_size: u32,
    body_ptr: u32,
    body_size: u32,
    trailers_ptr: u32,
    trailers_size: u32,
    timeout_ms: u32,
    token_ptr: u32,
) -> R {
    enter!(c, ProxyHttpCall);
    let (mem, st) = parts(&mut c)?;
    let upstream = check!(read(mem, upstream_ptr, upstream_size)).to_vec();
    let headers = check!(read(mem, headers_ptr, headers_size)).to_vec();
    let body = check!(read(mem, body_ptr, body_size)).to_vec();
    let trailers = check!(read(mem, trailers_ptr, trailers_size)).to_vec();
    // Envoy checks the token pointer before starting the call.
    check!(write_u32(mem, token_ptr, 0));
    let (Some(headers), Some(trailers)) = (parse_pairs(&headers), parse_pairs(&trailers)) else {
        return status(Status::BadArgument);
    };
    if (timeout_ms as i32) < 0 {
        return status(Status::BadArgument);
    }
    let upstream = String::from_utf8_lossy(&upstream).into_owned();
    if let Some(clusters) = &st.clusters {
        if !clusters.contains(&upstream) {
            return status(Status::BadArgument);
        }
    }
    let mut header_map = HeaderMap::new();
    for (key, value) in headers {
        header_map.add(key, value);
    }
    if !(header_map.contains(":path")
        && header_map.contains(":method")
        && header_map.contains(":authority"))
    {
        return status(Status::BadArgument);
    }
    let mut trailer_map = HeaderMap::new();
    for (key, value) in trailers {
        trailer_map.add(key, value);
    }
    st.last_token = st.last_token.wrapping_add(4);
    let token = st.last_token;
    let timeout = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
    let deadline = timeout.map(|_| st.clock.nanos() + u64::from(timeout_ms) * 1_000_000);
    st.http_calls.insert(
        token,
        PendingCall {
            call: HttpCall {
                token,
                upstream,
                headers: header_map,
                body,
                trailers: trailer_map,
                timeout,
                context_id: st.effective,
            },
            deadline,
        },
    );
    check!(write_u32(mem, token_ptr, token));
    status(Status::Ok)
}

// --- Contexts, foreign functions -------------------------------------------------------------

fn proxy_set_effective_context(mut c: Ctx<'_>, context_id: u32) -> R {
    enter!(c, ProxySetEffectiveContext);
    let st = c.data_mut();
    let known = context_id == st.root_id
        || st
            .streams
            .get(&context_id)
            .is_some_and(|stream| !stream.closed);
    if !known {
        return status(Status::BadArgument);
    }
    st.effective = context_id;
    status(Status::Ok)
}

fn proxy_call_foreign_function(
    mut c: Ctx<'_>,
    name_ptr: u32,
    name_size: u32,
    args_ptr: u32,
    args_size: u32,
    ret_ptr: u32,
    ret_size: u32,
) -> R {
    enter!(c, ProxyCallForeignFunction);
    let (mem, st) = parts(&mut c)?;
    let name = check!(read(mem, name_ptr, name_size)).to_vec();
    let args = check!(read(mem, args_ptr, args_size)).to_vec();
    let known = name == b"clear_route_cache";
    st.foreign_calls.push(ForeignCall {
        name: String::from_utf8_lossy(&name).into_owned(),
        args,
        context_id: st.effective,
    });
    if !known {
        return status(Status::NotFound);
    }
    match st.stream_mut() {
        Some(stream) => stream.route_cache_clears += 1,
        None => st.root_route_cache_clears += 1,
    }
    // No result: Envoy writes a null pointer and size 0 when asked for them.
    if ret_ptr != 0 {
        check!(write_u32(mem, ret_ptr, 0));
    }
    if ret_size != 0 {
        check!(write_u32(mem, ret_size, 0));
    }
    status(Status::Ok)
}

fn proxy_done(mut c: Ctx<'_>) -> R {
    enter!(c, ProxyDone);
    let st = c.data_mut();
    // Envoy only accepts it from a root context whose on_done returned false.
    if !st.root_done_pending {
        return status(Status::NotFound);
    }
    st.done_called = true;
    status(Status::Ok)
}

// --- Metrics ---------------------------------------------------------------------------------

fn proxy_define_metric(mut c: Ctx<'_>, kind: u32, name_ptr: u32, name_size: u32, ret_id: u32) -> R {
    enter!(c, ProxyDefineMetric);
    let (mem, st) = parts(&mut c)?;
    let name = check!(read(mem, name_ptr, name_size));
    let name = String::from_utf8_lossy(name);
    let id = check!(st.metrics.define(kind, &name));
    check!(write_u32(mem, ret_id, id));
    status(Status::Ok)
}

fn proxy_increment_metric(mut c: Ctx<'_>, id: u32, offset: i64) -> R {
    enter!(c, ProxyIncrementMetric);
    check!(c.data().metrics.increment(id, offset));
    status(Status::Ok)
}

fn proxy_record_metric(mut c: Ctx<'_>, id: u32, value: u64) -> R {
    enter!(c, ProxyRecordMetric);
    check!(c.data().metrics.record(id, value));
    status(Status::Ok)
}

fn proxy_get_metric(mut c: Ctx<'_>, id: u32, ret: u32) -> R {
    enter!(c, ProxyGetMetric);
    let (mem, st) = parts(&mut c)?;
    let value = check!(st.metrics.get(id));
    check!(write_u64(mem, ret, value));
    status(Status::Ok)
}
