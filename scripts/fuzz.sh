#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 180) and prints the executions of
# each, from libFuzzer's final stats. Needs a nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly`, `cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh [SECONDS]
#
# Targets are built once, as `cargo fuzz` does by default (optimised, with debug assertions and
# overflow checks) but without a sanitizer: the crates forbid `unsafe`, so AddressSanitizer would
# only slow the runs. Set FUZZ_SANITIZER=address to have it anyway. Corpora grow in
# fuzz/corpus/<target>/; a crash stops the script and leaves its input in
# fuzz/artifacts/<target>/. FUZZ_TARGETS="a b" runs only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
seconds="${1:-180}"
sanitizer="${FUZZ_SANITIZER:-none}"
# Apart from the main build: nightly, instrumented, and another target triple.
target_dir="${FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR/fuzz}"
flags=(-s "$sanitizer" --target-dir "$target_dir")
cd fuzz
targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
cargo +nightly fuzz build "${flags[@]}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
printf '%-28s %14s %10s\n' target executions exec/s
for target in $targets; do
  log="$logs/$target.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  printf '%-28s %14s %10s\n' "$target" "${runs:-?}" "${rate:-?}"
done
