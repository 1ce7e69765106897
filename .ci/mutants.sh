#!/usr/bin/env bash
# Mutation testing of the lifecycle (configuration: .cargo/mutants.toml).
#   .ci/mutants.sh full    every mutant of repro-core, then of repro-db's guard and
#                          conversion code (about 35 min on 2 cores)
#   .ci/mutants.sh ci      a bounded subset for CI: the mutants in what the last commit
#                          changed, or when that touches none, one of 40 fixed shards (picked
#                          by the commit count, so successive commits cover everything)
# Fails if a mutant in the set is missed. Results: mutants.out/ (missed.txt, caught.txt...).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}
command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
case "$mode" in
  full)
    cargo mutants -p repro-core
    cargo mutants -p repro-db --output mutants.out/repro-db
    ;;
  ci)
    diff=$(mktemp)
    git diff HEAD~1 HEAD -- repro-core/src repro-db/src > "$diff" || true
    n=0
    if [ -s "$diff" ]; then
      n=$(cargo mutants -p repro-core -p repro-db --list --in-diff "$diff" | wc -l)
    fi
    if [ "$n" -gt 0 ] && [ "$n" -le 80 ]; then
      echo "mutants of the last commit: $n"
      cargo mutants -p repro-core -p repro-db --in-diff "$diff"
    else
      k=$(( $(git rev-list --count HEAD) % 40 ))
      echo "last commit: $n mutants in the core and storage; running shard $k/40 instead"
      cargo mutants -p repro-core -p repro-db --shard "$k/40"
    fi
    ;;
  *) echo "usage: $0 [full|ci]" >&2; exit 2 ;;
esac
