//! The module's heap: talc over `memory.grow`.
//!
//! The `.wasm` is `no_std`, so wasi-libc's dlmalloc (about 11 KiB of code,
//! which V8 compiles in every sidecar) is not linked. talc is about 3.5 KiB
//! and keeps the heap as small as dlmalloc did: reloading the largest rule
//! set the limits allow takes 15.6 MiB of wasm memory (dlmalloc: 15.4; a
//! free list per power-of-two size class, 0.8 KiB of code, took 27.4 MiB;
//! bench/README.md, "Module size"). `wasm-host/tests/host_heap.rs` checks
//! that reloads reuse what they free.

// SAFETY: talc's wasm handle assumes no concurrent use, and the module runs
// on one thread (see `super::Single`): there is no shared memory.
#[global_allocator]
static HEAP: talc::TalckWasm = unsafe { talc::TalckWasm::new_global() };
