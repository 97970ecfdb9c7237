#!/bin/sh
# Why the late rates of a long uncapped soak fall (replay-soak.md, "An aged shard against a fresh
# one"): the shards were ruled out there; this tells the load generator's process from the machine.
#   1. The `aged` recipe of run.sh (2 shards, rates uncapped, a checkpoint every second, a fresh
#      client every 2 s, a bad request every second) for AGED_SECONDS (3,600), without
#      --against-fresh.
#   2. At once, the same recipe in a new ibrl-bench process with new shards for FRESH_SECONDS (600).
# Once a minute (DRIFT_EVERY seconds) throughout, `cpu.log` gets the machine's /proc/stat cpu
# line (to see steal time) and the CPU time (utime + stime, clock ticks) of every ibrl-bench and
# ibrl-replay process. So the late windows of run 1 can be compared with the early windows of
# run 2 in rows/s and in CPU time per row of each process: if run 2 starts as fast as run 1 did,
# the old process had slowed; if run 2 starts as slow as run 1 ended, the machine had.
# drift_summary.sh reads the output.
# Usage: drift.sh [DIR]   DIR holds bin/ibrl-bench and bin/ibrl-replay; output goes to DIR/drift
#        (AGED_SECONDS, FRESH_SECONDS to change the lengths).
set -eu
B=${1:-/work/soak-drift}
D=$B/drift
mkdir -p "$D/aged" "$D/fresh"
HERE=$(cd "$(dirname "$0")" && pwd)
sample() {
  while :; do
    t=$(date +%s)
    echo "$t stat $(head -1 /proc/stat)"
    for p in $(pgrep -x ibrl-bench) $(pgrep -x ibrl-replay); do
      # comm, utime and stime are fields 2, 14 and 15 of /proc/PID/stat
      s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
      echo "$t proc $p $(echo "$s" | awk '{print $2, $14, $15}')"
    done
    sleep "${DRIFT_EVERY:-60}"
  done
}
: > "$D/cpu.log"
sample >> "$D/cpu.log" &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT
run() {
  out=$1 secs=$2 token=$3
  { "$B/bin/ibrl-bench" soak --seconds "$secs" --shards 2 --obs-dim 69 --act-dim 7 \
    --online-capacity 50000 --demo-capacity 10000 --durability wal \
    --ckpt-period 1 --insert-rate 0 --sample-rate 0 --churn-every 2 --bad-every 1 --token "$token" \
    --writers 4 --samplers 2 --batch 256 --reopen 200 --deadline-ms 120000 --progress 300 \
    --allowance-mb 64 --max-slope 1 --max-spread 5 --warmup 0.2 \
    --csv "$out/timeline.csv" --json 2>&1 && st=0 || st=$?; echo "ibrl-bench soak exit status $st"; } \
    > "$out/soak.log"
  echo "$(date +%s) end $out" >> "$D/cpu.log"
}
echo "$(date +%s) start aged" >> "$D/cpu.log"
run "$D/aged" "${AGED_SECONDS:-3600}" soakdrift1
echo "$(date +%s) start fresh" >> "$D/cpu.log"
run "$D/fresh" "${FRESH_SECONDS:-600}" soakdrift2
kill $SAMPLER 2>/dev/null || true
sh "$HERE/drift_summary.sh" "$D" > "$D/summary.txt" 2>&1 || true
