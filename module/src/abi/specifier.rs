//! The cluster-specifier experiment's part of the ABI (feature
//! `cluster-specifier`): its callbacks, its selection context and its hooks.

use std::ffi::c_void;

use super::*;
use crate::metrics::Metric;
use crate::specifier::{SelectHost, SpecifierConfig};
use crate::stream::Header;

extern "C" {
    fn envoy_dynamic_module_callback_cluster_specifier_get_request_headers_size(
        ctx: *mut c_void,
    ) -> usize;
    fn envoy_dynamic_module_callback_cluster_specifier_get_request_headers(
        ctx: *mut c_void,
        out: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_cluster_specifier_get_attribute_string(
        ctx: *mut c_void,
        id: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_cluster_specifier_get_attribute_int(
        ctx: *mut c_void,
        id: u32,
        out: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_cluster_specifier_set_cluster_name(
        ctx: *mut c_void,
        name: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_cluster_specifier_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_count: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_cluster_specifier_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_count: usize,
        value: u64,
    ) -> u32;
}

/// The experiment's configuration and Envoy's object behind it.
struct Specifier {
    config: SpecifierConfig,
    envoy: *mut c_void,
}

/// One selection: Envoy's context, valid for the `select` hook only.
struct Select<'a> {
    ctx: *mut c_void,
    config_envoy: *mut c_void,
    _hook: std::marker::PhantomData<&'a ()>,
}

impl SelectHost for Select<'_> {
    fn request_headers(&self) -> Option<Vec<Header<'_>>> {
        // SAFETY: the context Envoy passed to the running hook.
        let n = unsafe {
            envoy_dynamic_module_callback_cluster_specifier_get_request_headers_size(self.ctx)
        };
        let mut raw: Vec<EnvoyHeader> = Vec::with_capacity(n);
        // SAFETY: Envoy writes exactly the `n` headers it reported.
        let ok = unsafe {
            envoy_dynamic_module_callback_cluster_specifier_get_request_headers(
                self.ctx,
                raw.as_mut_ptr(),
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: initialised by the call above.
        unsafe { raw.set_len(n) };
        Some(
            raw.iter()
                // SAFETY: Envoy's header map, unchanged for this hook.
                .map(|h| unsafe { (bytes(h.key_ptr, h.key_len), bytes(h.value_ptr, h.value_len)) })
                .collect(),
        )
    }

    fn source_address(&self) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            len: 0,
        };
        // SAFETY: live context; `out` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_cluster_specifier_get_attribute_string(
                self.ctx,
                ATTRIBUTE_SOURCE_ADDRESS,
                &mut out,
            )
        };
        // SAFETY: Envoy's bytes, alive for the hook.
        (ok && !out.ptr.is_null()).then(|| unsafe { bytes(out.ptr, out.len) })
    }

    fn local_port(&self) -> Option<u16> {
        let mut out = 0u64;
        // SAFETY: live context; `out` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_cluster_specifier_get_attribute_int(
                self.ctx,
                ATTRIBUTE_DESTINATION_PORT,
                &mut out,
            )
        };
        ok.then(|| u16::try_from(out).ok())
            .flatten()
            .filter(|p| *p > 0)
    }

    fn set_cluster(&mut self, name: &[u8]) {
        // SAFETY: live context; Envoy copies the name.
        unsafe {
            envoy_dynamic_module_callback_cluster_specifier_set_cluster_name(
                self.ctx,
                ModuleBuffer::of(name),
            )
        }
    }

    fn bump(&self, metric: Option<&Metric>) {
        if let Some(m) = metric {
            // SAFETY: the id was defined on this live configuration, without labels.
            unsafe {
                envoy_dynamic_module_callback_cluster_specifier_config_increment_counter(
                    self.config_envoy,
                    m.id,
                    std::ptr::null(),
                    0,
                    1,
                );
            }
        }
    }
}

/// A route's cluster-specifier configuration: the rule JSON; null refuses it.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_cluster_specifier_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    shielded("on_cluster_specifier_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffer, alive for this call.
        let bytes = unsafe { bytes(config.ptr, config.len) };
        let define = |name: &str| {
            let mut id = 0usize;
            // SAFETY: Envoy's live configuration object, during its creation.
            let r = unsafe {
                envoy_dynamic_module_callback_cluster_specifier_config_define_counter(
                    config_envoy,
                    ModuleBuffer::of(name.as_bytes()),
                    std::ptr::null(),
                    0,
                    &mut id,
                )
            };
            (r == METRICS_SUCCESS).then_some(id)
        };
        match SpecifierConfig::compile(bytes, define) {
            Ok(config) => Box::into_raw(Box::new(Specifier {
                config,
                envoy: config_envoy,
            })) as *const c_void,
            Err(why) => {
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
            _hook: std::marker::PhantomData,
        })
    })
}
