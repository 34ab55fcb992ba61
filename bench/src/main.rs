//! `canary-bench`: see bench/README.md.
fn main() {}
