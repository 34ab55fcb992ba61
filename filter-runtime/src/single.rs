//! [`Single`]: a value of the module's one thread, in a plain `static`.

/// A value of the module's one thread, in a plain `static`.
///
/// A wasm32 module built without the threads proposal runs on one thread,
/// so it needs none of `thread_local!`'s machinery (lazy registration,
/// destructor lists, access checks after teardown), which V8 would compile
/// in every sidecar for nothing.
pub struct Single<T>(pub T);

// SAFETY: this type only exists for wasm32 without the atomics feature
// (lib.rs), where the module has no shared memory and no threads: one
// thread ever touches its statics.
unsafe impl<T> Sync for Single<T> {}
