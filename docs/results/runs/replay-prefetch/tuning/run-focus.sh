#!/bin/bash
# The focused rerun of 24 Nov, 21:37 UTC (the evening's VM): the shipped prefetch (prefetchnta, 8
# rows ahead) against prefetcht2 at 16 and 32 rows, interleaved, 8 rounds per table size, with the
# knobs of prefetch-knobs.patch. Made gather-2026-11-24-2137-focus.txt:
#   bash run-focus.sh OUT.txt [ROUNDS]
# gather-2026-11-24-2135.txt is `bash run.sh DIR 2` of the same window.
set -euo pipefail
out=${1:?usage: run-focus.sh OUT.txt [ROUNDS]}
rounds=${2:-8}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
src=$(mktemp -d /tmp/ibrl-pf-XXXXXX)
git clone -q "$repo" "$src"
git -C "$src" apply "$here/prefetch-knobs.patch"
cmake -S "$src" -B "$src/b" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$src/b" -j2 --target ibrl-bench >/dev/null
: >"$out"
for r in $(seq "$rounds"); do
  for cap in 300000 1826091; do
    for ka in "0 8" "2 16" "2 32"; do
      set -- $ka
      m=$(PF_KIND=$1 PF_AHEAD=$2 "$src/b/bin/ibrl-bench" store --what gather --capacity "$cap" --reps 1 \
            --iters 5000 --demo-fraction 0 2>&1 | sed -n 's/^gather  obs.*median \([0-9.]*\) us.*/\1/p')
      echo "capacity $cap round $r kind $1 ahead $2 median_us $m" | tee -a "$out"
    done
  done
done
rm -rf "$src"
