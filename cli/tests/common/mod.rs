//! Running the built `canaryctl` binary in tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a run of `canaryctl` left.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// A path under the repository root, as a string.
pub fn repo(rel: &str) -> String {
    root().join(rel).display().to_string()
}

/// A fixture of cli/tests/fixtures.
pub fn fixture(name: &str) -> String {
    repo(&format!("cli/tests/fixtures/{name}"))
}

/// Runs `canaryctl args...` from the repository root, feeding `stdin`.
pub fn canaryctl(args: &[&str], stdin: Option<&str>) -> Run {
    canaryctl_env(args, stdin, &[])
}

/// Like [`canaryctl`], with extra environment variables.
pub fn canaryctl_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canaryctl"));
    cmd.args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("canaryctl starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A child that exits before reading (a usage error) closes the
        // pipe: that is its answer, not the test's failure.
        match pipe.write_all(input.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("stdin is written: {e}")
            }
            _ => {}
        }
    }
    let out = child.wait_with_output().expect("canaryctl runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `canaryctl` with the compiled filter (built once per test binary).
pub fn canaryctl_wasm(args: &[&str]) -> Run {
    let wasm = test_tools::filter_wasm().display().to_string();
    canaryctl_env(args, None, &[("CANARY_ROUTER_WASM", &wasm)])
}

/// A temp file with `text`, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Writes `text` to a fresh file named `name` in a fresh temp dir.
    pub fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "canaryctl-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("temp file");
        TempFile(path)
    }

    /// The path as a string.
    pub fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Every rule file of the examples.
pub fn example_rule_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root().join("examples")).expect("examples/") {
        let dir = dir.expect("entry").path();
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if (name.starts_with("rules") || name.starts_with("rule-file"))
                && name.ends_with(".json")
            {
                out.push(f.path().display().to_string());
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "the examples have rule files");
    out
}
