//! The module's side of the proxy-wasm ABI (0.2.1): the callbacks Envoy
//! calls, and the table of live contexts they are dispatched to.
//!
//! A module exports only the callbacks it implements. The host skips a
//! callback a module does not export (proxy-wasm-cpp-host answers as a
//! default would: continue, done), so no call into the VM is made for
//! bodies, trailers, the access log, `on_done`, gRPC or network filters.
//! Dispatch is static, to the module's two context types: a
//! [`RootContext`] (one per plugin configuration and VM) and its
//! [`RootContext::Http`] (one per stream). [`proxy_wasm_exports!`] writes
//! the exported functions for them. A callback for a context the table does
//! not hold (the host never sends one), or one that arrives while another
//! is running (the host never nests them), is answered as the host's
//! default, never with a panic.

use alloc::vec::Vec;

use core::cell::RefCell;
use core::mem::MaybeUninit;
use hashbrown::HashMap;

use crate::fnv::FnvBuild;

/// What a stream callback tells the host.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on to the next filter.
    Continue = 0,
}

/// A root context: one per plugin configuration and VM.
pub trait RootContext: Sized {
    /// The context of one HTTP stream.
    type Http: HttpContext;

    /// The context `context_id` (`proxy_on_context_create` without a parent).
    fn create(context_id: u32) -> Self;
    /// A new stream's context; `root` is its parent, if the table holds it.
    fn create_http(root: Option<&Self>) -> Self::Http;
    /// `proxy_on_vm_start`: whether the VM may start.
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool;
    /// `proxy_on_configure`: whether the configuration is accepted.
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool;
    /// `proxy_on_tick`.
    fn on_tick(&mut self);
    /// `proxy_on_http_call_response`, for a callout this root made.
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize);
}

/// The context of one HTTP stream.
pub trait HttpContext {
    /// `proxy_on_request_headers`.
    fn on_request_headers(&mut self) -> Action;
    /// `proxy_on_response_headers`.
    fn on_response_headers(&mut self) -> Action;
}

/// The live contexts.
pub struct Contexts<R: RootContext> {
    /// Root contexts: one per plugin configuration, so a linear search.
    roots: Vec<(u32, R)>,
    /// Stream contexts by id.
    streams: HashMap<u32, R::Http, FnvBuild>,
}

impl<R: RootContext> Contexts<R> {
    /// No contexts.
    pub const fn new() -> Self {
        Contexts {
            roots: Vec::new(),
            streams: HashMap::with_hasher(FnvBuild::new()),
        }
    }
}

