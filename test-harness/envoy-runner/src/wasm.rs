//! The filter's `.wasm` for the wasm filters of the examples.

use std::path::Path;

use super::Error;

/// Where `CARGO_TARGET_DIR=target/wasm cargo build -p canary-router --release
/// --target wasm32-wasip1` puts the module, relative to the repo root. The
/// examples' `envoy.yaml` name this path.
pub const FILTER_WASM_RELATIVE: &str = "target/wasm/wasm32-wasip1/release/canary_router.wasm";

/// The filter module to run: [`test_tools::filter_wasm`] (`$CANARY_ROUTER_WASM`
/// when set, else the filter built once per process into `target/wasm`), with
/// its panic on a failed build turned into an error that carries cargo's
/// output.
pub fn build_filter_wasm() -> Result<&'static Path, Error> {
    std::panic::catch_unwind(test_tools::filter_wasm).map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("the build panicked");
        Error::new(format!("no filter .wasm: {msg}"))
    })
}
