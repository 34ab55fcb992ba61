//! What the host keeps for one VM while the guest runs: the data every host call reads or
//! writes (the wasmtime `Store` data).

use super::clock::Clock;
use super::maps::HeaderMap;
use super::metrics::MetricIds;
use super::properties::Properties;
use super::random::Random;
use super::shared::SharedData;
use super::types::{Action, ForeignCall, HttpCall, LocalReply, LogLevel, Status};
use std::collections::{BTreeMap, HashMap, HashSet};
use wasmtime::{Memory, TypedFunc};

macro_rules! host_calls {
    ($($variant:ident => $module:literal $name:literal,)*) => {
        /// Every import the host implements.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum HostCall {
            $($variant,)*
        }

        impl HostCall {
            pub(crate) const ALL: &'static [HostCall] = &[$(HostCall::$variant,)*];

            pub(crate) fn module(self) -> &'static str {
                match self {
                    $(HostCall::$variant => $module,)*
                }
            }

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(HostCall::$variant => $name,)*
                }
            }
        }
    };
}

host_calls! {
    ProxyLog => "env" "proxy_log",
    ProxyGetLogLevel => "env" "proxy_get_log_level",
    ProxyGetCurrentTimeNanoseconds => "env" "proxy_get_current_time_nanoseconds",
    ProxySetTickPeriodMilliseconds => "env" "proxy_set_tick_period_milliseconds",
    ProxyGetBufferBytes => "env" "proxy_get_buffer_bytes",
    ProxyGetHeaderMapPairs => "env" "proxy_get_header_map_pairs",
    ProxySetHeaderMapPairs => "env" "proxy_set_header_map_pairs",
    ProxyGetHeaderMapValue => "env" "proxy_get_header_map_value",
    ProxyReplaceHeaderMapValue => "env" "proxy_replace_header_map_value",
    ProxyRemoveHeaderMapValue => "env" "proxy_remove_header_map_value",
    ProxyAddHeaderMapValue => "env" "proxy_add_header_map_value",
    ProxyGetProperty => "env" "proxy_get_property",
    ProxySetProperty => "env" "proxy_set_property",
    ProxyGetSharedData => "env" "proxy_get_shared_data",
    ProxySetSharedData => "env" "proxy_set_shared_data",
    ProxyContinueStream => "env" "proxy_continue_stream",
    ProxyCloseStream => "env" "proxy_close_stream",
    ProxySendLocalResponse => "env" "proxy_send_local_response",
    ProxyHttpCall => "env" "proxy_http_call",
    ProxySetEffectiveContext => "env" "proxy_set_effective_context",
    ProxyCallForeignFunction => "env" "proxy_call_foreign_function",
    ProxyDone => "env" "proxy_done",
    ProxyDefineMetric => "env" "proxy_define_metric",
    ProxyIncrementMetric => "env" "proxy_increment_metric",
    ProxyRecordMetric => "env" "proxy_record_metric",
    ProxyGetMetric => "env" "proxy_get_metric",
    ArgsGet => "wasi_snapshot_preview1" "args_get",
    ArgsSizesGet => "wasi_snapshot_preview1" "args_sizes_get",
    EnvironGet => "wasi_snapshot_preview1" "environ_get",
    EnvironSizesGet => "wasi_snapshot_preview1" "environ_sizes_get",
    ClockTimeGet => "wasi_snapshot_preview1" "clock_time_get",
    ClockResGet => "wasi_snapshot_preview1" "clock_res_get",
    RandomGet => "wasi_snapshot_preview1" "random_get",
    FdWrite => "wasi_snapshot_preview1" "fd_write",
    FdRead => "wasi_snapshot_preview1" "fd_read",
    FdClose => "wasi_snapshot_preview1" "fd_close",
    FdSeek => "wasi_snapshot_preview1" "fd_seek",
    FdFdstatGet => "wasi_snapshot_preview1" "fd_fdstat_get",
    FdPrestatGet => "wasi_snapshot_preview1" "fd_prestat_get",
    FdPrestatDirName => "wasi_snapshot_preview1" "fd_prestat_dir_name",
    ProcExit => "wasi_snapshot_preview1" "proc_exit",
    SchedYield => "wasi_snapshot_preview1" "sched_yield",
    PollOneoff => "wasi_snapshot_preview1" "poll_oneoff",
}

const CALLS: usize = HostCall::ALL.len();

/// An injected failure of one host call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Failure {
    pub status: Status,
    /// How many more calls fail; `None` for all of them.
    pub remaining: Option<u32>,
}

/// One HTTP stream (an HTTP context in the guest).
#[derive(Debug)]
pub(crate) struct Stream {
    pub request: HeaderMap,
    /// Present once the response started (Envoy has no response map before).
    pub response: Option<HeaderMap>,
    pub action: Action,
    pub route_cache_clears: u32,
    pub local_reply: Option<LocalReply>,
    /// A local reply sent and not yet run through `on_response_headers`.
    pub reply_pending: bool,
    pub resumed_request: bool,
    pub resumed_response: bool,
    pub reset: bool,
    /// `on_done`/`on_log`/`on_delete` ran (the guest no longer knows this context).
    pub closed: bool,
    /// Values the guest stored with `proxy_set_property` (Envoy's filter state).
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
}

