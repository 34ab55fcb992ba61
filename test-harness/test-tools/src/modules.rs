//! Finding (building) the `.wasm` modules the in-process host runs: the filter, and the host's
//! own probe module.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

const TARGET: &str = "wasm32-wasip1";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest)
}

/// The filter's release `.wasm` for `wasm32-wasip1`.
///
/// `$CANARY_ROUTER_WASM` when set (nothing is built). Otherwise, the first call in the process
/// runs `cargo build -p canary-router --release --target wasm32-wasip1` with
/// `CARGO_TARGET_DIR=<workspace>/target/wasm` (a target dir of its own, so it does not wait on
/// the lock of the `cargo test` that runs us), after `rustup target add wasm32-wasip1` if the
/// target is missing, and returns
/// `<workspace>/target/wasm/wasm32-wasip1/release/canary_router.wasm`.
/// Cargo decides whether anything needs rebuilding.
///
/// # Panics
/// If the build fails (with cargo's stderr), or `$CANARY_ROUTER_WASM` is not a file.
pub fn filter_wasm() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(given) = std::env::var_os("CANARY_ROUTER_WASM").filter(|v| !v.is_empty()) {
            let given = PathBuf::from(given);
            let given = std::path::absolute(&given).unwrap_or(given);
            assert!(
                given.is_file(),
                "CANARY_ROUTER_WASM={} is not a file",
                given.display()
            );
            return given;
        }
        let root = workspace_root();
        let target_dir = root.join("target/wasm");
        build(
            "the canary-router filter",
            root,
            &["-p", "canary-router"],
            &target_dir,
        );
        target_dir.join(TARGET).join("release/canary_router.wasm")
    })
}

/// The probe module the host's own tests run (`test-harness/wasm-host/testdata/probe`, a tiny
/// proxy-wasm module that calls whatever its inputs ask), built like [`filter_wasm`] into
/// `<workspace>/target/probe`.
///
/// # Panics
/// If the build fails.
pub fn probe_wasm() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = workspace_root();
        let dir = root.join("test-harness/wasm-host/testdata/probe");
        let target_dir = root.join("target/probe");
        let wasm = target_dir.join(TARGET).join("release/probe.wasm");
        // Each test process calls this (nextest runs one per test): skip even cargo's
        // no-op build when the module is newer than every file of the probe.
        let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
        if built.is_none() || built < newest_change(&dir) {
            build("the host's probe module", &dir, &[], &target_dir);
        }
        wasm
    })
}

/// Latest modification time of the files under `dir`.
fn newest_change(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let changed = if path.is_dir() {
            newest_change(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(changed);
    }
    newest
}

/// Runs one release build for `wasm32-wasip1` in `dir`; panics with cargo's stderr on failure.
fn build(what: &str, dir: &Path, args: &[&str], target_dir: &Path) {
    // One build at a time in this process (cargo's lock serializes across processes).
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
    ensure_target();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "test-tools: building {what}: cargo build {} --release --target {TARGET} \
         (in {}, CARGO_TARGET_DIR={})",
        args.join(" "),
        dir.display(),
        target_dir.display()
    );
    let output = Command::new(cargo)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_BUILD_TARGET")
        .arg("build")
        .args(args)
        .args(["--release", "--target", TARGET])
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    assert!(
        output.status.success(),
        "building {what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Adds the `wasm32-wasip1` target with rustup when rustup is there and the target is not.
fn ensure_target() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let Ok(list) = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
        else {
            return; // No rustup: let cargo say what is missing.
        };
        let installed = String::from_utf8_lossy(&list.stdout);
        if installed.lines().any(|line| line.trim() == TARGET) {
            return;
        }
        eprintln!("test-tools: running `rustup target add {TARGET}`");
        let status = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("test-tools: `rustup target add {TARGET}` failed: {status:?}");
        }
    });
}
