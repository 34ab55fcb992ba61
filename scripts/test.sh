#!/usr/bin/env bash
# The test command: installs what is missing, builds the .wasm and the
# dynamic module, runs every test (unit, in-process host, and end-to-end in a
# real Envoy), then the end-to-end suites that prove the same behaviour of
# the dynamic module (CANARY_ROUTER_BUILD=module: the runner rewrites the
# wasm filters into the module's and the ECDS files the tests install).
# e2e_fail_policy is the wasm filter's (failure_policy, a VM that dies); the
# module's own failure cases are e2e_module, and its cluster specifier's
# cases e2e_specifier, both in the first run. The module's
# soak runs 20 s per test instead of 60.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build-wasm.sh"
export CANARY_ROUTER_WASM="$WASM"
"$ROOT/scripts/build-module.sh"
export CANARY_ROUTER_MODULE="$ROOT/target/module/libcanary_router_module.so"
ENVOY_BIN="$(find_envoy)"
export ENVOY_BIN
MODULE_SUITES=(--test e2e_examples --test e2e_hostile --test e2e_oracle --test e2e_sticky_cookie --test e2e_index --test e2e_query --test e2e_reload --test e2e_guard --test e2e_ramp --test e2e_manifests --test e2e_soak)
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc --quiet
  CANARY_SOAK_SECONDS="${CANARY_SOAK_SECONDS:-20}" CANARY_ROUTER_BUILD=module cargo nextest run -p envoy-runner --no-fail-fast "${MODULE_SUITES[@]}" "$@"
else
  cargo test --workspace --no-fail-fast "$@"
  CANARY_SOAK_SECONDS="${CANARY_SOAK_SECONDS:-20}" CANARY_ROUTER_BUILD=module cargo test -p envoy-runner --no-fail-fast "${MODULE_SUITES[@]}" "$@"
fi
