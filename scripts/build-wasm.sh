#!/usr/bin/env bash
# Builds the release .wasm and prints its size. Shows
# cargo's progress (set CARGO_QUIET=1 for none).
set -euo pipefail
source "$(dirname "$0")/env.sh"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
quiet=()
[ -n "${CARGO_QUIET:-}" ] && quiet=(--quiet)
echo "build-wasm: building the filter (cargo build -p canary-router --release --target wasm32-wasip1)" >&2
CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo build "${quiet[@]}" -p canary-router --release --target wasm32-wasip1
size=$(stat -c %s "$WASM")
echo "built ${WASM#$ROOT/}: $size bytes ($((size / 1024)) KiB)"
