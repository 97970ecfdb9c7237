#!/usr/bin/env bash
# The gather's prefetch distance and hint (replay-throughput.md, "Tuning the prefetch"): builds
# ibrl-bench from a scratch clone with prefetch-knobs.patch (PF_AHEAD = rows ahead, PF_KIND =
# 0 prefetchnta as shipped, 1 prefetcht0, 2 prefetcht2, 3 no prefetch), then times the in-process
# gather (`ibrl-bench store --what gather`) for every pair, interleaved, ROUNDS rounds per size.
# Usage: run.sh OUTDIR [ROUNDS]   (from anywhere; about 6 minutes with 3 rounds)
set -euo pipefail
out=${1:?usage: run.sh OUTDIR [ROUNDS]}
rounds=${2:-3}
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
    for k in 0 1 2 3; do
      for a in 4 8 16 32; do
        [ "$k" = 3 ] && [ "$a" != 8 ] && continue
        m=$(PF_KIND=$k PF_AHEAD=$a "$src/b/bin/ibrl-bench" store --what gather --capacity "$cap" --reps 1 \
              --iters 5000 --demo-fraction 0 2>&1 | sed -n 's/^gather  obs.*median \([0-9.]*\) us.*/\1/p')
        echo "capacity $cap round $r kind $k ahead $a median_us $m" | tee -a "$out/gather.txt"
      done
    done
  done
done
rm -rf "$src"
