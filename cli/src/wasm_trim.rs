//! `canaryctl wasm-trim`: removes from a built `canary_router.wasm` the
//! exports of the proxy-wasm callbacks the filter does not implement, so
//! that Envoy skips calling into the VM for them on every request
//! (`canary_tools::exports`). `scripts/build-wasm.sh` runs it.

use std::path::PathBuf;

use canary_tools::exports;

use crate::error::{CliError, Result};

/// Remove the exports of callbacks canary-router leaves at the SDK's default.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Remove from a built canary_router.wasm the exports of the proxy-wasm callbacks \
the filter does not implement (request and response bodies and trailers, the access-log hook, \
the done notification). Envoy calls every callback a module exports, once or more per request; \
a missing one is skipped, with the answer the SDK's default would give. Only the export section \
changes; trimming twice changes nothing. scripts/build-wasm.sh runs this after cargo.",
    after_help = "\
Examples:
  canaryctl wasm-trim target/wasm/wasm32-wasip1/release/canary_router.wasm

Exit codes: 0 trimmed (or nothing to trim), 2 the file cannot be read, written or parsed."
)]
pub struct Args {
    /// The module to trim in place.
    #[arg(value_name = "WASM")]
    pub file: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    let saved = exports::trim_file(&args.file).map_err(CliError::usage)?;
    if saved == 0 {
        println!(
            "{}: exports none of the skipped callbacks; left as it is",
            args.file.display()
        );
    } else {
        println!(
            "{}: removed the exports of {} ({saved} bytes)",
            args.file.display(),
            exports::SKIPPED_CALLBACKS.join(", ")
        );
    }
    Ok(())
}
