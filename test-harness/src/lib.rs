//! Test harness of canary-router: [`host`] runs the built `.wasm` in an in-process proxy-wasm
//! host, [`envoy`] drives a real Envoy.

pub mod envoy;
pub mod fixtures;
pub mod host;
mod wasm;

pub use wasm::{filter_wasm, probe_wasm};
