#!/usr/bin/env bash
# Does `repro simulate` predict what real cron runs then do? The same campaign, limits
# and simulated world (durations in seconds), first simulated, then played in real time
# by `repro tick` started every INTERVAL seconds as cron would (overlapping if one runs
# long) against the sim backend; prints both end times and the error.
#
#   bench/simulate-vs-real.sh [DATASETS] [FILES] [INTERVAL_S]     (default: 20 2000 10)
#
# Uses target/release/repro (cargo build --release -p repro-cli), or $REPRO.
set -euo pipefail
datasets=${1:-20}
files=${2:-2000}
interval=${3:-10}
repro=${REPRO:-$(cd "$(dirname "$0")/.." && pwd)/target/release/repro}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
cat > repro.toml <<TOML
[backend]
kind = "sim"
[backend.sim]
world = "world"
seed = 11
stage_failure = 0.0
reco_failure = 0.02
merge_failure = 0.0
lost_job = 0.0
stage_duration_s = 3
reco_duration_s = 8
merge_duration_s = 4
duration_spread = 0.3
slots = 1500
stage_rate = 1_800_000

[limits]
stage_requests = 3000
reco_jobs = 2000
merge_jobs = 40
[run]
workers = 2
TOML
export REPRO_DATABASE_URL="sqlite://$dir/repro.db?mode=rwc"

for d in $(seq -f '%03g' 0 $((datasets - 1))); do
  seq -f "/store/sim.p17.$d/raw/file_%06g.raw 1500000000" 0 $((files - 1)) > "list.$d"
done
cat > campaign.toml <<TOML
[[dataset]]
name = "sim.p17"
count = $datasets
files = $files
TOML

"$repro" simulate --campaign campaign.toml --every "${interval}s" --json > prediction.json
predicted=$(python3 -c 'import json,sys; p=json.load(open("prediction.json")); print(round(p["end_h"]*3600))')
sim_wall=$(python3 -c 'import json; print(round(json.load(open("prediction.json"))["wall_s"],1))')
echo "simulated: at rest after ${predicted} s of campaign time (${sim_wall} s to simulate)"

"$repro" -q init
for d in $(seq -f '%03g' 0 $((datasets - 1))); do
  "$repro" -q dataset add "sim.p17.$d" --files "list.$d" --unlock > /dev/null
done
start=$(date +%s.%N)
k=0
while :; do
  now=$(python3 -c "print(${start} + ${k} * ${interval})")
  # Wait for the tick's time, as cron does.
  python3 -c "import time; time.sleep(max(0, ${now} - time.time()))"
  # At rest: CLEANED, or FAILED somewhere (waiting for an operator), as simulate counts.
  resting=$(( $("$repro" dataset list --state CLEANED | tail -n +2 | wc -l) \
            + $("$repro" dataset list --state FAILED | tail -n +2 | wc -l) ))
  if [ "$resting" -ge "$datasets" ]; then
    break
  fi
  "$repro" -q tick >> ticks.log 2>&1 &
  k=$((k + 1))
done
wait
real=$((k * interval))
echo "real:      at rest after ${real} s ($k ticks every ${interval} s)"
python3 -c "p=${predicted}; r=${real}; print(f'error: {100*(p-r)/r:+.1f}% of the real time')"
