//! The proxy-wasm adapter: translates host callbacks into calls of the
//! pure decision code and back. Thin on purpose; everything here is about
//! the host, nothing about routing policy. Its host calls are built only
//! for `wasm32`; the header-map view ([`pairs`]) everywhere.

pub mod pairs;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod guard_host;
#[cfg(target_arch = "wasm32")]
mod heap;
#[cfg(target_arch = "wasm32")]
mod hostio;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod logger;
#[cfg(target_arch = "wasm32")]
mod mem;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod node;
#[cfg(target_arch = "wasm32")]
mod poll_host;
#[cfg(target_arch = "wasm32")]
mod root;

/// A value of the module's one thread, in a plain `static`.
///
/// A wasm32 module built without the threads proposal runs on one thread,
/// so it needs none of `thread_local!`'s machinery (lazy registration,
/// destructor lists, access checks after teardown), which V8 would compile
/// in every sidecar for nothing.
#[cfg(target_arch = "wasm32")]
pub struct Single<T>(pub T);

// SAFETY: the module is built for wasm32 without shared memory or threads:
// one thread ever touches its statics.
#[cfg(target_arch = "wasm32")]
unsafe impl<T> Sync for Single<T> {}