impl<R: RootContext> Default for Contexts<R> {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn with_root<R: RootContext, T>(
    contexts: &RefCell<Contexts<R>>,
    id: u32,
    default: T,
    f: impl FnOnce(&mut R) -> T,
) -> T {
    match contexts.try_borrow_mut() {
        Ok(mut c) => match c.roots.iter_mut().find(|(i, _)| *i == id) {
            Some((_, root)) => f(root),
            None => default,
        },
        Err(_) => default,
    }
}

#[inline]
fn with_stream<R: RootContext, T>(
    contexts: &RefCell<Contexts<R>>,
    id: u32,
    default: T,
    f: impl FnOnce(&mut R::Http) -> T,
) -> T {
    match contexts.try_borrow_mut() {
        Ok(mut c) => match c.streams.get_mut(&id) {
            Some(stream) => f(stream),
            None => default,
        },
        Err(_) => default,
    }
}

/// Memory the host fills and hands back (freed by
/// [`HostBytes`](super::hostcalls::HostBytes), as a `Vec<u8>` whose
/// capacity is `size`).
#[inline]
pub fn on_memory_allocate(size: usize) -> *mut u8 {
    let mut block: Vec<MaybeUninit<u8>> = Vec::with_capacity(size);
    let ptr = block.as_mut_ptr().cast::<u8>();
    core::mem::forget(block);
    ptr
}

/// A new root context (`parent_id` 0; one of the same id is replaced) or
/// stream context.
#[inline]
pub fn on_context_create<R: RootContext>(
    contexts: &RefCell<Contexts<R>>,
    context_id: u32,
    parent_id: u32,
) {
    let Ok(mut c) = contexts.try_borrow_mut() else {
        return;
    };
    if parent_id == 0 {
        c.roots.retain(|(i, _)| *i != context_id);
        c.roots.push((context_id, R::create(context_id)));
    } else {
        let root = c.roots.iter().find(|(i, _)| *i == parent_id);
        let stream = R::create_http(root.map(|(_, r)| r));
        c.streams.insert(context_id, stream);
    }
}

/// [`RootContext::on_vm_start`]; `false` for an unknown context.
#[inline]
pub fn on_vm_start<R: RootContext>(contexts: &RefCell<Contexts<R>>, id: u32, size: usize) -> bool {
    with_root(contexts, id, false, |r| r.on_vm_start(size))
}

/// [`RootContext::on_configure`]; `false` for an unknown context.
#[inline]
pub fn on_configure<R: RootContext>(contexts: &RefCell<Contexts<R>>, id: u32, size: usize) -> bool {
    with_root(contexts, id, false, |r| r.on_configure(size))
}

/// [`RootContext::on_tick`].
#[inline]
pub fn on_tick<R: RootContext>(contexts: &RefCell<Contexts<R>>, id: u32) {
    with_root(contexts, id, (), R::on_tick)
}

/// [`RootContext::on_http_call_response`].
#[inline]
pub fn on_http_call_response<R: RootContext>(
    contexts: &RefCell<Contexts<R>>,
    id: u32,
    token: u32,
    num_headers: usize,
    body_size: usize,
) {
    with_root(contexts, id, (), |r| {
        r.on_http_call_response(token, num_headers, body_size)
    })
}

/// [`HttpContext::on_request_headers`]; `Continue` for an unknown stream.
#[inline]
pub fn on_request_headers<R: RootContext>(contexts: &RefCell<Contexts<R>>, id: u32) -> Action {
    with_stream(
        contexts,
        id,
        Action::Continue,
        HttpContext::on_request_headers,
    )
}

/// [`HttpContext::on_response_headers`]; `Continue` for an unknown stream.
#[inline]
pub fn on_response_headers<R: RootContext>(contexts: &RefCell<Contexts<R>>, id: u32) -> Action {
    with_stream(
        contexts,
        id,
        Action::Continue,
        HttpContext::on_response_headers,
    )
}

/// The context is gone: forget it (a stream's context is dropped here; a
/// root's streams keep what they took from it).
#[inline]
pub fn on_delete<R: RootContext>(contexts: &RefCell<Contexts<R>>, id: u32) {
    if let Ok(mut c) = contexts.try_borrow_mut() {
        if c.streams.remove(&id).is_none() {
            c.roots.retain(|(i, _)| *i != id);
        }
    }
}

/// The module's start (`_initialize`, the WASI reactor's entry point): runs
/// static constructors and installs the [`logger`](super::logger).
#[cfg(target_arch = "wasm32")]
pub fn initialize() {
    #[cfg(target_os = "wasi")]
    {
        extern "C" {
            fn __wasm_call_ctors();
        }
        // SAFETY: called once by the host, before any other export.
        unsafe { __wasm_call_ctors() }
    }
    super::logger::init();
}

/// Exports the proxy-wasm callbacks (ABI 0.2.1) of a module whose root
/// context is `$root` (a [`RootContext`]), and no others: `_initialize`,
/// `proxy_abi_version_0_2_1`, `proxy_on_memory_allocate`,
/// `proxy_on_context_create`, `proxy_on_vm_start`, `proxy_on_configure`,
/// `proxy_on_tick`, `proxy_on_http_call_response`,
/// `proxy_on_request_headers`, `proxy_on_response_headers` and
/// `proxy_on_delete`. Invoke it once, in the crate that builds the module.
#[macro_export]
macro_rules! proxy_wasm_exports {
    ($root:ty) => {
        static CONTEXTS: $crate::Single<
            ::core::cell::RefCell<$crate::proxy_wasm::exports::Contexts<$root>>,
        > = $crate::Single(::core::cell::RefCell::new(
            $crate::proxy_wasm::exports::Contexts::new(),
        ));

        /// The reactor's entry point: static constructors, the logger.
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::proxy_wasm::exports::initialize()
        }

        /// Tells the host which ABI the module speaks.
        #[no_mangle]
        pub extern "C" fn proxy_abi_version_0_2_1() {}

        #[no_mangle]
        pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
            $crate::proxy_wasm::exports::on_memory_allocate(size)
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
            $crate::proxy_wasm::exports::on_context_create(&CONTEXTS.0, context_id, parent_id)
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_vm_start(context_id: u32, vm_configuration_size: usize) -> bool {
            $crate::proxy_wasm::exports::on_vm_start(&CONTEXTS.0, context_id, vm_configuration_size)
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_configure(
            context_id: u32,
            plugin_configuration_size: usize,
        ) -> bool {
            $crate::proxy_wasm::exports::on_configure(
                &CONTEXTS.0,
                context_id,
                plugin_configuration_size,
            )
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_tick(context_id: u32) {
            $crate::proxy_wasm::exports::on_tick(&CONTEXTS.0, context_id)
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_http_call_response(
            context_id: u32,
            token: u32,
            num_headers: usize,
            body_size: usize,
            _num_trailers: usize,
        ) {
            $crate::proxy_wasm::exports::on_http_call_response(
                &CONTEXTS.0,
                context_id,
                token,
                num_headers,
                body_size,
            )
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_request_headers(
            context_id: u32,
            _num_headers: usize,
            _end_of_stream: bool,
        ) -> $crate::proxy_wasm::exports::Action {
            $crate::proxy_wasm::exports::on_request_headers(&CONTEXTS.0, context_id)
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_response_headers(
            context_id: u32,
            _num_headers: usize,
            _end_of_stream: bool,
        ) -> $crate::proxy_wasm::exports::Action {
            $crate::proxy_wasm::exports::on_response_headers(&CONTEXTS.0, context_id)
        }

        /// The context is gone: forget it.
        #[no_mangle]
        pub extern "C" fn proxy_on_delete(context_id: u32) {
            $crate::proxy_wasm::exports::on_delete(&CONTEXTS.0, context_id)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// A root that counts its callbacks; its streams share its counter.
    struct Root {
        id: u32,
        calls: Rc<RefCell<Vec<String>>>,
    }

    struct Stream {
        root: Option<u32>,
        calls: Rc<RefCell<Vec<String>>>,
    }

    thread_local! {
        static LOG: Rc<RefCell<Vec<String>>> = Rc::default();
    }

    fn note(calls: &Rc<RefCell<Vec<String>>>, what: String) {
        calls.borrow_mut().push(what);
    }

    impl RootContext for Root {
        type Http = Stream;
        fn create(id: u32) -> Self {
            let calls = LOG.with(Rc::clone);
            note(&calls, format!("create {id}"));
            Root { id, calls }
        }
        fn create_http(root: Option<&Self>) -> Stream {
            Stream {
                root: root.map(|r| r.id),
                calls: LOG.with(Rc::clone),
            }
        }
        fn on_vm_start(&mut self, size: usize) -> bool {
            note(&self.calls, format!("vm_start {} {size}", self.id));
            true
        }
        fn on_configure(&mut self, size: usize) -> bool {
            note(&self.calls, format!("configure {} {size}", self.id));
            size > 0
        }
        fn on_tick(&mut self) {
            note(&self.calls, format!("tick {}", self.id));
        }
        fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize) {
            note(
                &self.calls,
                format!("callout {} {token} {headers} {body}", self.id),
            );
        }
    }

    impl HttpContext for Stream {
        fn on_request_headers(&mut self) -> Action {
            note(&self.calls, format!("request of {:?}", self.root));
            Action::Continue
        }
        fn on_response_headers(&mut self) -> Action {
            note(&self.calls, format!("response of {:?}", self.root));
            Action::Continue
        }
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            note(&self.calls, format!("stream of {:?} dropped", self.root));
        }
    }

    fn log() -> Vec<String> {
        LOG.with(|l| l.borrow_mut().drain(..).collect())
    }

    /// Callbacks reach the context they name, as the SDK dispatches them;
    /// unknown contexts and a nested callback get the host's defaults.
    #[test]
    fn callbacks_reach_their_context_and_unknown_ones_get_defaults() {
        let contexts: RefCell<Contexts<Root>> = RefCell::new(Contexts::new());
        on_context_create(&contexts, 1, 0);
        assert!(on_vm_start(&contexts, 1, 7));
        assert!(on_configure(&contexts, 1, 42));
        assert!(
            !on_configure(&contexts, 1, 0),
            "the root's answer is the host's"
        );
        on_context_create(&contexts, 2, 1);
        on_context_create(&contexts, 3, 99);
        assert_eq!(on_request_headers(&contexts, 2), Action::Continue);
        on_response_headers(&contexts, 3);
        on_tick(&contexts, 1);
        on_http_call_response(&contexts, 1, 5, 2, 10);
        on_delete(&contexts, 2);
        assert_eq!(
            log(),
            [
                "create 1",
                "vm_start 1 7",
                "configure 1 42",
                "configure 1 0",
                "request of Some(1)",
                "response of None",
                "tick 1",
                "callout 1 5 2 10",
                "stream of Some(1) dropped",
            ]
        );

        // Unknown contexts: defaults, no calls.
        assert!(!on_vm_start(&contexts, 9, 0) && !on_configure(&contexts, 2, 1));
        assert_eq!(on_request_headers(&contexts, 2), Action::Continue);
        on_tick(&contexts, 3);
        on_delete(&contexts, 77);
        assert!(log().is_empty());

        // A callback while another runs (the table is borrowed): the default.
        let held = contexts.borrow_mut();
        assert!(!on_configure(&contexts, 1, 1));
        on_context_create(&contexts, 4, 0);
        drop(held);
        assert!(log().is_empty());

        // A root created again under its id replaces the old one; deleting
        // it leaves its streams.
        on_context_create(&contexts, 1, 0);
        on_delete(&contexts, 1);
        assert!(!on_configure(&contexts, 1, 1));
        on_request_headers(&contexts, 3);
        assert_eq!(log(), ["create 1", "request of None"]);
    }

    #[test]
    fn allocated_memory_is_a_vec_of_that_capacity() {
        let p = on_memory_allocate(100);
        assert!(!p.is_null());
        // SAFETY: as `HostBytes` frees it.
        unsafe { drop(Vec::from_raw_parts(p, 0, 100)) };
    }
}
