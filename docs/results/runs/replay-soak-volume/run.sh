#!/bin/sh
# Replay soak at full speed (issue #5, T8 of anchors.md): the traffic of a 24-hour run pushed
# through one shard lifetime in less time. The 24-hour recipe (runs/replay-soak-long/session-2h)
# caps its rates at 10k inserted / 20k sampled rows/s, so 24 hours of it insert 864 M rows and
# sample 1.73 G, with 8,640 checkpoints per shard at its 10 s period. Sessions here end after
# 3 hours, so this run lifts the caps and checkpoints every second instead: 2 ibrl-replay shards at
# the paper's state sizes, 50,000-row online rings that wrap, 10,000-row demo tables, the
# write-ahead log, a shared token, 4 writers (reopened every 200 batches), 2 samplers, Info calls,
# a fresh client every 2 s and a refused bad request every second. No restarts: memory is judged
# over one lifetime of each shard (restarts are soaked in runs/replay-soak-long and the ctests).
# Memory, not speed: what grows per call, per message or per checkpoint shows here; what grows
# with wall time alone (timers, a counter that wraps after days) does not.
# Usage: run.sh [DIR]   DIR holds bin/ibrl-bench and bin/ibrl-replay; output goes to DIR/out.
B=${1:-/work/soak-vol}
D=${SOAK_OUT:-$B/out}
mkdir -p "$D"
{ "$B/bin/ibrl-bench" soak --seconds ${SOAK_SECONDS:-6000} --shards 2 --obs-dim 69 --act-dim 7 \
  --online-capacity 50000 --demo-capacity 10000 --durability wal --ckpt-period 1 \
  --writers 4 --samplers 2 --batch 256 --reopen 200 --insert-rate 0 --sample-rate 0 \
  --churn-every 2 --bad-every 1 --deadline-ms 120000 --progress 300 --token soakvol \
  --allowance-mb 64 --max-slope 1 --max-spread 5 --warmup 0.2 \
  --csv "$D/timeline.csv" --json 2>&1; echo "ibrl-bench soak exit status $?"; } > "$D/soak.log"
