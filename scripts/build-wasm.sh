#!/usr/bin/env bash
# Builds the release .wasm and prints its size.
set -euo pipefail
source "$(dirname "$0")/env.sh"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo build --quiet -p canary-router --release --target wasm32-wasip1
# Drop the exports of callbacks the filter leaves at the SDK's default, so
# Envoy skips those calls into the VM on every request (canary_router::exports).
cargo run --quiet -p canaryctl -- wasm-trim "$WASM" >/dev/null
size=$(stat -c %s "$WASM")
echo "built ${WASM#$ROOT/}: $size bytes ($((size / 1024)) KiB)"
