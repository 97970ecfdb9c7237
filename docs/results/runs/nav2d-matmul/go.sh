#!/bin/sh
# fp32 vs bf16x3 vs bf16 matrix products, IBRL nav2d preset, seeds 1-3, 10k, same binary (commit in COMMIT)
export OPENBLAS_NUM_THREADS=1
for s in 1 2 3; do for mm in fp32 bf16x3 bf16; do
  d=/tmp/ibrl-nav2d-mm/runs/ibrl-$mm-s$s
  [ -f $d/summary.json ] && continue
  rm -rf $d
  /tmp/ibrl-nav2d-mm/bin/ibrl-train --preset nav2d --task nav2d --demos demos10.hdf5 --il il.ckpt --method ibrl --seed $s --matmul $mm --out $d 2> $d.log
done; done
echo done > ALLDONE
