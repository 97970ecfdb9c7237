#!/bin/bash
# run.sh OLD NEW OUT [FIRST LAST [all|short]]: the store's gather and the replay bench's sampling,
# before and after the gather's prefetch was restored (24 Nov). OLD and NEW each hold ibrl-bench
# and ibrl-replay (OLD built at bc2b451, NEW with prefetch_line); they alternate in every round
# (rounds FIRST..LAST, default 1..3), so both see the same machine. OUT gets one file per run:
#   sample-{old,new}-R.txt       ibrl-bench replay --only sample (one call ahead)
#   gather-300k-{old,new}-R.txt  ibrl-bench store --what gather --capacity 300000 (the shard's size)
# and with `all` (the default) also
#   gather-1.8m-{old,new}-R.txt  the same with the default 1.8 M rows (1.2 GB, anchors.md's case)
#   sample1-{old,new}-R.txt      ibrl-bench replay --only sample --no-prefetch (the learner's call)
# The 24 Nov files: rounds 1-3 `all`, rounds 4-9 `short`. summary.sh OUT prints the medians.
# Each version's sampling here ran with its own ibrl-bench, whose prefill then wrote only 10,240
# rows: the shard sampled a 6 MB table from the CPU's cache. Those sample files are in
# small-prefill/; run_sample.sh measures sampling through a full shard.
# Figures in docs/results/replay-throughput.md, "The prefetch the compiler dropped".
set -u
OLD=$1 NEW=$2 OUT=$3 FIRST=${4:-1} LAST=${5:-3} WHAT=${6:-all}
mkdir -p "$OUT"
for r in $(seq "$FIRST" "$LAST"); do
  for v in old new; do
    d=$OLD
    [ $v = new ] && d=$NEW
    "$d/ibrl-bench" replay --only sample >"$OUT/sample-$v-$r.txt" 2>&1
    "$d/ibrl-bench" store --what gather --capacity 300000 --iters 5000 >"$OUT/gather-300k-$v-$r.txt" 2>&1
    if [ "$WHAT" = all ]; then
      "$d/ibrl-bench" store --what gather --iters 5000 >"$OUT/gather-1.8m-$v-$r.txt" 2>&1
      "$d/ibrl-bench" replay --only sample --no-prefetch >"$OUT/sample1-$v-$r.txt" 2>&1
    fi
    echo "$(date -u +%H:%M:%S) round $r $v done"
  done
done
