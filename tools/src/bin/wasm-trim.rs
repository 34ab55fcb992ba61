//! `wasm-trim FILE`: removes from a built `canary_router.wasm` the exports of
//! the callbacks the filter leaves at the SDK's default ([`canary_tools::exports`]),
//! in place. `scripts/build-wasm.sh` runs it; `canaryctl wasm-trim` does the same.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(file), None) = (args.next(), args.next()) else {
        eprintln!("usage: wasm-trim FILE.wasm");
        return ExitCode::from(2);
    };
    let file = std::path::PathBuf::from(file);
    match canary_tools::exports::trim_file(&file) {
        Ok(saved) => {
            println!("{}: {saved} bytes of exports removed", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasm-trim: {e}");
            ExitCode::from(2)
        }
    }
}
