#!/usr/bin/env bash
# Runs every cargo-fuzz target of canary-router for a time budget each.
#
#   fuzz/run.sh [seconds-per-target] [target...]     (default: 60 s, every target)
#
# Installs what it needs (a nightly toolchain must already be there; cargo-fuzz
# is installed with `cargo install` if missing). New inputs found go to a
# scratch corpus under fuzz/target/corpus (the committed seeds in
# fuzz/corpus/<target>/ are only read); a crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run. Prints one line per target:
#   fuzz: <target> executions=<n> seconds=<s> new_units=<n> peak_rss_mb=<n> result=<ok|FAILED>
# and writes the same as TSV to fuzz/target/results.tsv (read by
# scripts/reliability-report.sh).
#
# Bounds: inputs up to FUZZ_MAX_LEN bytes (default 65536), a unit slower than
# FUZZ_TIMEOUT seconds (default 10) or a process above FUZZ_RSS_MB (default
# 2048) counts as a failure. FUZZ_JOBS=<n> runs n fuzzing processes per target
# (for long runs on a bigger machine). To fuzz for hours, see fuzz/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-60}"
shift || true
max_len="${FUZZ_MAX_LEN:-65536}"
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-2048}"
jobs="${FUZZ_JOBS:-1}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz/run.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The grammars write every field the configuration declares (or say which
# they leave to the decode target): a plain test of the fuzz crate's library.
echo "fuzz/run.sh: checking the grammars against the declarations (cargo test --lib)" >&2
cargo +nightly test --lib --quiet >&2

echo "fuzz/run.sh: building ${targets[*]}" >&2
cargo +nightly fuzz build -O >&2

mkdir -p target
results="target/results.tsv"
printf 'target\texecutions\tseconds\tnew_units\tpeak_rss_mb\tresult\n' >"$results"
failed=0
for t in "${targets[@]}"; do
    scratch="target/corpus/$t"
    mkdir -p "$scratch" "corpus/$t" "artifacts/$t"
    log="target/fuzz-$t.log"
    start=$(date +%s)
    parallel=()
    if [ "$jobs" -gt 1 ]; then
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    set +e
    cargo +nightly fuzz run -O "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout_s" \
        -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -print_final_stats=1 \
        "${parallel[@]}" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    # With -jobs, each job logs to fuzz-<n>.log in the current directory.
    if [ "$jobs" -gt 1 ]; then
        cat fuzz-*.log >>"$log" 2>/dev/null || true
        rm -f fuzz-*.log
    fi
    execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
    new=$(grep -h 'stat::new_units_added' "$log" | awk '{s += $2} END {print s + 0}')
    rss=$(grep -h 'stat::peak_rss_mb' "$log" | awk '{if ($2 > m) m = $2} END {print m + 0}')
    result=ok
    if [ "$rc" -ne 0 ] || grep -q 'ERROR: libFuzzer\|panicked at\|SUMMARY: .*Sanitizer' "$log"; then
        result=FAILED
        failed=1
        echo "---- $t failed; tail of $log:" >&2
        tail -40 "$log" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$execs" "$elapsed" "$new" "$rss" "$result" >>"$results"
    # libFuzzer draws its seed from the clock unless told one: say which.
    seed=$(grep -h -m1 -o 'INFO: Seed: [0-9]*' "$log" | awk '{print $3}' || true)
    echo "fuzz/run.sh: $t ran with -seed=${seed:-?} (replay the run with that seed)" >&2
    echo "fuzz: $t executions=$execs seconds=$elapsed new_units=$new peak_rss_mb=$rss result=$result"
done
exit "$failed"
