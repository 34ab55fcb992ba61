//! Time, ticks and randomness: all driven by the test.

mod common;

use common::{probe_request, probe_vm_with};
use std::time::{Duration, UNIX_EPOCH};
use wasm_host::{Clock, VmOptions};

#[test]
fn the_guest_sees_the_manual_clock() {
    let clock = Clock::at(UNIX_EPOCH + Duration::from_secs(1_000));
    let mut vm = probe_vm_with(
        VmOptions {
            clock: clock.clone(),
            ..VmOptions::default()
        },
        "",
    );
    let r = vm.request(&probe_request("time")).unwrap();
    assert_eq!(r.header("x-probe-time"), Some("1000000000000"));
    vm.advance(Duration::from_millis(1500)).unwrap();
    let r = vm.request(&probe_request("time")).unwrap();
    assert_eq!(r.header("x-probe-time"), Some("1001500000000"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(vm.now(), UNIX_EPOCH + Duration::from_millis(1_002_500));
}

#[test]
fn ticks_fire_at_the_period_the_guest_set() {
    let clock = Clock::at(UNIX_EPOCH);
    let mut vm = probe_vm_with(
        VmOptions {
            clock,
            ..VmOptions::default()
        },
        "tick=1000",
    );
    assert_eq!(vm.tick_period(), Some(Duration::from_secs(1)));
    vm.advance(Duration::from_millis(3500)).unwrap();
    assert_eq!(
        vm.logs_containing("tick "),
        [
            "tick 1 at 1000 ms",
            "tick 2 at 2000 ms",
            "tick 3 at 3000 ms"
        ]
    );
    vm.tick().unwrap();
    assert_eq!(vm.logs_containing("tick 4 at 3500 ms").len(), 1);
    // A request can change the period (it is the root context's timer).
    vm.request(&probe_request("tick:0")).unwrap();
    assert_eq!(vm.tick_period(), None);
    vm.advance(Duration::from_secs(10)).unwrap();
    assert_eq!(vm.logs_containing("tick ").len(), 4);
}

#[test]
fn a_tick_needs_a_root_context() {
    let mut vm = wasm_host::Vm::new(common::probe(), VmOptions::default()).unwrap();
    assert!(matches!(vm.tick(), Err(wasm_host::HostError::Usage(_))));
    assert!(vm.start().unwrap());
    vm.tick().unwrap();
    assert_eq!(vm.logs_containing("tick 1").len(), 1);
}

#[test]
fn randomness_is_seeded() {
    let random = |seed| {
        let mut vm = probe_vm_with(
            VmOptions {
                random_seed: seed,
                ..VmOptions::default()
            },
            "",
        );
        let r = vm.request(&probe_request("random")).unwrap();
        r.header("x-probe-random").unwrap().to_string()
    };
    assert_eq!(random(1), random(1));
    assert_ne!(random(1), random(2));
}
