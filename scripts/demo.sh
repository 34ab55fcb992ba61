#!/usr/bin/env bash
# Builds the filter and shows it routing in a real Envoy: each example of
# examples/ is started, sent traffic, and the split it produced is printed.
# Compiles only the filter (wasm32) and the demo: no wasm runtime,
# no LTO for the native tools (profile `tools`). Shows cargo's progress.
# The last step runs the dynamic module (examples/native-module): the demo
# builds the .so there (scripts/build-module.sh's build), after the wasm
# steps have been shown, unless CANARY_ROUTER_MODULE names one.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
start=$(date +%s)
echo "== demo 1/4: setup (wasm32-wasip1 target, Envoy, load tools)"
"$ROOT/scripts/setup.sh"
echo "== demo 2/4: the filter (.wasm)"
"$ROOT/scripts/build-wasm.sh"
export CANARY_ROUTER_WASM="$WASM"
ENVOY_BIN="$(find_envoy)"
export ENVOY_BIN
echo "== demo 3/4: the demo driver (cargo build --profile tools -p envoy-runner --bin canary-demo)"
cargo build --profile tools -p envoy-runner --bin canary-demo
echo "== demo 4/4: the examples in Envoy ($(( $(date +%s) - start )) s since start)"
exec "$ROOT/target/tools/canary-demo" "$@"
