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

/// A rule set of `n` rules built by `rule`, in one service of `host`.
fn rule_set(host: &str, n: usize, rule: &dyn Fn(usize) -> String) -> String {
    let dest = |s: &str, w: u32| {
        format!(
            r#"{{"destination":{{"host":"{host}","subset":"{s}","port":{{"number":80}}}},"weight":{w}}}"#
        )
    };
    let mut http: Vec<String> = (0..n).map(rule).collect();
    http.push(format!(
        r#"{{"route":[{},{}]}}"#,
        dest("v1", 90),
        dest("v2", 10)
    ));
    format!(
        r#"{{"services":[{{"hosts":["{host}"],"http":[{}]}}]}}"#,
        http.join(",")
    )
}

/// Rule sets of different shapes, one after another, again and again: the
/// blocks one shape frees are of other sizes than the next one asks for, so
/// a heap that kept every shape's blocks apart would grow each cycle. It
/// does not, once each shape has been seen.
#[test]
fn alternating_rule_sets_of_different_shapes_do_not_grow_the_heap() {
    let d = |s: &str| {
        format!(r#"{{"destination":{{"host":"backend","subset":"{s}","port":{{"number":80}}}}}}"#)
    };
    let shapes: Vec<String> = vec![
        test_tools::fixtures::rules_at_limits(),
        rule_set("backend", 1000, &|i| {
            format!(
                r#"{{"match":[{{"headers":{{"x-user":{{"exact":"user-{i}"}}}}}}],"route":[{}]}}"#,
                d("v2")
            )
        }),
        rule_set("backend", 300, &|i| {
            format!(
                r#"{{"match":[{{"uri":{{"regex":"/api/{i}/[a-z]+/.*"}},"headers":{{"x-build":{{"prefix":"b{i}"}}}}}}],"route":[{}]}}"#,
                d("v2")
            )
        }),
        rule_set("backend", 200, &|i| {
            let dests: Vec<String> = (0..8)
                .map(|k| {
                    format!(
                        r#"{{"destination":{{"host":"backend","subset":"s{i}-{k}","port":{{"number":80}}}},"weight":{}}}"#,
                        k + 1
                    )
                })
                .collect();
            format!(
                r#"{{"match":[{{"queryParams":{{"q{i}":{{"exact":"x"}}}}}}],"route":[{}],"sticky":{{"cookie":"c{i}"}}}}"#,
                dests.join(",")
            )
        }),
        std::fs::read_to_string(example_dir("header-override").join("rules.json")).expect("rules"),
    ];
    let mut vm = Vm::new(module(), VmOptions::default()).expect("vm");
    let mut sizes = Vec::new();
    for cycle in 0..8 {
        for (k, shape) in shapes.iter().enumerate() {
            assert!(
                vm.configure(shape.as_bytes()).expect("configure"),
                "cycle {cycle}: shape {k} refused: {:?}",
                vm.logs().last()
            );
            for _ in 0..20 {
                request(&mut vm, "backend");
                request(&mut vm, "hot");
            }
        }
        sizes.push(vm.memory_bytes() >> 10);
    }
    eprintln!("module memory after each cycle of 5 shapes, KiB: {sizes:?}");
    assert!(
        sizes.windows(2).skip(2).all(|w| w[0] == w[1]),
        "the heap grows as shapes alternate: {sizes:?} KiB"
    );
}
