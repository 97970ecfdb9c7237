#!/bin/sh
# A day's traffic of the 24-hour recipe (runs/replay-soak-long/session-2h) through one lifetime of
# each shard (issue #5, T8 of anchors.md). That recipe caps its rates at 10k inserted / 20k sampled
# rows/s, makes a fresh client every 2 s, a bad request every second and about 5 Info calls a
# second, and checkpoints every 10 s: in 24 hours 864 M inserted and 1.73 G sampled rows, 43,200
# connections, 86,400 refused requests, 432,000 Infos and 8,640 checkpoints per shard. Sessions
# here end after 3 hours, so two runs split that:
#   rows   rates uncapped and a checkpoint every second, 6,000 s;
#   calls  the recipe's row rates and checkpoint period, with a round of the misc thread every
#          10 ms (--info-every 0.01), a fresh client every 0.05 s and a bad request every 0.02 s,
#          3,300 s.
# Both: 2 ibrl-replay shards at the paper's state sizes, 50,000-row online rings that wrap,
# 10,000-row demo tables, the write-ahead log, a shared token (a wrong-token Insert among the bad
# requests), 4 writers (reopened every 200 batches), 2 samplers. No restarts: memory is judged over
# one lifetime of each shard (restarts are soaked in runs/replay-soak-long and the ctests). What
# grows per call, per message or per checkpoint shows here; what grows with wall time alone
# (timers, a counter that wraps after days) does not.
#   aged   the rows run for 3,600 s, then --against-fresh 5 --fresh-window 20: shard 0 against a
#          fresh shard of the same configuration, in turns, so that a decay of the shard over its
#          lifetime shows apart from a drift of the machine.
# Usage: run.sh rows|calls|aged [DIR]   DIR holds bin/ibrl-bench and bin/ibrl-replay; output goes to
#        DIR/out (SOAK_OUT to change it; SOAK_SECONDS to change the length).
set -eu
MODE=${1:?usage: run.sh rows|calls|aged [DIR]}
case "$MODE" in
  rows) B=${2:-/work/soak-vol}; SECS=6000
        set -- --ckpt-period 1 --insert-rate 0 --sample-rate 0 --churn-every 2 --bad-every 1 --token soakvol ;;
  calls) B=${2:-/work/soak-calls}; SECS=3300
         set -- --ckpt-period 10 --insert-rate 10000 --sample-rate 20000 --info-every 0.01 --churn-every 0.05 \
           --bad-every 0.02 --token soakcalls ;;
  aged) B=${2:-/work/soak-aged}; SECS=3600
        set -- --ckpt-period 1 --insert-rate 0 --sample-rate 0 --churn-every 2 --bad-every 1 --token soakaged \
          --against-fresh 5 --fresh-window 20 ;;
  *) echo "run.sh: unknown mode '$MODE' (HINT: rows, calls or aged)" >&2; exit 2 ;;
esac
D=${SOAK_OUT:-$B/out}
mkdir -p "$D"
{ "$B/bin/ibrl-bench" soak --seconds "${SOAK_SECONDS:-$SECS}" --shards 2 --obs-dim 69 --act-dim 7 \
  --online-capacity 50000 --demo-capacity 10000 --durability wal "$@" \
  --writers 4 --samplers 2 --batch 256 --reopen 200 --deadline-ms 120000 --progress 300 \
  --allowance-mb 64 --max-slope 1 --max-spread 5 --warmup 0.2 \
  --csv "$D/timeline.csv" --json 2>&1; echo "ibrl-bench soak exit status $?"; } > "$D/soak.log"
