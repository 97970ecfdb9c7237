#!/bin/sh
# The limiter's memory run of docs/results/replay-soak.md ("Memory under the rate limiter", 24 Nov):
# replay_soak_limited's traffic (one shard, obs 16, act 4, WAL, a checkpoint every 5 s, 4 writers
# capped at 3,000 rows/s, 2 samplers at 6,000, --samples-per-insert 4 holding the inserts near
# 1,500/s, writers asking for partial acknowledgements within 100 ms, a bad request every 0.5 s) for
# 30 minutes without restarts, against a 50,000-row ring that wraps about 53 times, judged with a
# memory slope bound of 1 MB/min. Two runs side by side: churn (a fresh client every second) and
# none (--churn-every 0), to tell per-connection growth apart.
# Usage: run.sh [BUILD_DIR]   (default /work/main/build-lead); writes {churn,nochurn}.{log,csv} here.
B=${1:-/work/main/build-lead}
D=$(cd "$(dirname "$0")" && pwd)
run() {
  "$B/bin/ibrl-bench" soak --seconds 1800 --durability wal --ckpt-period 5 --obs-dim 16 --act-dim 4 \
    --batch 64 --online-capacity 50000 --demo-capacity 4000 --insert-rate 3000 --sample-rate 6000 \
    --bad-every 0.5 --samples-per-insert 4 --max-wait-ms 100 --expect-partial --progress 120 \
    --slope median --max-slope 1 --json --churn-every "$1" --csv "$D/$2.csv" >"$D/$2.log" 2>&1
  echo "ibrl-bench soak ($2) exit status $?" >>"$D/$2.log"
}
run 1 churn &
run 0 nochurn &
wait
