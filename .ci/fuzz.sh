#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time on its committed corpus; fails on the first
# crash (the input is left in fuzz/artifacts/<target>/). Usage: .ci/fuzz.sh [SECONDS_EACH]
# Stable toolchain, no sanitizer: the targets check the code's own assertions, and the
# libraries have no unsafe code of their own.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo fuzz build -s none
for t in $(cargo fuzz list); do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  if ! cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t crashed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
  printf '%-14s %s (%s)\n' "$t" "$runs" "$cov"
  rm -f "$log"
done
