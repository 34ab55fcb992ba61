//! The compiled filter in the in-process host, on every example's rules:
//! 100,000-request splits within binomial bounds, header overrides,
//! source-label pinning on new and old Envoys, stickiness, spoofed headers,
//! the debug header, stats, and hot reconfiguration.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use envoy_runner::{binomial, example_dir};
use serde_json::{json, Value};
use wasm_host::{Action, Module, NodeMetadataPaths, Vm, VmOptions};

const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
const SPLIT_V1: &str =
    "canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v1;";
const SPLIT_V2: &str =
    "canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;";

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::load(test_tools::filter_wasm()).expect("filter loads"))
}

fn rules(example: &str, file: &str) -> Vec<u8> {
    std::fs::read(example_dir(example).join(file)).expect("rules file")
}

fn vm_with(labels: Value, paths: NodeMetadataPaths, seed: u64) -> Vm {
    Vm::new(
        module(),
        VmOptions {
            node_metadata: json!({"NAMESPACE": "default", "LABELS": labels}),
            node_metadata_paths: paths,
            random_seed: seed,
            ..VmOptions::default()
        },
    )
    .expect("vm")
}

fn configured(example: &str, file: &str) -> Vm {
    let mut vm = vm_with(
        json!({"app": "frontend", "version": "v1"}),
        NodeMetadataPaths::Both,
        7,
    );
    assert!(
        vm.configure(&rules(example, file)).unwrap(),
        "{:#?}",
        vm.logs()
    );
    vm
}

/// Sends `n` requests and counts the clusters the filter chose.
fn split(vm: &mut Vm, n: usize, extra: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let mut headers = vec![
        (":authority", "backend"),
        (":path", "/"),
        (":method", "GET"),
    ];
    headers.extend_from_slice(extra);
    for _ in 0..n {
        let r = vm.request(&headers).unwrap();
        assert_eq!(r.action, Action::Continue);
        let cluster = r
            .header("x-canary-upstream")
            .unwrap_or("<none>")
            .to_string();
        *counts.entry(cluster).or_insert(0) += 1;
        vm.close(&r).unwrap();
    }
    counts
}

fn assert_share(counts: &BTreeMap<String, u64>, cluster: &str, p: f64) {
    let n: u64 = counts.values().sum();
    let k = counts.get(cluster).copied().unwrap_or(0);
    let check = binomial(n, p, k, 5.0);
    assert!(check.ok(), "{cluster}: {check} in {counts:?}");
}

#[test]
fn weighted_steps_over_100k_requests() {
    for (file, p_v2) in [
        ("rules.json", 0.1),
        ("rules-50-50.json", 0.5),
        ("rules-100-v2.json", 1.0),
    ] {
        let mut vm = configured("weighted", file);
        let counts = split(&mut vm, 100_000, &[]);
        assert_share(&counts, V2, p_v2);
        assert_share(&counts, V1, 1.0 - p_v2);
        assert_eq!(counts.values().sum::<u64>(), 100_000);
        if p_v2 < 1.0 {
            assert_eq!(
                vm.metric(SPLIT_V1),
                counts.get(V1).copied(),
                "stats count what was routed"
            );
        }
    }
}

#[test]
fn random_picks_differ_between_vms_seeded_differently() {
    // Never a fixed seed: two VMs with other host randomness make other sequences.
    let picks = |seed| {
        let mut vm = vm_with(json!({}), NodeMetadataPaths::Both, seed);
        assert!(vm
            .configure(&rules("weighted", "rules-50-50.json"))
            .unwrap());
        (0..64)
            .map(|_| {
                let r = vm
                    .request(&[(":authority", "backend"), (":path", "/")])
                    .unwrap();
                r.header("x-canary-upstream") == Some(V2)
            })
            .collect::<Vec<_>>()
    };
    assert_ne!(picks(1), picks(2));
}

#[test]
fn header_override_and_the_rest_split() {
    let mut vm = configured("header-override", "rules.json");
    let testers = split(&mut vm, 2000, &[("canary", "canary-tester")]);
    assert_eq!(testers.get(V2), Some(&2000), "{testers:?}");
    let others = split(&mut vm, 50_000, &[("canary", "someone-else")]);
    assert_share(&others, V2, 0.1);
}

#[test]
fn source_labels_on_new_and_old_envoys() {
    for paths in [NodeMetadataPaths::XdsOnly, NodeMetadataPaths::LegacyOnly] {
        let mut v2 = vm_with(json!({"app": "frontend", "version": "v2"}), paths, 3);
        assert!(v2.configure(&rules("source-labels", "rules.json")).unwrap());
        assert_eq!(split(&mut v2, 2000, &[]).get(V2), Some(&2000), "{paths:?}");
        let mut v1 = vm_with(json!({"app": "frontend", "version": "v1"}), paths, 3);
        assert!(v1.configure(&rules("source-labels", "rules.json")).unwrap());
        assert_share(&split(&mut v1, 20_000, &[]), V2, 0.1);
    }
}

#[test]
fn sticky_users_keep_their_version() {
    let mut vm = configured("sticky", "rules.json");
    let mut on_v2 = 0;
    for user in 0..1000 {
        let id = format!("user-{user}");
        let seen = split(&mut vm, 5, &[("x-user-id", &id)]);
        assert_eq!(seen.len(), 1, "{id} saw {seen:?}");
        if seen.contains_key(V2) {
            on_v2 += 1;
        }
    }
    let check = binomial(1000, 0.5, on_v2, 5.0);
    assert!(check.ok(), "users on v2: {check}");
}

