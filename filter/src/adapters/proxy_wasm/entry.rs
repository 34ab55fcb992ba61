//! What makes the crate a proxy-wasm module on wasm32: the callbacks it
//! exports (dispatched to [`Root`] and its streams' `Filter`), its heap and
//! its panic handler. The machinery is `filter_runtime`'s.

use alloc::format;

use filter_runtime::heap::{Heap, LinearMemory};
use filter_runtime::proxy_wasm::{hostcalls, logger};

use super::root::Root;

filter_runtime::proxy_wasm_exports!(Root);

/// The module's allocator (`filter_runtime::heap`): wasi-libc's is not
/// linked.
#[global_allocator]
static HEAP: Heap<LinearMemory> = Heap::new(LinearMemory);

/// The module is `no_std`: a panic (a bug; the crate denies `unwrap`,
/// `expect` and `panic!`) is reported through the host, then the VM aborts
/// as `panic = "abort"` would.
#[cfg(not(test))]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = hostcalls::log(logger::CRITICAL, &format!("canary-router: panic: {info}"));
    core::arch::wasm32::unreachable()
}
