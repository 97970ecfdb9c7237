#!/bin/sh
# measure_cut.sh: how long a checkpoint's cut holds the replay store (persist_ckpt_info
# .blocked_seconds, logged by the shard as "store held X ms"), for two ibrl-replay builds side by
# side, while a disk writer loads the disk. Not a ctest (speed is measured, never asserted).
#
#   tests/store/measure_cut.sh OLD_REPLAY_BIN NEW_REPLAY_BIN IBRL_BENCH [ROUNDS] [SECONDS]
#
# Each round runs the same `ibrl-bench soak` (1 shard, --durability wal, a checkpoint every 2 s,
# 2 writers and 2 samplers) once with each binary, old first in odd rounds and new first in even
# ones, so both see the same load over the run. The load is `dd ... conv=fdatasync` writing 4,000 MB to LOAD (niced, in a loop, deleted at
# the end); the shard's directory is on the same disk (/tmp). Prints one line per run and, per
# binary, the median, 99th percentile and max of the cut over all its rounds. Old builds: e.g.
#   git archive HEAD | tar -x -C /tmp/cut-old && cmake -S /tmp/cut-old -B /tmp/cut-old/build
#   cmake --build /tmp/cut-old/build --target ibrl-replay
# Ends its own children only (by pid).
set -u
if [ $# -lt 3 ]; then
  echo "usage: $0 OLD_REPLAY_BIN NEW_REPLAY_BIN IBRL_BENCH [ROUNDS] [SECONDS]" >&2
  exit 2
fi
OLD=$1 NEW=$2 BENCH=$3 ROUNDS=${4:-2} SECS=${5:-90}
for b in "$OLD" "$NEW" "$BENCH"; do
  [ -x "$b" ] || { echo "$0: '$b' is not an executable HINT: build ibrl-replay / ibrl-bench first" >&2; exit 2; }
done
OUT=$(mktemp -d /tmp/ibrl-measure-cut-XXXXXX) || exit 1
LOAD=$OUT/load
( while :; do nice -n 10 dd if=/dev/zero of="$LOAD" bs=1M count=4000 conv=fdatasync 2>/dev/null; rm -f "$LOAD"; done ) &
LOADER=$!
stop_load() {
  # The loop's dd is a child of the subshell: find it before ending the loop, then end it by pid.
  kids=$(pgrep -P "$LOADER" 2>/dev/null)
  kill "$LOADER" 2>/dev/null
  for p in $kids; do kill "$p" 2>/dev/null; done
  wait "$LOADER" 2>/dev/null
  sleep 1
  rm -f "$LOAD"
}
trap 'stop_load; exit 1' INT TERM
sleep 5 # let the writer fill the page cache and start flushing
r=1
while [ "$r" -le "$ROUNDS" ]; do
  order="old new"
  [ $((r % 2)) -eq 0 ] && order="new old" # alternate which binary runs first
  for which in $order; do
    bin=$OLD
    [ "$which" = new ] && bin=$NEW
    log=$OUT/$which.$r.log
    "$BENCH" soak --seconds "$SECS" --durability wal --ckpt-period 2 --writers 2 --samplers 2 \
      --obs-dim 69 --act-dim 7 --batch 64 --online-capacity 100000 --demo-capacity 4000 \
      --insert-rate 6000 --sample-rate 12000 --churn-every 0 --bad-every 0 --progress 30 \
      --allowance-mb 100000 --max-slope 100000 --max-spread-mb 100000 \
      --replay-bin "$bin" > "$log" 2>&1
    rc=$?
    n=$(grep -c "store held" "$log")
    echo "round $r $which: exit $rc, $n checkpoints ($(grep -o 'rows inserted [0-9,]*' "$log" | head -1))"
    grep -o "store held [0-9.]* ms" "$log" | awk '{print $3}' >> "$OUT/$which.ms"
  done
  r=$((r + 1))
done
stop_load
trap - INT TERM
for which in old new; do
  sort -n "$OUT/$which.ms" | awk -v w="$which" '{v[NR] = $1} END {
    if (NR == 0) { printf "%s: no checkpoint lines\n", w; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    i = int(0.99 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
    printf "%s: %d cuts, store held median %.2f ms, p99 %.2f ms, max %.2f ms\n", w, NR, m, v[i], v[NR] }'
done
echo "logs and per-cut values: $OUT"
