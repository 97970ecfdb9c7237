#!/bin/sh
# 24-hour replay soak (issue #5, T8 of anchors.md): 2 ibrl-replay shards at the paper's state sizes,
# 50,000-row online rings that wrap, 10,000-row demo tables, the write-ahead log and a checkpoint every
# 10 s, a shared token, 4 writers (reopened every 200 batches), 2 samplers, Info calls, a fresh
# client every 2 s, a refused bad request every second, and one shard killed and restarted every hour
# (SIGKILL and SIGTERM in turn), for 24 hours. Rates capped at 10k inserted / 20k sampled rows/s so
# the shared machine stays usable; not a speed benchmark.
# Usage: run.sh [DIR]   DIR holds bin/ibrl-bench and bin/ibrl-replay; output goes to DIR/out.
B=${1:-/work/soak24}
D=${SOAK_OUT:-$B/out}
mkdir -p "$D"
{ nice -n 19 "$B/bin/ibrl-bench" soak --seconds ${SOAK_SECONDS:-86400} --shards 2 --obs-dim 69 --act-dim 7 \
  --online-capacity 50000 --demo-capacity 10000 --durability wal --ckpt-period 10 \
  --writers 4 --samplers 2 --batch 256 --reopen 200 --insert-rate 10000 --sample-rate 20000 \
  --churn-every 2 --bad-every 1 --deadline-ms 120000 --progress 300 \
  --restart-every 3600 --restart-signal alternate --token soak24 \
  --allowance-mb 64 --max-slope 1 --max-spread 5 --warmup 0.2 \
  --csv "$D/timeline.csv" --json 2>&1; echo "ibrl-bench soak exit status $?"; } > "$D/soak.log"
