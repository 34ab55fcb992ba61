//! Shared setup of the host tests: the probe module, compiled once per test binary.

#![allow(dead_code)]

use std::sync::OnceLock;
use wasm_host::{Module, Vm, VmOptions};

/// The probe module (test-harness/wasm-host/testdata/probe), compiled once per test binary.
pub fn probe() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| Module::load(test_tools::probe_wasm()).expect("the probe module loads"))
}

/// A probe VM with `options`, configured with `config`.
pub fn probe_vm_with(options: VmOptions, config: &str) -> Vm {
    let mut vm = Vm::new(probe(), options).expect("the probe instantiates");
    assert!(vm.configure(config.as_bytes()).expect("configure runs"));
    vm
}

/// A probe VM with default options, configured with an empty configuration.
pub fn probe_vm() -> Vm {
    probe_vm_with(VmOptions::default(), "")
}

/// Request headers with `x-probe: ops`.
pub fn probe_request(ops: &str) -> Vec<(&str, &str)> {
    vec![
        (":authority", "backend"),
        (":path", "/"),
        (":method", "GET"),
        ("x-probe", ops),
    ]
}
