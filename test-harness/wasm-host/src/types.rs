//! Small public types of the proxy-wasm ABI and of the test API.

use super::maps::HeaderMap;
use std::fmt;
use std::time::Duration;

/// Result codes of host calls (proxy-wasm ABI 0.2.1 `WasmResult`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The thing asked for does not exist.
    NotFound = 1,
    /// An argument is wrong (or the map/buffer asked for is not available now).
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// Input could not be parsed.
    ParseFailure = 4,
    /// A bad expression.
    BadExpression = 5,
    /// A pointer or length points outside the guest memory.
    InvalidMemoryAccess = 6,
    /// Nothing to return.
    Empty = 7,
    /// Compare-and-swap failed.
    CasMismatch = 8,
    /// Result mismatch.
    ResultMismatch = 9,
    /// The host failed.
    InternalFailure = 10,
    /// The connection is broken.
    BrokenConnection = 11,
    /// The host does not implement the call.
    Unimplemented = 12,
}

/// Log levels of `proxy_log` (same numbers as Envoy's spdlog levels).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Trace.
    Trace = 0,
    /// Debug.
    Debug = 1,
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical (the SDK logs panics at this level).
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_abi(level: u32) -> Option<Self> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        })
    }
}

/// What `proxy_on_request_headers` / `proxy_on_response_headers` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// 0: continue the filter chain.
    Continue,
    /// 1: stop iteration until the filter resumes the stream (`proxy_continue_stream`).
    Pause,
    /// Another value (other `FilterHeadersStatus` values, which Envoy maps to "stop all").
    Other(u32),
}

impl Action {
    pub(crate) fn from_abi(action: u32) -> Self {
        match action {
            0 => Action::Continue,
            1 => Action::Pause,
            other => Action::Other(other),
        }
    }
}

/// A local reply the filter sent (`proxy_send_local_response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code.
    pub status: u32,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The response headers sent to the client: `:status`, the headers the filter passed,
    /// `content-length`, `content-type: text/plain` when there is a body, then whatever the
    /// filter's own `on_response_headers` did to them (a local reply sent while decoding goes
    /// through the encoder filters, as in Envoy).
    pub headers: HeaderMap,
    /// The "details" string (Envoy's response code details).
    pub details: String,
    /// gRPC status, or -1 for none.
    pub grpc_status: i32,
}

impl LocalReply {
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP call the filter dispatched (`proxy_http_call`), waiting for the test to answer it
/// with [`Vm::answer_http_call`](super::Vm::answer_http_call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    /// Token the guest got (Envoy numbers them 4, 8, 12, ...).
    pub token: u32,
    /// The cluster it goes to.
    pub upstream: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: HeaderMap,
    /// Timeout, `None` for none (0 ms).
    pub timeout: Option<Duration>,
    /// The context that was effective when the call was made (an HTTP stream or the root).
    pub context_id: u32,
}

/// How the test answers an [`HttpCall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpAnswer {
    /// The upstream answered: `on_http_call_response` gets `:status` plus `headers`, the body
    /// and `trailers`.
    Response {
        /// HTTP status.
        status: u16,
        /// Response headers (besides `:status`).
        headers: Vec<(String, String)>,
        /// Response body.
        body: Vec<u8>,
        /// Response trailers.
        trailers: Vec<(String, String)>,
    },
    /// Reset, connection failure or timeout: `on_http_call_response` with 0 headers, 0 body
    /// bytes and 0 trailers, as Envoy does.
    Failure,
}

impl HttpAnswer {
    /// A response with `status`, `headers` and `body`, no trailers.
    pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Self {
        HttpAnswer::Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            trailers: Vec::new(),
        }
    }
}

/// A call of `proxy_call_foreign_function`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignCall {
    /// Function name.
    pub name: String,
    /// Argument bytes.
    pub args: Vec<u8>,
    /// The context that was effective.
    pub context_id: u32,
}
