//! The wasm floor of `bench/`: per request, one host call reads every
//! request header, one writes the cluster header, and Envoy's
//! `clear_route_cache` re-selects the route. No parsing, no rules, no stats:
//! what every Rust proxy-wasm routing filter pays before it decides anything.
//! Every tenth request goes to v2, so that Envoy's upstream side does the
//! same work as with a 90/10 split (two clusters, two connection pools) and
//! the comparison isolates the filter's own cost.
//! Built with the workspace's release profile, like canary-router.
//!
//! Its plugin configuration can take it apart, to show where the floor's
//! cost goes: `"empty"` makes no host call at all (the VM contexts of a
//! stream, nothing else); `"read-only"` reads the request headers and does
//! nothing with them; `"no-read"` writes the cluster header and clears
//! the route cache without reading the request headers. Anything else is
//! the whole floor.
#![cfg(target_arch = "wasm32")]
// The SDK declares the same import with its own enum types.
#![allow(clashing_extern_declarations)]

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};

/// The clusters requests are sent to: v2 for every tenth.
const V1: &[u8] = b"outbound|80|v1|backend.default.svc.cluster.local";
const V2: &[u8] = b"outbound|80|v2|backend.default.svc.cluster.local";

thread_local! {
    /// Requests seen by this VM.
    static SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[link(wasm_import_module = "env")]
extern "C" {
    #[link_name = "proxy_get_header_map_pairs"]
    fn header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root(Mode::Floor)));
}}

/// How much of the floor runs per request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// No host call.
    Empty,
    /// Read every header, nothing else.
    ReadOnly,
    /// Write the cluster header and clear the route cache.
    NoRead,
    /// Read every header, then as `NoRead`.
    Floor,
}

struct Root(Mode);
impl Context for Root {}
impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        self.0 = match self.get_plugin_configuration().as_deref() {
            Some(b"empty") => Mode::Empty,
            Some(b"read-only") => Mode::ReadOnly,
            Some(b"no-read") => Mode::NoRead,
            _ => Mode::Floor,
        };
        true
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor(self.0)))
    }
}

struct Floor(Mode);
impl Context for Floor {}
impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.0 == Mode::Empty {
            return Action::Continue;
        }
        if matches!(self.0, Mode::Floor | Mode::ReadOnly) {
            self.read_headers();
        }
        if self.0 == Mode::ReadOnly {
            return Action::Continue;
        }
        let _ = hostcalls::set_map_value_bytes(
            MapType::HttpRequestHeaders,
            "x-canary-upstream",
            Some(SEEN.with(|n| {
                n.set(n.get().wrapping_add(1));
                if n.get() % 10 == 0 {
                    V2
                } else {
                    V1
                }
            })),
        );
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
        Action::Continue
    }
}

impl Floor {
    /// One host call: every request header, in the host's serialized form.
    fn read_headers(&self) {
        let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
        // SAFETY: valid out-pointers; the host returns a buffer it allocated
        // through this module's allocator (proxy_on_memory_allocate), which
        // the Vec frees.
        unsafe {
            if header_map_pairs(0, &mut data, &mut size) == 0 && !data.is_null() {
                drop(Vec::from_raw_parts(data, size, size));
            }
        }
    }
}
