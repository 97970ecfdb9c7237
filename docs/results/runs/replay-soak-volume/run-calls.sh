#!/bin/sh
# Replay soak with the calls of a 24-hour run (issue #5, T8 of anchors.md), beside run.sh's rows.
# The 24-hour recipe (runs/replay-soak-long/session-2h) makes a fresh client every 2 s, a bad request
# every second and about 5 Info calls a second: 43,200 connections, 86,400 refused requests and
# 432,000 Infos in 24 hours. Here the misc thread runs a round every 10 ms (--info-every 0.01), with
# a fresh client every 0.05 s and a bad request every 0.02 s, for 3,300 s; the rows stay at the
# recipe's rates (10k inserted, 20k sampled rows/s). 2 shards, WAL, a checkpoint every 10 s, a
# token (a wrong-token Insert among the bad requests), no restarts: memory is judged over one
# lifetime of each shard.
# Usage: run-calls.sh [DIR]   DIR holds bin/ibrl-bench and bin/ibrl-replay; output goes to DIR/out.
B=${1:-/work/soak-calls}
D=${SOAK_OUT:-$B/out}
mkdir -p "$D"
{ "$B/bin/ibrl-bench" soak --seconds ${SOAK_SECONDS:-3300} --shards 2 --obs-dim 69 --act-dim 7 \
  --online-capacity 50000 --demo-capacity 10000 --durability wal --ckpt-period 10 \
  --writers 4 --samplers 2 --batch 256 --reopen 200 --insert-rate 10000 --sample-rate 20000 \
  --info-every 0.01 --churn-every 0.05 --bad-every 0.02 --deadline-ms 120000 --progress 300 --token soakcalls \
  --allowance-mb 64 --max-slope 1 --max-spread 5 --warmup 0.2 \
  --csv "$D/timeline.csv" --json 2>&1; echo "ibrl-bench soak exit status $?"; } > "$D/soak.log"
