#!/bin/bash
# run_sample.sh BENCH OLD_REPLAY NEW_REPLAY OUT [ROUNDS]: sampling through a full shard, before and
# after the gather's prefetch was restored. One ibrl-bench (BENCH, with the prefill that fills the
# shard's 300,000 rows) drives either ibrl-replay (--replay-bin): OLD_REPLAY built at bc2b451,
# NEW_REPLAY with prefetch_line. They alternate in every round. OUT gets
#   sample-{old,new}-R.txt   ibrl-bench replay --only sample (one call ahead)
#   sample1-{old,new}-R.txt  ibrl-bench replay --only sample --no-prefetch (the learner's call)
# summary.sh OUT prints the medians.
set -u
BENCH=$1 OLDR=$2 NEWR=$3 OUT=$4 ROUNDS=${5:-6}
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for v in old new; do
    rb=$OLDR
    [ $v = new ] && rb=$NEWR
    "$BENCH" replay --only sample --replay-bin "$rb" >"$OUT/sample-$v-$r.txt" 2>&1
    "$BENCH" replay --only sample --no-prefetch --replay-bin "$rb" >"$OUT/sample1-$v-$r.txt" 2>&1
    echo "$(date -u +%H:%M:%S) round $r $v done"
  done
done
