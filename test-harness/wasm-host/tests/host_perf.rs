//! One VM takes many requests quickly: the instance is reused, nothing is recompiled.

mod common;

use common::{probe_request, probe_vm};
use std::time::{Duration, Instant};

#[test]
fn a_hundred_thousand_requests_through_one_vm() {
    let mut vm = probe_vm();
    let headers = probe_request("route:outbound|80|v1|backend.default.svc.cluster.local;incr");
    let started = Instant::now();
    for _ in 0..100_000 {
        let r = vm.request(&headers).unwrap();
        assert!(r.cleared_route_cache);
        vm.respond(&r, &[(":status", "200")]).unwrap();
    }
    let took = started.elapsed();
    eprintln!("100000 requests in {took:?}");
    assert_eq!(vm.metric("probe.requests"), Some(100_000));
    assert_eq!(vm.metric("probe.logged"), Some(100_000));
    assert_eq!(vm.open_streams(), 0);
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
