//! What makes the crate a proxy-wasm module on wasm32: the callbacks it
//! exports (dispatched to [`Root`] and its streams' `Filter`), its heap and
//! its panic handler. The machinery is `filter_runtime`'s.

use alloc::format;

#[cfg(not(any(feature = "alloc-talc", feature = "alloc-lol")))]
use filter_runtime::heap::{Heap, LinearMemory};
use filter_runtime::proxy_wasm::{hostcalls, logger};

use super::root::Root;

filter_runtime::proxy_wasm_exports!(Root);

/// The module's allocator (`filter_runtime::heap`): wasi-libc's is not
/// linked.
#[cfg(not(any(feature = "alloc-talc", feature = "alloc-lol")))]
#[global_allocator]
static HEAP: Heap<LinearMemory> = Heap::new(LinearMemory);

/// talc, in place of the own heap, for the allocator comparison only.
#[cfg(feature = "alloc-talc")]
#[global_allocator]
static HEAP: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// lol_alloc's free list, in place of the own heap, for the allocator
/// comparison only.
#[cfg(all(feature = "alloc-lol", not(feature = "alloc-talc")))]
#[global_allocator]
// SAFETY: the module runs on one thread (wasm32 without atomics).
static HEAP: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// The module is `no_std`: a panic (a bug; the crate denies `unwrap`,
/// `expect` and `panic!`) is reported through the host, then the VM aborts
/// as `panic = "abort"` would.
#[cfg(not(test))]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = hostcalls::log(logger::CRITICAL, &format!("canary-router: panic: {info}"));
    core::arch::wasm32::unreachable()
}