#[test]
fn spoofed_route_header_is_removed_on_every_request() {
    let mut vm = configured("weighted", "rules.json");
    // Routed: the spoofed value is replaced by the filter's choice.
    let counts = split(&mut vm, 20_000, &[("x-canary-upstream", V2)]);
    assert_share(&counts, V2, 0.1);
    // Not routed (a host no rule covers): the header is removed, the route re-selected.
    let r = vm
        .request(&[
            (":authority", "other"),
            (":path", "/"),
            ("x-canary-upstream", V2),
        ])
        .unwrap();
    assert_eq!(r.header("x-canary-upstream"), None);
    assert!(
        r.cleared_route_cache,
        "the route chosen with the spoofed header is dropped"
    );
    // Repeated copies and another case are all removed.
    let r = vm
        .request(&[
            (":authority", "other"),
            ("X-Canary-Upstream", V2),
            ("x-canary-upstream", V1),
        ])
        .unwrap();
    assert_eq!(r.header("x-canary-upstream"), None);
    assert_eq!(
        vm.metric("canary_router.spoofed_header_removed"),
        Some(20_002)
    );
    // Nothing to remove, nothing routed: the route cache is left alone.
    let r = vm
        .request(&[(":authority", "other"), (":path", "/")])
        .unwrap();
    assert!(!r.cleared_route_cache);
    assert_eq!(vm.metric("canary_router.passthrough"), Some(3));
}

#[test]
fn default_destination_requests_are_left_untouched() {
    let mut vm = configured("default-destination", "rules.json");
    let (mut to_v1, mut to_v2) = (0, 0);
    for _ in 0..10_000 {
        let r = vm
            .request(&[(":authority", "backend"), (":path", "/")])
            .unwrap();
        match r.header("x-canary-upstream") {
            // v1 is Envoy's own route: no header, no re-selection.
            None => {
                assert_eq!(r.route_cache_clears, 0);
                to_v1 += 1;
            }
            Some(V2) => {
                assert_eq!(r.route_cache_clears, 1);
                to_v2 += 1;
            }
            Some(other) => panic!("wrote {other}"),
        }
        vm.close(&r).unwrap();
    }
    let check = binomial(10_000, 0.1, to_v2, 5.0);
    assert!(check.ok(), "v2: {check}");
    assert_eq!(vm.metric(SPLIT_V1), Some(to_v1), "v1 decisions still count");
    // A client's copy is removed, and the route it chose re-selected, when
    // the decision is v1 too.
    let mut spoofed_v1 = 0;
    for _ in 0..2_000 {
        let r = vm
            .request(&[
                (":authority", "backend"),
                (":path", "/"),
                ("x-canary-upstream", V2),
            ])
            .unwrap();
        assert_eq!(r.route_cache_clears, 1);
        if r.header("x-canary-upstream").is_none() {
            spoofed_v1 += 1;
        } else {
            assert_eq!(r.header("x-canary-upstream"), Some(V2));
        }
        vm.close(&r).unwrap();
    }
    let check = binomial(2_000, 0.9, spoofed_v1, 5.0);
    assert!(check.ok(), "spoofed requests decided v1: {check}");
    assert_eq!(
        vm.metric("canary_router.spoofed_header_removed"),
        Some(2_000)
    );
}

#[test]
fn debug_header_names_service_rule_and_destination() {
    let mut vm = configured("header-override", "rules.json");
    let r = vm
        .request(&[
            (":authority", "backend"),
            (":path", "/"),
            ("canary", "canary-tester"),
        ])
        .unwrap();
    let resp = vm.respond(&r, &[(":status", "200")]).unwrap();
    assert_eq!(
        resp.header("x-canary-route"),
        Some("backend.default.svc.cluster.local/testers/v2")
    );
    let r = vm
        .request(&[(":authority", "other"), (":path", "/")])
        .unwrap();
    let resp = vm.respond(&r, &[(":status", "200")]).unwrap();
    assert_eq!(
        resp.header("x-canary-route"),
        None,
        "only routed requests get it"
    );
}

#[test]
fn hot_reconfiguration_swaps_rules_and_refuses_bad_ones() {
    let mut vm = configured("weighted", "rules.json");
    assert_share(&split(&mut vm, 20_000, &[]), V2, 0.1);
    assert!(vm
        .configure(&rules("weighted", "rules-50-50.json"))
        .unwrap());
    assert_share(&split(&mut vm, 20_000, &[]), V2, 0.5);
    // A bad rule set is refused whole, with the path in the log, and the last good one serves.
    let bad = String::from_utf8(rules("weighted", "rules.json"))
        .unwrap()
        .replacen("\"weight\": 90", "\"weight\": -90", 1);
    assert!(bad.contains("-90"), "the fixture changed: {bad}");
    vm.clear_logs();
    assert!(
        !vm.configure(bad.as_bytes()).unwrap(),
        "a negative weight is refused"
    );
    let logged = vm.logs_containing("configuration rejected");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("services[0].http[0].route[0].weight") && l.contains("negative")),
        "{logged:?}"
    );
    assert_eq!(vm.metric("canary_router.config_rejected"), Some(1));
    assert_share(&split(&mut vm, 20_000, &[]), V2, 0.5);
    assert!(!vm.configure(b"{not json").unwrap());
    assert!(!vm.configure(b"").unwrap());
    assert_share(&split(&mut vm, 20_000, &[]), V2, 0.5);
}

#[test]
fn stats_per_destination_are_defined_at_configure() {
    let vm = configured("weighted", "rules.json");
    assert_eq!(vm.metric(SPLIT_V1), Some(0));
    assert_eq!(vm.metric(SPLIT_V2), Some(0));
    assert!(vm
        .metric("canary_router.rules_version")
        .is_some_and(|v| v > 0));
}
