#!/usr/bin/env bash
# Orchestration overhead of repro against Snakemake, for the same lifecycle (prestage ->
# reco per file -> merge per 50 files -> catalog update -> cleanup, per dataset) where no
# job does real work: both wall times are what the orchestrator itself costs.
#
#   bench/snakemake/compare.sh                      # 2,000 and 10,000 files
#   SIZES="200 2000" bench/snakemake/compare.sh
#
# Each size is 2 datasets x SIZE/2 raw files.
#   repro:     `repro demo --datasets 2 --files SIZE/2 --workers 2`: a fresh SQLite database
#              and the sim backend with its default failures (5% of reco jobs, 2% of merge
#              jobs and 1% of all jobs lost), which repro detects and retries; so repro does
#              *more* work than Snakemake, whose jobs never fail.
#   snakemake: ./Snakefile in a fresh directory, local execution on 2 cores; see
#              SNAKEMAKE_FLAGS below for why these flags.
#
# Snakemake is pinned: snakemake==9.27.1 (it exists on PyPI and needs Python >= 3.11),
# installed into a virtual environment that is created on first use and reused after.
#
# Environment:
#   SIZES           total raw files per run, space-separated (default "2000 10000")
#   REPRO           repro binary (default target/release/repro; target/debug/repro, with a
#                   warning, if there is no release build: its times are then far higher)
#   SNAKEMAKE_VENV  the virtual environment (default /tmp/repro-snakemake-venv)
#   PYTHON          Python (>= 3.11) that creates it (default python3)
#   SNAKEMAKE_JOBS  run (default) or shell: how the Snakefile's jobs are written
#   SNAKEMAKE_FLAGS flags besides -s, --cores and --config (default: the tuned ones below)
#   RUNS            runs of each tool at each size; the fastest counts (default 1)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
snakemake_version=9.27.1
venv=${SNAKEMAKE_VENV:-/tmp/repro-snakemake-venv}
python=${PYTHON:-python3}
sizes=${SIZES:-2000 10000}
runs=${RUNS:-1}
cores=2
jobs=${SNAKEMAKE_JOBS:-run}
# Snakemake at its fastest for this workflow (measured with 9.27.1 on 2 cores, 2 x 500
# files, 2,025 jobs): `run:` jobs are spawned as a whole new Snakemake process each unless
# --force-use-threads (2 x 100 files: 464 s, against 6 s with `shell:` jobs), so it is
# set. With it, the other defaults (ILP scheduler, at most 100 jobs started a second,
# progress on stderr) took 44 s; the greedy scheduler 23 s; no rate limit as well 15 s;
# --quiet as well 13 s. `shell:` jobs (a bash per job) are slower than `run:` ones in
# threads: 19 s against 15 s tuned, 67 s against 44 s untuned.
default_flags="--force-use-threads --scheduler greedy --max-jobs-per-timespan 1000000/1s --quiet all"
flags=${SNAKEMAKE_FLAGS-$default_flags}

repro=${REPRO:-$root/target/release/repro}
repro_note=
if [ ! -x "$repro" ]; then
  if [ -z "${REPRO:-}" ] && [ -x "$root/target/debug/repro" ]; then
    echo "warning: no $repro (cargo build --release -p repro-cli); using the debug build," \
      "whose times are several times a release build's" >&2
    repro=$root/target/debug/repro
    repro_note=" (a debug build: indicative only)"
  else
    echo "error: no repro binary at $repro" >&2
    exit 1
  fi
fi

# The pinned Snakemake, in its own virtual environment.
if [ ! -x "$venv/bin/snakemake" ] \
  || [ "$("$venv/bin/snakemake" --version 2>/dev/null)" != "$snakemake_version" ]; then
  echo "installing snakemake==$snakemake_version into $venv ..." >&2
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "error: snakemake $snakemake_version needs Python >= 3.11; set PYTHON" >&2
    exit 1
  }
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "snakemake==$snakemake_version" || {
    echo "error: pip could not install snakemake==$snakemake_version (is the index reachable?)" >&2
    exit 1
  }
fi
snakemake=$venv/bin/snakemake

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
fastest() { printf '%s\n' "$@" | sort -g | head -n 1; }

# One repro run: prints its wall time in seconds.
run_repro() {
  local files=$1 dir t0 t1
  dir=$(mktemp -d "$work/repro.XXXXXX")
  t0=$(now)
  (cd "$dir" && TMPDIR=$dir "$repro" -q demo --datasets 2 --files "$files" \
    --workers "$cores" > "$dir/out")
  t1=$(now)
  grep -q '^2 datasets: 2 CLEANED' "$dir/out" || {
    echo "error: repro demo did not clean both datasets:" >&2
    cat "$dir/out" >&2
    exit 1
  }
  tail -n 1 "$dir/out" | sed 's/^/  repro:     /' >&2
  rm -rf "$dir"
  elapsed "$t0" "$t1"
}

# One Snakemake run in a fresh directory: prints its wall time in seconds.
run_snakemake() {
  local files=$1 dir t0 t1 njobs
  dir=$(mktemp -d "$work/snakemake.XXXXXX")
  t0=$(now)
  # shellcheck disable=SC2086 # $flags is a list of flags
  (cd "$dir" && "$snakemake" -s "$here/Snakefile" --cores "$cores" $flags \
    --config datasets=2 files="$files" group=50 jobs="$jobs" > "$dir/log" 2>&1) || {
    echo "error: snakemake failed:" >&2
    tail -n 30 "$dir/log" "$dir"/.snakemake/log/*.log >&2 || true
    exit 1
  }
  t1=$(now)
  for ds in ds000 ds001; do
    [ -e "$dir/cleaned/$ds.cleaned" ] && [ ! -e "$dir/tmb/$ds" ] || {
      echo "error: snakemake did not clean up $ds" >&2
      exit 1
    }
  done
  njobs=$((2 * files * 2 + 2 * ((files + 49) / 50) + 2 * 2 + 1))
  echo "  snakemake: $njobs jobs" >&2
  rm -rf "$dir"
  elapsed "$t0" "$t1"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for size in $sizes; do
  files=$((size / 2))
  r=() s=()
  for _ in $(seq "$runs"); do
    echo "$size files: repro ..." >&2
    r+=("$(run_repro "$files")")
    echo "$size files: snakemake ..." >&2
    s+=("$(run_snakemake "$files")")
  done
  results+=("$((2 * files)) $(fastest "${r[@]}") $(fastest "${s[@]}")")
done

echo
echo "repro:     $repro ($("$repro" --version))$repro_note, demo with default sim failures (5% reco, 2% merge, 1% lost)"
echo "snakemake: $("$snakemake" --version) ($jobs: jobs; flags: --cores $cores $flags)"
echo "machine:   $(nproc) cores; load average (1, 5, 15 min) $load_before before the runs," \
  "$(cut -d' ' -f1-3 /proc/loadavg) after"
if [ "$runs" -gt 1 ]; then echo "runs:      fastest of $runs"; fi
echo
printf '%8s | %15s | %19s | %27s\n' files "repro wall (s)" "snakemake wall (s)" "ratio (snakemake/repro)"
printf '%8s-+-%15s-+-%19s-+-%27s\n' -------- --------------- ------------------- ---------------------------
for line in "${results[@]}"; do
  read -r n rw sw <<< "$line"
  printf '%8s | %15s | %19s | %27s\n' "$n" "$rw" "$sw" \
    "$(python3 -c "print(f'{$sw / max($rw, 0.01):.1f}')")"
done
