#!/usr/bin/env bash
# Builds the release .wasm, trims its exports, and prints its size. Shows
# cargo's progress (set CARGO_QUIET=1 for none).
set -euo pipefail
source "$(dirname "$0")/env.sh"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
quiet=()
[ -n "${CARGO_QUIET:-}" ] && quiet=(--quiet)
echo "build-wasm: building the filter (cargo build -p canary-router --release --target wasm32-wasip1)" >&2
CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo build "${quiet[@]}" -p canary-router --release --target wasm32-wasip1
# Drop the exports of callbacks the filter leaves at the SDK's default, so
# Envoy skips those calls into the VM on every request (canary_tools::exports).
# wasm-trim is a small std-only tool of its own crate: no wasm runtime to compile.
echo "build-wasm: trimming its exports (wasm-trim, crate tools/)" >&2
cargo run "${quiet[@]}" --profile tools -p canary-tools --bin wasm-trim -- "$WASM" >/dev/null
size=$(stat -c %s "$WASM")
echo "built ${WASM#$ROOT/}: $size bytes ($((size / 1024)) KiB)"
