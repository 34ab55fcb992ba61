#!/usr/bin/env bash
# What Envoy itself pays for a large plugin configuration, whatever filter
# reads it: Envoy's VmRSS with the wasm floor given "{}" (a), the floor
# given the benchmark's 1000-rule configuration (b), and the floor given
# "{}" with the same text in the listener's metadata (c), each a fresh
# Envoy, rounds alternating. The floor ignores its configuration, so b − a
# is Envoy's own cost of carrying and handing over the text.
#   bench/config-rss.sh [rounds]      (after `cargo build -p bench --release`
#                                      and a canary-bench run that built the floor)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
envoy="${ENVOY_BIN:-envoy}"
floor="$PWD/target/wasm/wasm32-wasip1/release/wasm_floor.wasm"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
target/release/canary-bench rules 1000 >"$dir/rules.json"
FLOOR="$floor" DIR="$dir" python3 - <<'PY'
import json, os
d, floor = os.environ["DIR"], os.environ["FLOOR"]
rules = open(f"{d}/rules.json").read()
def boot(cfg, meta=None):
    wasm = {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {"name": "f", "root_id": "f",
                       "vm_config": {"vm_id": "f", "runtime": "envoy.wasm.runtime.v8",
                                     "code": {"local": {"filename": floor}}},
                       "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                         "value": cfg}}}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "in",
           "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
           "http_filters": [{"name": "envoy.filters.http.wasm", "typed_config": wasm},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    l = {"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
         "filter_chains": [{"filters": [{"name": "hcm", "typed_config": hcm}]}]}
    if meta:
        l["metadata"] = {"filter_metadata": {"x": {"blob": meta}}}
    return {"static_resources": {"listeners": [l]},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}
json.dump(boot("{}"), open(f"{d}/a.json", "w"))
json.dump(boot(rules), open(f"{d}/b.json", "w"))
json.dump(boot("{}", rules), open(f"{d}/c.json", "w"))
PY
for w in 1 2 4; do
  for r in $(seq "$rounds"); do
    for k in a b c; do
      "$envoy" -c "$dir/$k.json" --concurrency "$w" -l error --base-id "$RANDOM$r" >/dev/null 2>&1 &
      pid=$!
      sleep 4
      printf 'workers=%s round=%s config=%s VmRSS_kB=%s\n' "$w" "$r" "$k" \
        "$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
      kill "$pid"; wait "$pid" 2>/dev/null || true
    done
  done
done
