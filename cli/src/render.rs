//! `canaryctl render`: the Istio manifests that deploy a rule file.

use std::path::PathBuf;

use crate::error::{CliError, Result};

/// Print the WasmPlugin (and ConfigMap) that deploy a rule file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rules.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs `render`.
pub fn run(args: &Args) -> Result<()> {
    Err(CliError::usage(format!(
        "render {}: not written yet",
        args.file.display()
    )))
}
