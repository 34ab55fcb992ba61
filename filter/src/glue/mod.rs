//! The proxy-wasm glue: translates host callbacks into calls of the pure
//! decision code and back. Thin on purpose; everything here is about the
//! host, nothing about routing policy.

mod abi;
mod guard;
mod heap;
mod hostio;
mod http;
mod logger;
mod mem;
mod metrics;
mod node;
mod root;
mod source;

/// A value of the module's one thread, in a plain `static`.
///
/// A wasm32 module built without the threads proposal runs on one thread,
/// so it needs none of `thread_local!`'s machinery (lazy registration,
/// destructor lists, access checks after teardown), which V8 would compile
/// in every sidecar for nothing.
pub struct Single<T>(pub T);

// SAFETY: the module is built for wasm32 without shared memory or threads:
// one thread ever touches its statics.
unsafe impl<T> Sync for Single<T> {}
