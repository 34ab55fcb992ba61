#!/usr/bin/env bash
# Builds the release .wasm and prints its size.
set -euo pipefail
source "$(dirname "$0")/env.sh"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo build --quiet -p canary-router --release --target wasm32-wasip1
size=$(stat -c %s "$WASM")
echo "built ${WASM#$ROOT/}: $size bytes ($((size / 1024)) KiB)"
