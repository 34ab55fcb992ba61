//! Build tools of canary-router, apart from the filter and from the test
//! hosts: [`exports`] trims the exports of a module built with the
//! proxy-wasm SDK (the benchmark's wasm floor), [`modules`] finds or builds the
//! `.wasm` modules the tests load, and [`fixtures`] holds the rule sets of
//! tests and benchmarks. It depends on `serde_json` only, so that nothing
//! which needs it (the demo, the benchmark, the Envoy tests) compiles a wasm
//! runtime.

pub mod exports;
pub mod fixtures;
pub mod modules;

pub use modules::{filter_wasm, probe_wasm, workspace_root};
