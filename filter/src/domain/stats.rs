//! Names of the filter's stats, shared by the adapters that define them and
//! the tools (`canaryctl`) that read them.

use alloc::{format, string::String};

/// Prefix of every stat of the filter (Envoy adds `wasmcustom.` in `/stats`).
pub const PREFIX: &str = "canary_router.";

/// The counter of one destination: service, rule and destination as
/// `.name=value;` segments, which Envoy's `stats_tags` turn into Prometheus
/// labels (`canary_router_requests{service,rule,destination}`).
pub fn destination_counter(service: &str, rule: &str, destination: &str) -> String {
    format!(
        "canary_router.requests.service={};.rule={};.destination={};",
        tag_value(service),
        tag_value(rule),
        tag_value(destination)
    )
}

/// A guard's stat of one destination: `kind` is `ejected` (a gauge, 1 or
/// 0), `requests` or `errors` (counters of the responses it counted):
/// `canary_router_guard_ejected{service,rule,destination}` in Prometheus.
pub fn guard_metric(kind: &str, service: &str, rule: &str, destination: &str) -> String {
    format!(
        "canary_router.guard.{kind}.service={};.rule={};.destination={};",
        tag_value(service),
        tag_value(rule),
        tag_value(destination)
    )
}

/// Replaces what a tag value inside an Envoy stat name cannot carry.
pub fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ';' | '=' | ' ' | '\t' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_tags_and_nothing_that_breaks_them() {
        assert_eq!(
            destination_counter("backend.default.svc.cluster.local", "split", "v1"),
            "canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v1;"
        );
        assert_eq!(tag_value("a;b=c d\te\u{7}"), "a_b_c_d_e_");
    }
}
