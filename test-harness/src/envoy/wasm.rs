//! Building the filter's `.wasm` once per process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{repo_root, Error};

/// Where `CARGO_TARGET_DIR=target/wasm cargo build -p canary-router --release
/// --target wasm32-wasip1` puts the module, relative to the repo root. The
/// examples' `envoy.yaml` name this path.
pub const FILTER_WASM_RELATIVE: &str = "target/wasm/wasm32-wasip1/release/canary_router.wasm";

/// The filter module to test: `$CANARY_ROUTER_WASM` when set (another build;
/// nothing is built), else the project's filter, built (release,
/// `wasm32-wasip1`, target dir `target/wasm`) the first time this is called in
/// the process. Returns the module's absolute path; later calls return the
/// same result. Cargo decides whether anything needs rebuilding, so a stale
/// module is never used.
pub fn build_filter_wasm() -> Result<&'static Path, Error> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(given) = std::env::var_os("CANARY_ROUTER_WASM").filter(|v| !v.is_empty()) {
                let given = PathBuf::from(given);
                let given = std::path::absolute(&given).unwrap_or(given);
                return if given.is_file() {
                    Ok(given)
                } else {
                    Err(format!(
                        "CANARY_ROUTER_WASM={} is not a file",
                        given.display()
                    ))
                };
            }
            let root = repo_root();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(root)
                .env("CARGO_TARGET_DIR", root.join("target/wasm"))
                .args([
                    "build",
                    "-p",
                    "canary-router",
                    "--release",
                    "--target",
                    "wasm32-wasip1",
                ])
                .output()
                .map_err(|e| format!("running cargo to build the filter: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "building the filter failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let wasm = root.join(FILTER_WASM_RELATIVE);
            if wasm.is_file() {
                Ok(wasm)
            } else {
                Err(format!(
                    "the build succeeded but {} is missing",
                    wasm.display()
                ))
            }
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(|e| Error::new(e.clone()))
}
