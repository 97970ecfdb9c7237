#!/bin/sh
# A shard under inserts and samples with a checkpoint every 5 s, with and without the huge pages
# mended after each checkpoint (issue #5; store_huge_collapse): OLD and NEW are two ibrl-replay
# binaries (without and with it), run in turn, ROUNDS times each, the same ibrl-bench soak driving
# both: 1 shard of 300,000 online rows (~190 MB) and 10,000 demo rows, the write-ahead log, 2
# writers capped at 50,000 rows/s together, 2 samplers uncapped, 75 s. Once a second a watcher reads
# the shard's AnonHugePages. Per run it prints: the mean sampled and inserted rows/s over the last
# 45 s, the checkpoints' "store held" (median and max) and the shard's huge pages at the end.
# Usage: run.sh OLD_REPLAY NEW_REPLAY BENCH OUT [ROUNDS]
set -eu
OLD=${1:?usage: run.sh OLD_REPLAY NEW_REPLAY BENCH OUT [ROUNDS]}
NEW=${2:?}
BENCH=${3:?}
OUT=${4:?}
ROUNDS=${5:-3}
mkdir -p "$OUT"
one() { # one NAME BINARY ROUND
  tag="$1-$3"
  "$BENCH" soak --seconds 75 --shards 1 --online-capacity 300000 --demo-capacity 10000 --durability wal \
    --ckpt-period 5 --writers 2 --samplers 2 --insert-rate 50000 --sample-rate 0 --progress 100 \
    --replay-bin "$2" --csv "$OUT/$tag.csv" >"$OUT/$tag.log" 2>&1 &
  soak=$!
  : >"$OUT/$tag.huge"
  while kill -0 "$soak" 2>/dev/null; do
    p=$(pgrep -f -n "$2 --port 0" || true)
    [ -n "$p" ] && grep AnonHugePages "/proc/$p/smaps_rollup" 2>/dev/null | awk '{print $2}' >>"$OUT/$tag.huge"
    sleep 1
  done
  wait "$soak" || true
  awk -F, 'NR > 1 && $1 >= 30 { s += $7; i += $6; n++ } END { printf "sampled %.0f rows/s, inserted %.0f rows/s, ", s / n, i / n }' "$OUT/$tag.csv"
  grep -o "store held [0-9.]* ms" "$OUT/$tag.log" | awk '{print $3}' | sort -g |
    awk '{ v[NR] = $1 } END { printf "store held median %s ms max %s ms (%d checkpoints), ", v[int((NR + 1) / 2)], v[NR], NR }'
  printf "huge pages at the end %s kB\n" "$(tail -2 "$OUT/$tag.huge" | head -1)"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    printf "round %d old: " "$r"; one old "$OLD" "$r"
    printf "round %d new: " "$r"; one new "$NEW" "$r"
  else
    printf "round %d new: " "$r"; one new "$NEW" "$r"
    printf "round %d old: " "$r"; one old "$OLD" "$r"
  fi
done
