#!/usr/bin/env bash
# The gather's prefetch distance and hint (replay-throughput.md, "Tuning the prefetch"): builds
# ibrl-bench from a scratch clone with prefetch-knobs.patch (PF_AHEAD = rows ahead, PF_KIND =
# 0 prefetchnta (shipped at 8 rows until e671c2f), 1 prefetcht0, 2 prefetcht2 (shipped at 32 rows
# since), 3 no prefetch; the patch is made for the code since e671c2f), then times the in-process
# gather (`ibrl-bench store --what gather`) for every pair, interleaved, ROUNDS rounds per size.
# Usage: run.sh OUTDIR [ROUNDS [SETTING ...]]   (from anywhere; about 6 minutes with 3 rounds)
# A SETTING is "KIND AHEAD"; without any, every kind at 4, 8, 16 and 32 rows (none only at 8).
# Files: gather.txt is `run.sh DIR 3` (24 Nov, 20:54); gather-2026-11-24-2135.txt `run.sh DIR 2`
# on the evening's VM; gather-2026-11-24-2137-focus.txt the then shipped "0 8" against "2 16" and
# "2 32", 8 rounds, made with the rounds outside the sizes (this script runs the sizes outside):
#   bash run.sh DIR 8 "0 8" "2 16" "2 32"
# gather-2026-11-24-2346.txt: `run.sh DIR 3 "0 8" "2 16" "2 32" "1 16"`, with the code and patch
# before e671c2f, the window that made the change; gather-2026-11-24-2353.txt: `run.sh DIR 3 "0 8"
# "2 16" "2 32" "2 64"` with the code of e671c2f (prefetcht2 at 32 rows) and today's patch.
set -euo pipefail
out=${1:?usage: run.sh OUTDIR [ROUNDS [SETTING ...]]}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
settings=("$@")
if [ ${#settings[@]} -eq 0 ]; then
  for k in 0 1 2; do for a in 4 8 16 32; do settings+=("$k $a"); done; done
  settings+=("3 8")
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
src=$(mktemp -d /tmp/ibrl-pf-XXXXXX)
git clone -q "$repo" "$src"
git -C "$src" apply "$here/prefetch-knobs.patch"
cmake -S "$src" -B "$src/b" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$src/b" -j2 --target ibrl-bench >/dev/null
mkdir -p "$out"
for cap in 300000 1826091; do
  for r in $(seq "$rounds"); do
    for s in "${settings[@]}"; do
      set -- $s
      m=$(PF_KIND=$1 PF_AHEAD=$2 "$src/b/bin/ibrl-bench" store --what gather --capacity "$cap" --reps 1 \
            --iters 5000 --demo-fraction 0 2>&1 | sed -n 's/^gather  obs.*median \([0-9.]*\) us.*/\1/p')
      echo "capacity $cap round $r kind $1 ahead $2 median_us $m" | tee -a "$out/gather.txt"
    done
  done
done
rm -rf "$src"
