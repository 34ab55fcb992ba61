#!/usr/bin/env bash
# Builds canary-router's Envoy dynamic module (a native .so) with the
# `module` profile (release, opt-level 3, unwinding so that a panic is caught
# at the ABI boundary) and prints its size.
#   -> target/module/libcanary_router_module.so
# Load it in Envoy 1.40 with a DynamicModuleFilter (examples/native-module/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile module -p canary-router-module "$@"
so=target/module/libcanary_router_module.so
size=$(wc -c < "$so")
printf '%s: %s bytes\n' "$so" "$(printf "%'d" "$size" 2>/dev/null || echo "$size")"
