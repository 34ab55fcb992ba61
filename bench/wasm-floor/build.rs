//! Links the `.wasm` as canary-router's is linked (`filter/build.rs`): with
//! its code's references at their shortest, so that the two modules compare
//! like for like.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--compress-relocations");
        println!("cargo:rustc-link-arg-cdylib=--strip-debug");
    }
}
