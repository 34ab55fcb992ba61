//! The proxy-wasm adapter: translates host callbacks into calls of the
//! pure decision code and back. Thin on purpose; everything here is about
//! the host, nothing about routing policy. The ABI itself (host calls,
//! exports, heap, logger, header maps) is `filter_runtime::proxy_wasm`'s;
//! what calls the host is built only for `wasm32`, the header maps as a
//! [`RequestView`](crate::RequestView) everywhere.

pub use filter_runtime::proxy_wasm::pairs;

mod headers;

#[cfg(target_arch = "wasm32")]
mod active;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod guard_host;
#[cfg(target_arch = "wasm32")]
mod host_buffer;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod node;
#[cfg(target_arch = "wasm32")]
mod poll_host;
#[cfg(target_arch = "wasm32")]
mod root;
#[cfg(target_arch = "wasm32")]
mod shared_data;
