#!/usr/bin/env bash
# A canary that drives itself, in one Envoy, in about two minutes: starts
# this example with its ramps beginning 15 s from now, sends traffic to
# both services, and shows what the proxy applies at each step
# (`canaryctl watch`) and whether it applies what the rules say
# (`canaryctl verify`). `backend` v2 walks 10% -> 50% -> 100%; `reviews` v2
# fails a quarter of its requests and is caught at 10%, its ramp stopped.
#
# Runs from anywhere; uses func-e when it is on PATH (`func-e run`), else
# Envoy ($ENVOY_BIN, `envoy` on PATH, or the project's .venv).
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$ROOT"

"$ROOT/scripts/build-wasm.sh"
# canaryctl: $CANARYCTL, else built with the tools profile (the first
# build compiles its wasm runtime too: a few minutes).
canaryctl=${CANARYCTL:-}
if [ -z "$canaryctl" ]; then
  echo "self-driving: building canaryctl (cargo build --profile tools -p canaryctl)"
  cargo build --quiet --profile tools -p canaryctl
  canaryctl="$ROOT/target/tools/canaryctl"
fi

work=$(mktemp -d)
now=$(date +%s)
start=$(date -u -d "@$((now + 15))" +%FT%TZ)
# The ramps' start, 15 s from now (the files say 2026-12-07T10:00:00Z).
sed "s/2026-12-07T10:00:00Z/$start/g" examples/self-driving/envoy.yaml > "$work/envoy.yaml"
sed "s/2026-12-07T10:00:00Z/$start/g" examples/self-driving/rules.json > "$work/rules.json"

if command -v func-e >/dev/null 2>&1; then
  run=(func-e run)
elif envoy=$(find_envoy); then
  run=("$envoy")
else
  echo "self-driving: no Envoy: install func-e (https://func-e.io) or run scripts/setup.sh" >&2
  exit 1
fi
"${run[@]}" -c "$work/envoy.yaml" --log-path "$work/envoy.log" >"$work/access.log" 2>&1 &
envoy_pid=$!
traffic_pid=
cleanup() {
  [ -n "$traffic_pid" ] && kill "$traffic_pid" 2>/dev/null || true
  kill "$envoy_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
until curl -sf http://127.0.0.1:9901/ready >/dev/null 2>&1; do
  kill -0 "$envoy_pid" 2>/dev/null || { cat "$work/envoy.log" >&2; exit 1; }
  sleep 0.2
done
echo "self-driving: Envoy is up; the ramps start at $start (files in $work)"

# About 200 requests a second to each service, 8 at a time.
( while true; do
    for host in backend reviews; do
      curl -s --no-progress-meter -o /dev/null --parallel --parallel-max 8 -H "Host: $host" "http://127.0.0.1:10000/[1-40]" 2>/dev/null || true
    done
  done ) &
traffic_pid=$!

show() {
  echo
  echo "== $1 ($(( $(date +%s) - now )) s)"
  "$canaryctl" watch --admin http://127.0.0.1:9901 --once | sed -n '/^service/,/^$/p'
  "$canaryctl" verify "$work/rules.json" --admin http://127.0.0.1:9901 || true
}
at() { sleep $(( now + $1 - $(date +%s) > 0 ? now + $1 - $(date +%s) : 0 )); }

at 10; show "before the ramps start: the routes' own weights (v1 100%)"
at 30; show "step 1: v2 at 10% (reviews v2 is failing: its guard ejects it)"
at 50; show "step 3: backend v2 at 50%; reviews stays stopped"
at 70; show "step 5: backend v2 at 100%, the ramp done; reviews still stopped"
echo
echo "== what the proxy logged"
grep -E "guard ejected|stopped at step" "$work/envoy.log" | sed 's/^.*wasm log [^:]*: //'
