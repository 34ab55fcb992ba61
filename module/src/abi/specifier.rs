//! The cluster specifier's part of the ABI: its callbacks, its selection
//! context and its hooks.

use std::ffi::c_void;

use super::headers::HeaderList;
use super::*;
use crate::metrics::{Kind, Metric};
use crate::specifier::{SelectHost, SpecifierConfig};

type DefineFn =
    unsafe extern "C" fn(*mut c_void, ModuleBuffer, *const ModuleBuffer, usize, *mut usize) -> u32;
type UpdateFn = unsafe extern "C" fn(*mut c_void, usize, *const ModuleBuffer, usize, u64) -> u32;

/// The cluster specifier's callbacks, looked up in the Envoy process when
/// the first configuration is made instead of linked: linked, an Envoy of
/// the previous ABI (which has none of them) would fail `dlopen` on the
/// first, before [`crate::version`]'s check could say which ABI the module
/// needs. That check requires them all at load, so they are found here.
struct Callbacks {
    headers_size: unsafe extern "C" fn(*mut c_void) -> usize,
    headers: unsafe extern "C" fn(*mut c_void, *mut EnvoyHeader) -> bool,
    attribute_string: unsafe extern "C" fn(*mut c_void, u32, *mut EnvoyBuffer) -> bool,
    attribute_int: unsafe extern "C" fn(*mut c_void, u32, *mut u64) -> bool,
    set_cluster_name: unsafe extern "C" fn(*mut c_void, ModuleBuffer),
    define_counter: DefineFn,
    define_gauge: DefineFn,
    increment_counter: UpdateFn,
    set_gauge: UpdateFn,
}

/// Looks `name` up in the process as a function of type `F`.
///
/// # Safety
/// `F` must be the type of the function Envoy exports as `name`, as
/// declared by the ABI header of [`crate::version::ABI_VERSION`].
unsafe fn function<F: Copy>(name: &std::ffi::CStr) -> Option<F> {
    let p = symbol(name)?;
    debug_assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: a non-null address of the exported function `name`, whose
    // type the caller guarantees is `F` (a function pointer, pointer-sized).
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

impl Callbacks {
    fn find() -> Option<Self> {
        // SAFETY: each type is the ABI header's (v0.2.0) for that callback,
        // as the declarations of the HTTP filter's callbacks in `super` are.
        unsafe {
            Some(Callbacks {
                headers_size: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_get_request_headers_size",
                )?,
                headers: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_get_request_headers",
                )?,
                attribute_string: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_get_attribute_string",
                )?,
                attribute_int: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_get_attribute_int",
                )?,
                set_cluster_name: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_set_cluster_name",
                )?,
                define_counter: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_config_define_counter",
                )?,
                define_gauge: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_config_define_gauge",
                )?,
                increment_counter: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_config_increment_counter",
                )?,
                set_gauge: function(
                    c"envoy_dynamic_module_callback_cluster_specifier_config_set_gauge",
                )?,
            })
        }
    }
}

/// The callbacks, found once.
fn callbacks() -> Option<&'static Callbacks> {
    static FOUND: std::sync::OnceLock<Option<Callbacks>> = std::sync::OnceLock::new();
    FOUND.get_or_init(Callbacks::find).as_ref()
}

/// A cluster specifier's configuration and Envoy's object behind it.
struct Specifier {
    config: SpecifierConfig,
    envoy: *mut c_void,
    cb: &'static Callbacks,
}

/// One selection: Envoy's context, valid for the `select` hook only.
struct Select<'a> {
    ctx: *mut c_void,
    config_envoy: *mut c_void,
    cb: &'static Callbacks,
    _hook: std::marker::PhantomData<&'a ()>,
}

