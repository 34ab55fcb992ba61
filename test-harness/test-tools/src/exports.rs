//! Trimming a module built with the proxy-wasm Rust SDK: the SDK exports a
//! function for every callback of the ABI, and Envoy calls each one the
//! module exports, for every request, whether or not the module does
//! anything in it (1% to 3% of Envoy's CPU per request, measured when
//! canary-router still used the SDK's dispatcher).
//! The host skips a callback the module does not export (proxy-wasm-cpp-host
//! answers as the SDK's default would: continue, done).
//!
//! canary-router itself has its own dispatcher and exports only what it
//! implements (`filter-runtime/src/proxy_wasm/exports.rs`); a test checks
//! that it exports none of [`SKIPPED_CALLBACKS`]. The benchmark trims its wasm floor, which uses
//! the SDK, so that the two differ only in what they do per request.
//!
//! Only the export section changes: the functions stay in the module, and
//! every other byte is kept.

use std::fmt;

/// Exports of callbacks canary-router does not implement (an SDK module's
/// defaults: continue, done, nothing logged). Each is called once or more
/// per request when exported: bodies and trailers in both directions, the
/// access-log hook, and the done notification (whose default answer,
/// "done", is also the host's answer when it is missing).
///
/// A test (`the_built_filter_exports_none_of_the_skipped_callbacks`) fails
/// if the filter starts exporting one of them.
pub const SKIPPED_CALLBACKS: [&str; 6] = [
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_log",
    "proxy_on_done",
];

/// Why a module could not be trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrimError {
    /// The bytes do not start with the wasm magic number and version 1.
    NotWasm,
    /// A section or an export entry runs past the end of the module.
    Truncated {
        /// Byte offset where reading stopped.
        at: usize,
    },
    /// An export name is not UTF-8.
    BadName {
        /// Byte offset of the name.
        at: usize,
    },
}

impl fmt::Display for TrimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrimError::NotWasm => write!(f, "not a WebAssembly module (bad magic or version)"),
            TrimError::Truncated { at } => write!(f, "module truncated at byte {at}"),
            TrimError::BadName { at } => write!(f, "export name at byte {at} is not UTF-8"),
        }
    }
}

impl std::error::Error for TrimError {}

/// The module without the exports named in `drop`, or `None` when it
/// exports none of them (trimming is idempotent).
pub fn trim_exports(module: &[u8], drop: &[&str]) -> Result<Option<Vec<u8>>, TrimError> {
    const HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    if module.get(..8) != Some(&HEADER[..]) {
        return Err(TrimError::NotWasm);
    }
    let mut out = Vec::with_capacity(module.len());
    out.extend_from_slice(&HEADER);
    let mut at = 8;
    let mut dropped = 0;
    while at < module.len() {
        let id = module.get(at).copied().ok_or(TrimError::Truncated { at })?;
        let (size, body_at) = read_leb(module, at + 1)?;
        let body = module
            .get(body_at..body_at.saturating_add(size))
            .ok_or(TrimError::Truncated { at: body_at })?;
        if id == 7 {
            let (body, n) = trim_export_section(body, body_at, drop)?;
            dropped += n;
            out.push(id);
            write_leb(&mut out, body.len());
            out.extend_from_slice(&body);
        } else {
            out.extend_from_slice(module.get(at..body_at + size).unwrap_or_default());
        }
        at = body_at + size;
    }
    Ok((dropped > 0).then_some(out))
}

/// Trims the module at `path` in place; returns the number of bytes saved
/// (0: nothing to trim, the file is left untouched). The trimmed module is
/// written beside it and renamed over it, so a process reading the file at
/// the same time (a test loading it into Envoy) sees one whole module or
/// the other.
pub fn trim_file(path: &std::path::Path) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match trim_exports(&bytes, &SKIPPED_CALLBACKS) {
        Ok(Some(trimmed)) => {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(format!(".trim-{}", std::process::id()));
            let tmp = std::path::PathBuf::from(tmp);
            std::fs::write(&tmp, &trimmed)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    format!("writing {}: {e}", path.display())
                })?;
            Ok(bytes.len() - trimmed.len())
        }
        Ok(None) => Ok(0),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The export section's body without the dropped entries, and how many were dropped.
