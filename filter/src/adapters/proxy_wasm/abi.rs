//! The module's side of the proxy-wasm ABI (0.2.1): the callbacks Envoy
//! calls, and the table of live contexts they are dispatched to.
//!
//! canary-router exports only the callbacks it implements. The host skips
//! a callback a module does not export (proxy-wasm-cpp-host answers as a
//! default would: continue, done), so no call into the VM is made for
//! bodies, trailers, the access log, `on_done`, gRPC or network filters.
//! Dispatch is static, to the two context types of the filter: [`Root`]
//! (one per plugin configuration and VM) and [`Filter`] (one per stream).
//! A callback for a context the table does not hold (the host never sends
//! one) is answered as the host's default, never with a panic.

use alloc::vec::Vec;

use core::cell::RefCell;
use core::hash::BuildHasherDefault;
use core::mem::MaybeUninit;
use hashbrown::HashMap;

use crate::domain::hosts::Fnv;

use super::http::{Action, Filter};
use super::root::Root;
use super::Single;

struct Contexts {
    /// Root contexts: one per plugin configuration, so a linear search.
    roots: Vec<(u32, Root)>,
    /// Stream contexts by id.
    streams: HashMap<u32, Filter, BuildHasherDefault<Fnv>>,
}

static CONTEXTS: Single<RefCell<Contexts>> = Single(RefCell::new(Contexts {
    roots: Vec::new(),
    streams: HashMap::with_hasher(BuildHasherDefault::new()),
}));

fn with_root<R>(id: u32, default: R, f: impl FnOnce(&mut Root) -> R) -> R {
    match CONTEXTS.0.try_borrow_mut() {
        Ok(mut c) => match c.roots.iter_mut().find(|(i, _)| *i == id) {
            Some((_, root)) => f(root),
            None => default,
        },
        Err(_) => default,
    }
}

fn with_stream<R>(id: u32, default: R, f: impl FnOnce(&mut Filter) -> R) -> R {
    match CONTEXTS.0.try_borrow_mut() {
        Ok(mut c) => match c.streams.get_mut(&id) {
            Some(filter) => f(filter),
            None => default,
        },
        Err(_) => default,
    }
}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// The reactor's entry point: runs static constructors, installs the logger.
#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: called once by the host, before any other export.
    unsafe {
        __wasm_call_ctors();
    }
    super::logger::init();
}

/// Tells the host which ABI the module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills and hands back (freed by `hostio::HostBytes`, as
/// a `Vec<u8>` whose capacity is `size`).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut block: Vec<MaybeUninit<u8>> = Vec::with_capacity(size);
    let ptr = block.as_mut_ptr().cast::<u8>();
    core::mem::forget(block);
    ptr
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    let Ok(mut c) = CONTEXTS.0.try_borrow_mut() else {
        return;
    };
    if parent_id == 0 {
        c.roots.retain(|(i, _)| *i != context_id);
        c.roots.push((context_id, Root::new(context_id)));
    } else {
        let active = c
            .roots
            .iter()
            .find(|(i, _)| *i == parent_id)
            .and_then(|(_, root)| root.active());
        c.streams.insert(context_id, Filter::new(active));
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(context_id: u32, vm_configuration_size: usize) -> bool {
    with_root(context_id, false, |r| r.on_vm_start(vm_configuration_size))
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, plugin_configuration_size: usize) -> bool {
    with_root(context_id, false, |r| {
        r.on_configure(plugin_configuration_size)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    with_root(context_id, (), Root::on_tick)
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    num_headers: usize,
    body_size: usize,
    _num_trailers: usize,
) {
    with_root(context_id, (), |r| {
        r.on_http_call_response(token, num_headers, body_size)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> Action {
    with_stream(context_id, Action::Continue, Filter::on_request_headers)
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> Action {
    with_stream(context_id, Action::Continue, Filter::on_response_headers)
}

/// The context is gone: forget it (a root's streams keep their `Active`).
#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    if let Ok(mut c) = CONTEXTS.0.try_borrow_mut() {
        if c.streams.remove(&context_id).is_none() {
            c.roots.retain(|(i, _)| *i != context_id);
        }
    }
}
