//! `canaryctl`: the command-line companion of canary-router.
//!
//! Every subcommand judges rules with the filter crate's own parser
//! (`canary_router::Plugin::from_bytes`), so what `canaryctl` accepts is
//! exactly what the filter accepts, with the same JSON paths in errors.

mod bars;
mod error;
mod glue;
mod import;
mod input;
mod render;
mod simulate;
mod summary;
mod traffic_extension;
mod validate;
mod verify;
mod watch;
mod yaml;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CliError;

/// canaryctl: validate, simulate, import, render, watch and verify canary-router rules.
#[derive(Debug, Parser)]
#[command(
    name = "canaryctl",
    version,
    about,
    long_about = None,
    after_help = "\
Examples:
  canaryctl validate examples/weighted/rules.json
  canaryctl simulate examples/weighted/rules.json -n 100000
  canaryctl import reviews-virtualservice.yaml -o yaml
  canaryctl render --image oci://registry/canary-router:0.1.0 examples/weighted/rules.json
  canaryctl watch --admin http://127.0.0.1:15000
  canaryctl verify rules.json --admin http://127.0.0.1:15000

Exit codes: 0 success, 1 rules rejected (or an import that cannot be carried over),
2 usage error or a file / endpoint that cannot be read."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Simulate(Box<simulate::Args>),
    Import(import::Args),
    Render(Box<render::Args>),
    Watch(watch::Args),
    Verify(verify::Args),
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`canaryctl ... | head`), like other CLI tools.
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::Verify(args) => verify::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("error: {}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}
