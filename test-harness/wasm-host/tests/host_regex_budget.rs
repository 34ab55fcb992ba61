//! The regex engine's worst case, counted in the built `.wasm` (wasm instructions through
//! wasmtime's fuel, not time): a regex at the largest program the limits allow, matched
//! against the longest header value a regex sees (`filter/src/limits.rs`), costs one request
//! at most `BUDGET` instructions. `docs/limits.md` states the same bound.
//!
//! The engine is a Pike VM (`regex/vm.rs`): per byte of the value, every instruction of the
//! program is visited at most once, so a match costs at most (program length × value length)
//! visits, 2,044 × 4,096 at the limits: 1.4 billion wasm instructions for one request before
//! `limits::MAX_REGEX_STEPS` stopped a match after 262,144 visits. The shapes below are the
//! ones that keep every instruction alive on every byte (and some that add assertions, the
//! dearest visits); each is tried at the largest repetition count the limits accept (found by
//! configuring the filter).

use std::sync::OnceLock;

use wasm_host::{Module, Vm, VmOptions};

/// The most wasm instructions one request may cost with one worst-case regex in its way.
/// (`MAX_REGEX_STEPS` visits at up to about 148 instructions each, and the request around
/// them; the worst shape measured 38.7 million.)
const BUDGET: u64 = 40_000_000;
/// `limits::MAX_REGEX_INPUT_BYTES`: a longer value never reaches the engine.
const VALUE_BYTES: usize = 4096;

fn module() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| Module::load_metered(test_tools::filter_wasm()).expect("filter loads"))
}

fn rules(pattern: &str) -> String {
    let pattern = serde_json::to_string(pattern).expect("a string");
    let dest = |subset: &str| {
        format!(
            r#"{{"destination":{{"host":"backend","subset":"{subset}","port":{{"number":80}}}}}}"#
        )
    };
    format!(
        r#"{{"services":[{{"hosts":["backend"],"http":[
            {{"match":[{{"headers":{{"x-v":{{"regex":{pattern}}}}}}}],"route":[{}]}},
            {{"route":[{}]}}]}}]}}"#,
        dest("v2"),
        dest("v1")
    )
}

/// The instructions one request with `x-v: value` costs, and where it went.
fn request_cost(vm: &mut Vm, value: &str) -> (u64, String) {
    let headers = [
        (":method", "GET"),
        (":path", "/"),
        (":authority", "backend"),
        ("x-v", value),
    ];
    let before = vm.fuel_consumed().expect("metered");
    let r = vm.request(&headers).expect("request runs");
    let cost = vm.fuel_consumed().expect("metered") - before;
    vm.close(&r).expect("stream closes");
    let to = r
        .header("x-canary-upstream")
        .unwrap_or_default()
        .to_string();
    (cost, to)
}

/// The largest `n` (up to 1024) whose pattern the filter accepts.
fn largest(vm: &mut Vm, shape: &dyn Fn(usize) -> String) -> usize {
    let (mut lo, mut hi) = (0, 1025);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if vm
            .configure(rules(&shape(mid)).as_bytes())
            .expect("configure runs")
        {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

struct Shape {
    name: &'static str,
    pattern: fn(usize) -> String,
    value: fn() -> String,
}

fn a_value() -> String {
    "a".repeat(VALUE_BYTES)
}

fn words_value() -> String {
    "a ".repeat(VALUE_BYTES / 2)
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "(?:.*a){n}x",
            pattern: |n| format!("(?:.*a){{{n}}}x"),
            value: a_value,
        },
        Shape {
            name: "(?:a*){n}x",
            pattern: |n| format!("(?:a*){{{n}}}x"),
            value: a_value,
        },
        Shape {
            name: "(?:a?){n}x",
            pattern: |n| format!("(?:a?){{{n}}}x"),
            value: a_value,
        },
        Shape {
            name: "(?i)(?:.*a){n}x",
            pattern: |n| format!("(?i)(?:.*a){{{n}}}x"),
            value: a_value,
        },
        Shape {
            name: "(?:[a-z]*){n}x",
            pattern: |n| format!("(?:[a-z]*){{{n}}}x"),
            value: a_value,
        },
        Shape {
            name: "(?:.*\\b){n}x",
            pattern: |n| format!("(?:.*\\b){{{n}}}x"),
            value: words_value,
        },
        Shape {
            name: "(?:\\b.*\\B){n}x",
            pattern: |n| format!("(?:\\b.*\\B){{{n}}}x"),
            value: words_value,
        },
        Shape {
            name: "(?:a|.)*(?:a|.|\\b){n}x",
            pattern: |n| format!("(?:a|.)*(?:a|.|\\b){{{n}}}x"),
            value: a_value,
        },
        Shape {
            name: "(?:.*){n}x",
            pattern: |n| format!("(?:.*){{{n}}}x"),
            value: a_value,
        },
    ]
}

#[test]
fn the_worst_regex_at_the_limits_stays_within_its_budget() {
    let mut vm = Vm::new(module(), VmOptions::default()).expect("vm");
    assert!(vm.configure(rules("a").as_bytes()).expect("configure"));
    let (floor, to) = request_cost(&mut vm, "a");
    assert!(to.contains("|v2|"), "the probe rule routes: {to}");
    let mut worst = (0, String::new());
    for shape in shapes() {
        let n = largest(&mut vm, &shape.pattern);
        assert!(n > 0, "{}: no repetition accepted", shape.name);
        let pattern = (shape.pattern)(n);
        assert!(vm.configure(rules(&pattern).as_bytes()).expect("configure"));
        let value = (shape.value)();
        assert_eq!(value.len(), VALUE_BYTES);
        let (cost, to) = request_cost(&mut vm, &value);
        assert!(
            to.contains("|v1|"),
            "{}: the value does not match",
            shape.name
        );
        eprintln!(
            "{:>22} n = {n:>4} ({:>4} bytes): {:>11} instructions per request ({} over the floor of {floor})",
            shape.name,
            pattern.len(),
            cost,
            cost - floor
        );
        if cost > worst.0 {
            worst = (cost, format!("{} at n = {n}", shape.name));
        }
    }
    eprintln!("worst: {} instructions, {}", worst.0, worst.1);
    assert!(
        worst.0 <= BUDGET,
        "{} costs {} instructions, over the budget of {BUDGET}",
        worst.1,
        worst.0
    );
}

/// A value one byte over the bound never reaches the engine: the request costs about what a
/// short value does, whatever the regex.
#[test]
fn a_value_over_the_bound_costs_no_match() {
    let mut vm = Vm::new(module(), VmOptions::default()).expect("vm");
    let n = largest(&mut vm, &|n| format!("(?:.*a){{{n}}}x"));
    assert!(vm
        .configure(rules(&format!("(?:.*a){{{n}}}x")).as_bytes())
        .expect("configure"));
    let (short, _) = request_cost(&mut vm, "aaaa");
    let (over, to) = request_cost(&mut vm, &"a".repeat(VALUE_BYTES + 1));
    assert!(to.contains("|v1|"), "{to}");
    eprintln!(
        "a 4-byte value: {short} instructions; a {}-byte one: {over}",
        VALUE_BYTES + 1
    );
    assert!(over < short * 4, "{over} against {short}");
}
