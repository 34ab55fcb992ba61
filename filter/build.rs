//! Embeds the git commit in the module, so Envoy's log says which build runs.
fn main() {
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
