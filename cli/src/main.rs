//! `canaryctl`: the command-line companion of canary-router.

fn main() {}
