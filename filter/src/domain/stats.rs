//! Names of the filter's stats, shared by the adapters that define them and
//! the tools (`canaryctl`) that read them.

use alloc::string::String;

use crate::domain::ramp::share_bp;
use crate::domain::rules::{Destination, RuleSet};

/// Prefix of every stat of the filter (Envoy adds `wasmcustom.` in `/stats`).
pub const PREFIX: &str = "canary_router.";

/// The counter of one destination: service, rule and destination as
/// `.name=value;` segments, which Envoy's `stats_tags` turn into Prometheus
/// labels (`canary_router_requests{service,rule,destination}`).
pub fn destination_counter(service: &str, rule: &str, destination: &str) -> String {
    tagged("requests", service, rule, Some(destination))
}

/// A stat of a rule (`destination` none) or of one of its destinations:
/// `canary_router.{kind}.service=S;.rule=R;[.destination=D;]`, which the
/// `stats_tags` turn into `canary_router_{kind}{service,rule[,destination]}`.
/// The kinds: `requests` (counter), `weight` (gauge, basis points),
/// `ramp_step`, `ramp_aborted`, `ramp_next_step_ms` (gauges of a rule).
pub fn tagged(kind: &str, service: &str, rule: &str, destination: Option<&str>) -> String {
    let mut out = String::from("canary_router.");
    out.push_str(kind);
    push_tag(&mut out, ".service=", service);
    push_tag(&mut out, ".rule=", rule);
    if let Some(d) = destination {
        push_tag(&mut out, ".destination=", d);
    }
    out
}

/// Appends `{name}{value};`, the value made safe by [`tag_value`]'s rule.
fn push_tag(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    for c in value.chars() {
        out.push(tag_char(c));
    }
    out.push(';');
}

fn tag_char(c: char) -> char {
    match c {
        ';' | '=' | ' ' | '\t' => '_',
        c if c.is_control() => '_',
        c => c,
    }
}

/// A guard's stat of one destination: `kind` is `ejected` (a gauge, 1 or
/// 0), `requests` or `errors` (counters of the responses it counted), or
/// the window's figures `window_requests`, `window_errors`,
/// `window_p90_ms` (gauges): `canary_router_guard_ejected{service,rule,destination}`
/// in Prometheus.
pub fn guard_metric(kind: &str, service: &str, rule: &str, destination: &str) -> String {
    let mut full = String::from("guard.");
    full.push_str(kind);
    tagged(&full, service, rule, Some(destination))
}

/// What the `weight` and ramp gauges show of `set` now: `weight` gets
/// each destination's `stat_index` and its share of its rule in basis
/// points, as requests are picked now (a ramp's phase, ejected
/// destinations at 0: `ejected` by `stat_index`); `ramp` gets each ramp's
/// ordinal (in rule order) and its `ramp_step` (steps done),
/// `ramp_aborted` (1 once a guard stopped it) and `ramp_next_step_ms`
/// (when the next step is due, 0 for none).
#[inline]
pub fn show_weights(
    set: &RuleSet,
    ejected: impl Fn(u32) -> bool,
    mut weight: impl FnMut(u32, u64),
    mut ramp: impl FnMut(usize, [u64; 3]),
) {
    let mut ramps = 0;
    for r in set.services().iter().flat_map(|s| &s.rules) {
        let (ds, w) = (&r.route.destinations, r.route.weights());
        let kept = |i: usize, d: &Destination| {
            if ejected(d.stat_index) {
                0
            } else {
                w.weight(i)
            }
        };
        let mut total = 0;
        for (i, d) in ds.iter().enumerate() {
            total += kept(i, d);
        }
        for (i, d) in ds.iter().enumerate() {
            weight(d.stat_index, share_bp(kept(i, d), total));
        }
        let Some(p) = r.route.ramp() else { continue };
        let phase = p.phase();
        let stopped = p.is_aborted();
        let steps = p.schedule.phases.get(phase).map_or(0, |p| p.steps_done);
        let next = p.schedule.next_at(phase).filter(|_| !stopped);
        ramp(
            ramps,
            [u64::from(steps), u64::from(stopped), next.unwrap_or(0)],
        );
        ramps += 1;
    }
}

/// Replaces what a tag value inside an Envoy stat name cannot carry.
pub fn tag_value(s: &str) -> String {
    s.chars().map(tag_char).collect()
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