impl SelectHost for Select<'_> {
    fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool {
        // SAFETY: the context Envoy passed to the running hook.
        let n = unsafe { (self.cb.headers_size)(self.ctx) };
        // SAFETY: Envoy writes exactly the `n` headers it just reported for
        // this hook's context; its header map owns their bytes and keeps
        // them for the whole hook, in which nothing writes a header; the
        // list's borrow of `self` ends before the hook returns.
        unsafe { list.fill_from(n, |raw| (self.cb.headers)(self.ctx, raw)) }
    }

    fn source_address(&self) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            len: 0,
        };
        // SAFETY: live context; `out` is valid for writes.
        let ok =
            unsafe { (self.cb.attribute_string)(self.ctx, ATTRIBUTE_SOURCE_ADDRESS, &mut out) };
        // SAFETY: Envoy's bytes, alive for the hook.
        (ok && !out.ptr.is_null()).then(|| unsafe { bytes(out.ptr, out.len) })
    }

    fn local_port(&self) -> Option<u16> {
        let mut out = 0u64;
        // SAFETY: live context; `out` is valid for writes.
        let ok = unsafe { (self.cb.attribute_int)(self.ctx, ATTRIBUTE_DESTINATION_PORT, &mut out) };
        ok.then(|| u16::try_from(out).ok())
            .flatten()
            .filter(|p| *p > 0)
    }

    fn set_cluster(&mut self, name: &[u8]) {
        // SAFETY: live context; Envoy copies the name.
        unsafe { (self.cb.set_cluster_name)(self.ctx, ModuleBuffer::of(name)) }
    }

    fn bump(&self, metric: Option<&Metric>) {
        if let Some(m) = metric {
            // SAFETY: the id was defined on this live configuration, without labels.
            unsafe {
                (self.cb.increment_counter)(self.config_envoy, m.id, std::ptr::null(), 0, 1);
            }
        }
    }
}

/// A route's cluster-specifier configuration: the rule JSON of its
/// `specifier_config`; null refuses it (logged, counted), and Envoy rejects
/// the route configuration that holds it.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_cluster_specifier_config_new(
    config_envoy: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    shielded("on_cluster_specifier_config_new", std::ptr::null(), || {
        let Some(cb) = callbacks() else {
            log(
                Level::Error,
                "canary-router: cluster specifier configuration rejected: this Envoy lacks the cluster specifier's callbacks",
            );
            return std::ptr::null();
        };
        // SAFETY: Envoy's buffers, alive for this call.
        let (name, bytes) = unsafe { (bytes(name.ptr, name.len), bytes(config.ptr, config.len)) };
        let define = |kind: Kind, name: &str| {
            let mut id = 0usize;
            let name = ModuleBuffer::of(name.as_bytes());
            // SAFETY: Envoy's live configuration object, during its
            // creation; no label names; `id` is valid for writes.
            let r = unsafe {
                match kind {
                    Kind::Counter => {
                        (cb.define_counter)(config_envoy, name, std::ptr::null(), 0, &mut id)
                    }
                    Kind::Gauge => {
                        (cb.define_gauge)(config_envoy, name, std::ptr::null(), 0, &mut id)
                    }
                }
            };
            (r == METRICS_SUCCESS).then_some(id)
        };
        let set = |gauge: &Metric, value: u64| {
            // SAFETY: a gauge defined on this live configuration, without labels.
            unsafe {
                (cb.set_gauge)(config_envoy, gauge.id, std::ptr::null(), 0, value);
            }
        };
        let workload = crate::workload::from_env();
        match SpecifierConfig::new(name, bytes, &workload, define, set) {
            Ok(config) => {
                log(
                    Level::Info,
                    &format!(
                        "canary-router: cluster specifier configured: {} destinations, rules version {}",
                        config.rules().set.destination_count(),
                        config.rules().version
                    ),
                );
                Box::into_raw(Box::new(Specifier {
                    config,
                    envoy: config_envoy,
                    cb,
                })) as *const c_void
            }
            Err(why) => {
                if let Some(id) = define(Kind::Counter, "canary_router.config_rejected") {
                    // SAFETY: a counter defined on this live configuration, without labels.
                    unsafe {
                        (cb.increment_counter)(config_envoy, id, std::ptr::null(), 0, 1);
                    }
                }
                log(
                    Level::Error,
                    &format!("canary-router: cluster specifier configuration rejected: {why}"),
                );
                std::ptr::null()
            }
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_cluster_specifier_config_destroy(config: *const c_void) {
    shielded("on_cluster_specifier_config_destroy", (), || {
        if !config.is_null() {
            // SAFETY: made by `Box::into_raw` in config_new, destroyed once.
            drop(unsafe { Box::from_raw(config as *mut Specifier) });
        }
    })
}

/// Selects the cluster of one request, on its worker.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_cluster_specifier_select(
    config: *const c_void,
    ctx: *mut c_void,
) -> bool {
    shielded("on_cluster_specifier_select", false, || {
        // SAFETY: a configuration made by config_new, alive while its routes are.
        let Some(s) = (unsafe { (config as *const Specifier).as_ref() }) else {
            return false;
        };
        s.config.select(&mut Select {
            ctx,
            config_envoy: s.envoy,
            cb: s.cb,
            _hook: std::marker::PhantomData,
        })
    })
}
