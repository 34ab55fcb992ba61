//! The ecds-reload example with its watched file in a directory of the
//! test's own, and installing new ECDS files the way its README says.

use std::path::{Path, PathBuf};

use envoy_runner::{example_dir, resource_file_for, Build, EnvoyConfig};
use serde_json::Value;

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh directory for the watched ECDS file.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("canary-{tag}-{}-{nanos:x}", std::process::id()));
    or_panic(std::fs::create_dir_all(&dir));
    dir
}

/// Installs an ECDS file the way the README says: a complete new file moved
/// over the watched one (its wasm filter rewritten into the module's when
/// the tests run against the module, `CANARY_ROUTER_BUILD=module`).
pub fn install_ecds(dir: &Path, example_file: &str) {
    let bytes = or_panic(std::fs::read(example_dir("ecds-reload").join(example_file)));
    install_ecds_bytes(dir, &bytes);
}

/// The ecds-reload example with its watched file moved to `dir`.
pub fn ecds_config(dir: &Path) -> EnvoyConfig {
    let mut config = or_panic(EnvoyConfig::from_example("ecds-reload"));
    let mut found = 0;
    config.for_each_object_mut(|obj| {
        if let Some(src) = obj
            .get_mut("path_config_source")
            .and_then(Value::as_object_mut)
        {
            assert_eq!(
                src["path"], "/tmp/canary-router-ecds/canary-router.yaml",
                "the path the README uses"
            );
            src.insert(
                "path".into(),
                dir.join("canary-router.yaml").to_string_lossy().into(),
            );
            src.insert(
                "watched_directory".into(),
                serde_json::json!({ "path": dir.to_string_lossy() }),
            );
            found += 1;
        }
    });
    assert_eq!(
        found, 1,
        "one path_config_source in examples/ecds-reload/envoy.yaml"
    );
    config
}

/// Installs ECDS file bytes (a complete new file moved over the watched
/// one), for the build under test.
pub fn install_ecds_bytes(dir: &Path, bytes: &[u8]) {
    let next = dir.join(".next");
    or_panic(std::fs::write(
        &next,
        or_panic(resource_file_for(Build::from_env(), bytes)),
    ));
    or_panic(std::fs::rename(&next, dir.join("canary-router.yaml")));
}
