//! An in-process proxy-wasm host: runs a proxy-wasm module (ABI 0.2.1, built for
//! `wasm32-wasip1`) on wasmtime and answers its host calls the way Envoy does, so tests can
//! drive the real `.wasm` of the filter and look at what it did.
//!
//! ```no_run
//! use wasm_host::{HttpAnswer, Module, SharedData, Vm, VmOptions};
//! use serde_json::json;
//! # fn main() -> Result<(), wasm_host::HostError> {
//! let module = Module::load(test_tools::filter_wasm())?; // compile once
//! let store = SharedData::new();
//! let mut vm = Vm::new(&module, VmOptions {
//!     node_metadata: json!({"NAMESPACE": "default", "LABELS": {"app": "frontend"}}),
//!     shared: store.clone(),
//!     random_seed: 7,
//!     ..VmOptions::default()
//! })?;
//! assert!(vm.configure(br#"{"services": []}"#)?);
//! let r = vm.request(&[(":authority", "backend"), (":path", "/"), (":method", "GET")])?;
//! if let Some(call) = vm.pending_http_calls().first() {
//!     vm.answer_http_call(call.token, HttpAnswer::response(200, &[], b"ok"))?;
//! }
//! let r = vm.stream(&r)?;
//! println!("{:?} {:?} {}", r.action, r.header("x-canary-upstream"), r.cleared_route_cache);
//! vm.respond(&r, &[(":status", "200")])?;
//! # Ok(())
//! # }
//! ```
//!
//! What the host does, call by call:
//! - `proxy_log`, `proxy_get_log_level`: lines kept in [`Vm::logs`], below
//!   [`VmOptions::log_level`] dropped. WASI `fd_write` to stdout/stderr is logged at info/error
//!   per line.
//! - `proxy_get_current_time_nanoseconds`, WASI `clock_time_get`: the manual [`Clock`].
//!   `proxy_set_tick_period_milliseconds`: ticks fire in [`Vm::advance`]; [`Vm::tick`] fires one.
//! - `proxy_get_buffer_bytes`: plugin configuration (only during `on_configure`), VM
//!   configuration, HTTP-call response body (only during `on_http_call_response`); other
//!   buffers are empty.
//! - Header maps: request headers of the current stream, response headers once the response
//!   started, HTTP-call response headers/trailers while answering (no trailer map when the
//!   answer has no trailers, as in Envoy); Envoy's statuses
//!   (BadArgument for a map that does not exist now, NotFound for a missing key), keys
//!   lowercased, replace = remove all + add.
//! - `proxy_get_property`: [`Vm::set_property`] values, `plugin_name`/`plugin_root_id`/
//!   `plugin_vm_id`, the node metadata under `xds.node.metadata` and/or `node.metadata`
//!   ([`NodeMetadataPaths`]), `node.id`, `node.cluster`; serialized like Envoy (strings as
//!   bytes, maps as pairs). `proxy_set_property` stores per stream.
//! - Shared data with Envoy's CAS rules ([`SharedData`]).
//! - `proxy_http_call`: recorded ([`Vm::pending_http_calls`]), answered by the test
//!   ([`Vm::answer_http_call`]) or timed out by [`Vm::advance`]; tokens 4, 8, 12...
//! - `proxy_call_foreign_function`: `clear_route_cache` is recorded per stream; any other name
//!   is NotFound.
//! - Metrics with Envoy's ids and rules ([`Stats`]).
//! - `proxy_send_local_response`, `proxy_continue_stream`, `proxy_close_stream`,
//!   `proxy_set_effective_context`, `proxy_done`.
//! - WASI: `random_get` (seeded), `environ_*` ([`VmOptions::env`]), `args_*` (none),
//!   `fd_fdstat_get` for stdio, `fd_prestat_*` (no preopens), `sched_yield`, `poll_oneoff`;
//!   `proc_exit` is an error.
//!
//! Any other import the module has fails loudly when called: the running export returns
//! [`HostError::Trap`] naming it ([`Module::unimplemented_imports`] lists them). A trap kills
//! the VM, like Envoy marks a failed VM. Any proxy-wasm host call can be made to fail with
//! [`Vm::fail_host_call`].
//!
//! Not modelled: request/response bodies and trailers (streams are headers-only,
//! `end_of_stream` is true), gRPC calls, shared queues, TCP streams, the protobuf-serialized
//! `node` message, the route-cache clearing some Envoy versions do on their own when request
//! headers change ([`RequestOutcome::cleared_route_cache`] counts explicit `clear_route_cache`
//! calls only), and a bound on guest run time (a guest that loops forever hangs the test).

#![warn(missing_docs)]

mod abi;
mod cache;
mod clock;
mod error;
mod maps;
mod memory;
mod metrics;
mod properties;
mod random;
mod shared;
mod state;
mod types;
mod vm;
mod wasi;

pub use clock::Clock;
pub use error::HostError;
pub use maps::HeaderMap;
pub use metrics::{MetricKind, Stats};
pub use properties::NodeMetadataPaths;
pub use shared::SharedData;
pub use types::{Action, ForeignCall, HttpAnswer, HttpCall, LocalReply, LogLevel, Status};
pub use vm::{Module, RequestOutcome, ResponseOutcome, Vm, VmOptions};