fn trim_export_section(
    body: &[u8],
    offset: usize,
    drop: &[&str],
) -> Result<(Vec<u8>, usize), TrimError> {
    let truncated = |at: usize| TrimError::Truncated { at: offset + at };
    let (count, mut at) = read_leb(body, 0).map_err(|_| truncated(0))?;
    let mut kept = Vec::new();
    let mut dropped = 0;
    for _ in 0..count {
        let start = at;
        let (len, name_at) = read_leb(body, at).map_err(|_| truncated(at))?;
        let name = body
            .get(name_at..name_at.saturating_add(len))
            .ok_or(truncated(name_at))?;
        let name = std::str::from_utf8(name).map_err(|_| TrimError::BadName {
            at: offset + name_at,
        })?;
        // kind (one byte), then the index.
        let (_, end) = read_leb(body, name_at + len + 1).map_err(|_| truncated(name_at + len))?;
        if drop.contains(&name) {
            dropped += 1;
        } else {
            kept.push(body.get(start..end).unwrap_or_default());
        }
        at = end;
    }
    let mut out = Vec::with_capacity(body.len());
    write_leb(&mut out, kept.len());
    for entry in kept {
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(body.get(at..).unwrap_or_default());
    Ok((out, dropped))
}

/// An unsigned LEB128 (up to 32 bits) at `at`; returns it and where it ends.
fn read_leb(bytes: &[u8], mut at: usize) -> Result<(usize, usize), TrimError> {
    let mut value = 0usize;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(at).ok_or(TrimError::Truncated { at })?;
        at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, at));
        }
    }
    Err(TrimError::Truncated { at })
}

fn write_leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one function (type `() -> ()`), exported under `names`,
    /// and a custom section after the exports.
    fn module(names: &[&str]) -> Vec<u8> {
        let mut m = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type section
        m.extend_from_slice(&[3, 2, 1, 0]); // function section
        let mut exports = Vec::new();
        write_leb(&mut exports, names.len());
        for n in names {
            write_leb(&mut exports, n.len());
            exports.extend_from_slice(n.as_bytes());
            exports.extend_from_slice(&[0, 0]); // func 0
        }
        m.push(7);
        write_leb(&mut m, exports.len());
        m.extend_from_slice(&exports);
        m.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]); // code section
        m.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']); // custom section "xyz"
        m
    }

    #[test]
    fn only_the_named_exports_go_and_every_other_byte_stays() {
        let long = "x".repeat(200); // a name whose length takes two LEB bytes
        let before = module(&["proxy_on_log", "keep_me", &long, "proxy_on_done"]);
        let after = trim_exports(&before, &SKIPPED_CALLBACKS)
            .unwrap()
            .expect("two exports dropped");
        assert_eq!(after, module(&["keep_me", &long]));
        assert_eq!(trim_exports(&after, &SKIPPED_CALLBACKS).unwrap(), None);
    }

    #[test]
    fn broken_modules_are_refused_not_read_past() {
        assert_eq!(
            trim_exports(b"\0asm\x02\0\0\0", &[]),
            Err(TrimError::NotWasm)
        );
        let whole = module(&["proxy_on_log", "keep_me"]);
        // Cut anywhere inside the export section (it starts after the
        // header, the type and the function sections; its size fits a byte).
        let start = 8 + 6 + 4;
        let end = start + 2 + usize::from(whole[start + 1]);
        for cut in start + 1..end {
            let r = trim_exports(&whole[..cut], &SKIPPED_CALLBACKS);
            assert!(
                matches!(r, Err(TrimError::Truncated { .. })),
                "cut at {cut}: {r:?}"
            );
        }
    }

    /// Envoy would skip a callback the filter implements: its work would
    /// silently never run. Keep the list, the proxy-wasm adapter and the
    /// runtime's exports in step.
    #[test]
    fn the_filter_implements_none_of_the_skipped_callbacks() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut read = 0;
        for dir in [
            "filter/src/adapters/proxy_wasm",
            "filter-runtime/src/proxy_wasm",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                read += 1;
                let exports = SKIPPED_CALLBACKS.iter().map(|c| format!("fn {c}("));
                let methods = [
                    "on_http_request_body",
                    "on_http_request_trailers",
                    "on_http_response_body",
                    "on_http_response_trailers",
                    "on_log",
                    "on_done",
                ]
                .iter()
                .map(|m| format!("fn {m}("));
                for method in exports.chain(methods) {
                    assert!(
                        !text.contains(&method),
                        "{} implements `{method}`, whose export the build removes (exports::SKIPPED_CALLBACKS)",
                        path.display()
                    );
                }
            }
        }
        assert!(read >= 10, "read {read} files");
    }
}
