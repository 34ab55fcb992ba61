//! A disk cache of compiled modules, so that each test process (nextest runs one per test)
//! does not compile the same `.wasm` again: compiling takes seconds in a debug build,
//! loading a cached artifact milliseconds.
//!
//! Directory: `$CANARY_HOST_CACHE_DIR`, else `<workspace>/target/host-cache`; the value `off`
//! disables the cache. An entry is named by two hashes of the module bytes and of the
//! engine's compatibility hash (wasmtime version and settings), so a changed module, a new
//! wasmtime or a new rustc simply misses.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("CANARY_HOST_CACHE_DIR") {
        Some(dir) if dir == "off" => None,
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => Some(test_tools::workspace_root().join("target/host-cache")),
    }
}

/// FNV-1a, a second, independent hash of the bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    bytes.hash(&mut hasher);
    format!(
        "{:016x}{:016x}-{}.cwasm",
        hasher.finish(),
        fnv1a(bytes),
        bytes.len()
    )
}

/// Compiles `bytes`, or loads the artifact a previous process cached for them.
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
    let Some(dir) = cache_dir() else {
        return Module::new(engine, bytes);
    };
    let path = dir.join(entry_name(engine, bytes));
    if path.is_file() {
        // SAFETY: the file is an artifact this function serialized with this engine's
        // settings (its name carries the hash of the module bytes and of the engine's
        // compatibility hash), written under a temporary name and renamed into place, so it
        // is complete; wasmtime also checks its header against the engine. Only someone
        // writing into the cache directory by hand could break that.
        if let Ok(module) = unsafe { Module::deserialize_file(engine, &path) } {
            return Ok(module);
        }
    }
    let module = Module::new(engine, bytes)?;
    if let Ok(artifact) = module.serialize() {
        store(&dir, &path, &artifact);
    }
    Ok(module)
}

/// Writes `artifact` at `path` atomically; a failure only costs a later recompilation.
fn store(dir: &Path, path: &Path, artifact: &[u8]) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!(
        "tmp.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    if std::fs::write(&tmp, artifact).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
