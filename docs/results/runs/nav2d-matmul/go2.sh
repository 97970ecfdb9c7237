#!/bin/sh
# bf16x3 matrix products, IBRL nav2d preset at 10k, seeds 4-10 (fp32 counterparts: the committed runs,
# which this binary reproduces bit for bit in fp32 on seeds 1-3)
export OPENBLAS_NUM_THREADS=1
for s in 4 5 6 7 8 9 10; do
  d=/tmp/ibrl-nav2d-mm/runs/ibrl-bf16x3-s$s
  [ -f $d/summary.json ] && continue
  rm -rf $d
  /tmp/ibrl-nav2d-mm/bin/ibrl-train --preset nav2d --task nav2d --demos demos10.hdf5 --il il.ckpt --method ibrl --seed $s --matmul bf16x3 --env-steps 10000 --out $d 2> $d.log
done
echo done > ALLDONE2
