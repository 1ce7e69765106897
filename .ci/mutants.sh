#!/usr/bin/env bash
# Mutation testing of the lifecycle (configuration: .cargo/mutants.toml).
#   .ci/mutants.sh full    every mutant of repro-core, then of repro-db's guard and
#                          conversion code (about 35 min on 2 cores)
#   .ci/mutants.sh ci      a bounded subset for CI: the mutants in what the last commit
#                          changed, or when that touches none, one of 40 fixed shards (picked
#                          by the commit count, so successive commits cover everything)
# Fails if a mutant in the set is missed. A mutant whose tests time out (an endless loop) is
# caught, not missed: cargo-mutants' exit status 3 counts as success here.
# Results: mutants.out/ (missed.txt, caught.txt...).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}
command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
case "$mode" in
  full)
    cargo mutants -p repro-core -j 2
    cargo mutants -p repro-db -j 2 --output mutants.out/repro-db
    ;;
  ci)
    diff=$(mktemp)
    git diff HEAD~1 HEAD -- repro-core/src repro-db/src > "$diff" || true
    n=0
    if [ -s "$diff" ]; then
      n=$(cargo mutants -p repro-core -p repro-db --list --in-diff "$diff" 2>/dev/null | grep -c '^repro-' || true)
    fi
    if [ "$n" -gt 0 ] && [ "$n" -le 80 ]; then
      echo "mutants of the last commit: $n"
      cargo mutants -p repro-core -p repro-db -j 2 --in-diff "$diff" || [ $? -eq 3 ]
    else
      k=$(( $(git rev-list --count HEAD) % 40 ))
      echo "last commit: $n mutants in the core and storage; running shard $k/40 instead"
      cargo mutants -p repro-core -p repro-db -j 2 --shard "$k/40" || [ $? -eq 3 ]
    fi
    ;;
  *) echo "usage: $0 [full|ci]" >&2; exit 2 ;;
esac
