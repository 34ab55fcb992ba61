//! Embeds the git commit in the module, so Envoy's log says which build
//! runs, and has the `.wasm` linked with its code's references at their
//! shortest.
fn main() {
    // wasm-ld writes each reference it resolves (a call's function index,
    // a static's address, a type index) as a 5-byte LEB128, so that it can
    // be patched in place; `--compress-relocations` rewrites them at their
    // shortest once they are final: the same code, instruction for
    // instruction, in 18 KB less (bench/README.md, "Module size"). It needs
    // an output without DWARF (`--strip-debug`; the name section stays, for
    // the unstripped builds that measure where the bytes go).
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--compress-relocations");
        println!("cargo:rustc-link-arg-cdylib=--strip-debug");
    }
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-env-changed=CANARY_ROUTER_GIT_HASH");
    if std::env::var("CANARY_ROUTER_GIT_HASH").is_ok() {
        return;
    }
    let hash = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    if let Some(hash) = hash {
        println!("cargo:rustc-env=CANARY_ROUTER_GIT_HASH={}", hash.trim());
    }
}
