#!/usr/bin/env bash
# The benchmark of bench/README.md, by one command. Prints the report and
# writes it to docs/benchmarks.md (generated: never edit that file by hand).
#   bench/run.sh             full run (about 1 h 45 min on 2 cores; --rounds 3
#                            --ab-pairs 8 --no-opt-levels: about 50 minutes)
#   bench/run.sh --smoke     one short round of each configuration; prints only
#   bench/run.sh --help      every option
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# The wasm32 target, Envoy, wrk and h2load (to stderr: stdout is the report).
scripts/setup.sh >&2
if ! command -v valgrind >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "run.sh: installing valgrind (instruction counts per decision)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
  else
    echo "run.sh: no valgrind: instruction counts are skipped" >&2
  fi
fi
cargo build --quiet --profile tools -p bench
"$ROOT/target/tools/canary-bench" "$@"
# Then Envoy's memory at 1, 2 and 4 workers, into the report's Memory section
# (skipped when the report was not written to docs/benchmarks.md).
case " $* " in
  *" --smoke "*|*" --no-out "*|*" --out "*|*" --no-envoy "*) ;;
  *) "$ROOT/target/tools/canary-bench" memory --out docs/benchmarks.md ;;
esac
