#!/usr/bin/env bash
# Builds the filter and shows it routing in a real Envoy: each example of
# examples/ is started, sent traffic, and the split it produced is printed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh" >/dev/null
"$ROOT/scripts/build-wasm.sh"
export CANARY_ROUTER_WASM="$WASM"
ENVOY_BIN="$(find_envoy)"
export ENVOY_BIN
cargo run --quiet --release -p canary-test-harness --bin canary-demo
