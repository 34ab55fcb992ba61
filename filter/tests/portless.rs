#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Destinations without a port, as Istio resolves them in a sidecar: the
//! port the request arrived on (`GetDestinationCluster` in Istio's
//! `pilot/pkg/networking/core/route`), or the service's `destinationPort`;
//! refused on a gateway without one.

mod common;

use canary_router::{Plugin, Workload};
use common::{cluster, compile, Req};

const BOOKINFO: &str = r#"{"services":[{"hosts":["reviews"],"http":[
    {"name":"jason","match":[{"headers":{"end-user":{"exact":"jason"}}}],"route":[{"destination":{"host":"reviews","subset":"v2"}}]},
    {"name":"rest","route":[{"destination":{"host":"reviews","subset":"v1"}}]}]}]}"#;

#[test]
fn a_destination_without_a_port_takes_the_port_the_request_arrived_on() {
    let rules = compile(BOOKINFO);
    for port in [80u16, 9080, 65535] {
        assert_eq!(
            cluster(&rules, &Req::to("reviews").on_port(port)).as_deref(),
            Some(format!("outbound|{port}|v1|reviews.default.svc.cluster.local").as_str())
        );
        assert_eq!(
            cluster(
                &rules,
                &Req::to("reviews").on_port(port).with("end-user", "jason")
            )
            .as_deref(),
            Some(format!("outbound|{port}|v2|reviews.default.svc.cluster.local").as_str())
        );
    }
    // Not the port written in :authority.
    assert_eq!(
        cluster(&rules, &Req::to("reviews:8080").on_port(9080)).as_deref(),
        Some("outbound|9080|v1|reviews.default.svc.cluster.local")
    );
    // An unknown port: no name can be built, the request stays on Envoy's route.
    assert_eq!(cluster(&rules, &Req::to("reviews")), None);
}

#[test]
fn a_service_destination_port_fills_in_destinations_without_one() {
    let json = BOOKINFO.replace(
        r#""hosts":["reviews"],"#,
        r#""hosts":["reviews"],"destinationPort":9080,"#,
    );
    let rules = compile(&json);
    assert_eq!(
        cluster(&rules, &Req::to("reviews").on_port(8080)).as_deref(),
        Some("outbound|9080|v1|reviews.default.svc.cluster.local")
    );
    assert_eq!(
        cluster(&rules, &Req::to("reviews")).as_deref(),
        Some("outbound|9080|v1|reviews.default.svc.cluster.local"),
        "no port needed from the request"
    );
    // An explicit port still wins.
    let json = json.replace(
        r#""subset":"v1""#,
        r#""subset":"v1","port":{"number":9090}"#,
    );
    assert_eq!(
        cluster(&compile(&json), &Req::to("reviews").on_port(8080)).as_deref(),
        Some("outbound|9090|v1|reviews.default.svc.cluster.local")
    );
    let bad = BOOKINFO.replace(
        r#""hosts":["reviews"],"#,
        r#""hosts":["reviews"],"destinationPort":0,"#,
    );
    let err = Plugin::from_bytes(bad.as_bytes(), &Workload::default())
        .err()
        .unwrap_or_else(|| panic!("port 0 is refused"))
        .to_string();
    assert!(err.contains("services[0].destinationPort"), "{err}");
}

#[test]
fn on_a_gateway_a_destination_without_a_port_is_refused_by_name() {
    let gateway = Workload {
        gateway: true,
        ..Workload::default()
    };
    let err = Plugin::from_bytes(BOOKINFO.as_bytes(), &gateway)
        .err()
        .unwrap_or_else(|| panic!("refused on a gateway"))
        .to_string();
    assert!(
        err.contains("services[0].http[0].route[0].destination.port")
            && err.contains("gateway")
            && err.contains("destinationPort"),
        "{err}"
    );
    let json = BOOKINFO.replace(
        r#""hosts":["reviews"],"#,
        r#""hosts":["reviews"],"destinationPort":9080,"#,
    );
    let rules = Plugin::from_bytes(json.as_bytes(), &gateway)
        .expect("accepted with destinationPort")
        .rules
        .expect("inline rules")
        .set;
    assert_eq!(
        cluster(&rules, &Req::to("reviews").on_port(8080)).as_deref(),
        Some("outbound|9080|v1|reviews.default.svc.cluster.local")
    );
}

/// `portlessDestinations: glue`: the value written is the cluster name with
/// its port left out, whatever port the request arrived on (or none): the
/// glue's route of each port names the port. A `destinationPort` or a
/// destination's own port still wins, and a gateway accepts the rules (its
/// glue resolves the port, as Istio resolves a port-less destination).
#[test]
fn with_the_glue_mode_the_port_is_left_out_of_the_value() {
    let glue = BOOKINFO.replacen('{', r#"{"portlessDestinations":"glue","#, 1);
    let gateway = Workload {
        gateway: true,
        ..Workload::default()
    };
    for w in [Workload::default(), gateway] {
        let rules = common::compile_for(&glue, &w);
        for req in [Req::to("reviews").on_port(9080), Req::to("reviews")] {
            assert_eq!(
                cluster(&rules, &req).as_deref(),
                Some("outbound||v1|reviews.default.svc.cluster.local")
            );
        }
        assert_eq!(
            cluster(&rules, &Req::to("reviews").with("end-user", "jason")).as_deref(),
            Some("outbound||v2|reviews.default.svc.cluster.local")
        );
    }
    let fixed = glue.replace(
        r#""hosts":["reviews"],"#,
        r#""hosts":["reviews"],"destinationPort":9080,"#,
    );
    assert_eq!(
        cluster(&compile(&fixed), &Req::to("reviews")).as_deref(),
        Some("outbound|9080|v1|reviews.default.svc.cluster.local")
    );
    let explicit = glue.replace(
        r#""subset":"v1""#,
        r#""subset":"v1","port":{"number":9090}"#,
    );
    assert_eq!(
        cluster(&compile(&explicit), &Req::to("reviews")).as_deref(),
        Some("outbound|9090|v1|reviews.default.svc.cluster.local")
    );
    let bad = BOOKINFO.replacen('{', r#"{"portlessDestinations":"Glue","#, 1);
    let err = Plugin::from_bytes(bad.as_bytes(), &Workload::default())
        .err()
        .unwrap_or_else(|| panic!("an unknown mode is refused"))
        .to_string();
    assert!(
        err.starts_with("portlessDestinations: `Glue`: give `requestPort`"),
        "{err}"
    );
}
