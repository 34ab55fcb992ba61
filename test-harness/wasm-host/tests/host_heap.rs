//! The module's heap (its own allocator, `filter-runtime/src/heap.rs`) reuses
//! what a rule set frees: reloading the largest rule set the limits allow,
//! again and again, between requests, does not grow the module's memory
//! once the first reloads have sized it.

use std::sync::OnceLock;

use envoy_runner::example_dir;
use wasm_host::{Module, Vm, VmOptions};

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::load(test_tools::filter_wasm()).expect("filter loads"))
}

fn request(vm: &mut Vm, host: &str) {
    let headers = [
        (":method", "GET"),
        (":path", "/"),
        (":authority", host),
        ("x-user", "someone"),
    ];
    let r = vm.request(&headers).expect("request runs");
    vm.close(&r).expect("stream closes");
}

#[test]
fn reloading_the_largest_rule_set_does_not_grow_the_heap() {
    let large = test_tools::fixtures::rules_at_limits();
    let small = std::fs::read(example_dir("header-override").join("rules.json")).expect("rules");
    let mut vm = Vm::new(module(), VmOptions::default()).expect("vm");
    let mut sizes = Vec::new();
    for round in 0..12 {
        assert!(
            vm.configure(large.as_bytes()).expect("configure"),
            "round {round}: large refused"
        );
        for _ in 0..50 {
            request(&mut vm, "hot");
            request(&mut vm, "backend");
        }
        assert!(
            vm.configure(&small).expect("configure"),
            "round {round}: small refused"
        );
        for _ in 0..50 {
            request(&mut vm, "backend");
        }
        sizes.push(vm.memory_bytes() >> 10);
    }
    eprintln!("module memory after each round, KiB: {sizes:?}");
    assert!(
        sizes.windows(2).skip(3).all(|w| w[0] == w[1]),
        "the heap grows with reloads: {sizes:?} KiB"
    );
    // The largest rule set is a 1 MiB file: parsing and compiling it takes
    // 16.9 MiB (wasi-libc's dlmalloc took 15.4, power-of-two size classes
    // 27.4, which this refuses).
    assert!(sizes[sizes.len() - 1] < 20 * 1024, "{sizes:?} KiB");
}
