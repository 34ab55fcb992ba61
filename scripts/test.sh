#!/usr/bin/env bash
# The test command: installs what is missing, builds the .wasm, runs every
# test (unit, in-process host, and end-to-end in a real Envoy).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build-wasm.sh"
export CANARY_ROUTER_WASM="$WASM"
ENVOY_BIN="$(find_envoy)"
export ENVOY_BIN
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --no-fail-fast "$@"
fi