impl Stream {
    pub(crate) fn new(request: HeaderMap) -> Self {
        Stream {
            request,
            response: None,
            action: Action::Continue,
            route_cache_clears: 0,
            local_reply: None,
            reply_pending: false,
            resumed_request: false,
            resumed_response: false,
            reset: false,
            closed: false,
            properties: HashMap::new(),
        }
    }
}

/// The response to an HTTP call, visible to the guest during `on_http_call_response`.
pub(crate) struct CallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `None` when the response had no trailers (Envoy then has no trailer map).
    pub trailers: Option<HeaderMap>,
}

/// A pending HTTP call and when it times out.
pub(crate) struct PendingCall {
    pub call: HttpCall,
    /// Clock nanoseconds at which Envoy would fail it, if it has a timeout.
    pub deadline: Option<u64>,
}

pub(crate) struct HostState {
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<u32, u32>>,
    pub root_id: u32,
    /// The context the current export was called for, or the one `proxy_set_effective_context`
    /// switched to.
    pub effective: u32,
    /// Plugin configuration is readable (Envoy only exposes it during `on_configure`).
    pub in_configure: bool,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub call_response: Option<CallResponse>,
    pub streams: HashMap<u32, Stream>,
    pub logs: Vec<(LogLevel, String)>,
    pub log_level: LogLevel,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub clock: Clock,
    pub random: Random,
    pub shared: SharedData,
    pub vm_id: String,
    pub metrics: MetricIds,
    pub properties: Properties,
    /// Tick period in milliseconds (0: none) and the clock nanoseconds of the next tick.
    pub tick_period_ms: u32,
    pub next_tick: u64,
    pub http_calls: BTreeMap<u32, PendingCall>,
    pub last_token: u32,
    pub clusters: Option<HashSet<String>>,
    pub failures: HashMap<HostCall, Failure>,
    pub calls: [u64; CALLS],
    pub foreign_calls: Vec<ForeignCall>,
    pub root_route_cache_clears: u32,
    /// The root context's on_done returned false: it may call proxy_done.
    pub root_done_pending: bool,
    pub done_called: bool,
    pub env: Vec<(String, String)>,
}

impl HostState {
    /// Counts the call and returns the status of an injected failure, if any.
    pub(crate) fn enter(&mut self, call: HostCall) -> Option<Status> {
        self.calls[call as usize] += 1;
        if self.failures.is_empty() {
            return None;
        }
        let failure = self.failures.get_mut(&call)?;
        let status = failure.status;
        match &mut failure.remaining {
            None => {}
            Some(0) => {
                self.failures.remove(&call);
                return None;
            }
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.failures.remove(&call);
                }
            }
        }
        Some(status)
    }

    pub(crate) fn calls_of(&self, call: HostCall) -> u64 {
        self.calls[call as usize]
    }

    /// The stream of the effective context, if it is one.
    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.effective).filter(|s| !s.closed)
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.effective).filter(|s| !s.closed)
    }

    /// The header map `map_type` as the effective context sees it (read access).
    /// `Err` is the status for a map type out of range.
    pub(crate) fn map(&self, map_type: u32) -> Result<Option<&HeaderMap>, Status> {
        Ok(match map_type {
            0 => self.stream().map(|s| &s.request),
            2 => self.stream().and_then(|s| s.response.as_ref()),
            // No trailers and no gRPC in this host.
            1 | 3 | 4 | 5 => None,
            6 => self.call_response.as_ref().map(|r| &r.headers),
            7 => self
                .call_response
                .as_ref()
                .and_then(|r| r.trailers.as_ref()),
            _ => return Err(Status::BadArgument),
        })
    }

    /// The header map `map_type` for writing; like Envoy, only request and response headers
    /// (and trailers, which this host does not have) are writable.
    pub(crate) fn map_mut(&mut self, map_type: u32) -> Result<Option<&mut HeaderMap>, Status> {
        Ok(match map_type {
            0 => self.stream_mut().map(|s| &mut s.request),
            2 => self.stream_mut().and_then(|s| s.response.as_mut()),
            1 | 3..=7 => None,
            _ => return Err(Status::BadArgument),
        })
    }

    /// Moves complete lines written to stdout/stderr into the log (Envoy logs them at info and
    /// error). With `all`, a trailing partial line too.
    pub(crate) fn flush_output(&mut self, all: bool) {
        for (stderr, level) in [(false, LogLevel::Info), (true, LogLevel::Error)] {
            let buf = if stderr {
                &mut self.stderr
            } else {
                &mut self.stdout
            };
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]).into_owned();
                if level >= self.log_level {
                    self.logs.push((level, text));
                }
            }
            if all && !buf.is_empty() {
                let text = String::from_utf8_lossy(buf).into_owned();
                buf.clear();
                if level >= self.log_level {
                    self.logs.push((level, text));
                }
            }
        }
    }
}
