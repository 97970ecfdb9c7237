#!/bin/sh
# PLAN.txt: nav2d IBRL 10k, seeds 11-20, fp32 and bf16x3, build /work/evid5/bin
B=/work/evid5/bin
cd /work/evid5/nav2d-mm
export OPENBLAS_NUM_THREADS=1
while ! grep -q DONE /work/evid5/speed/log.txt 2>/dev/null; do sleep 20; done
mkdir -p runs
[ -f demos10.hdf5 ] || $B/ibrl-demos generate --task nav2d --episodes 10 --noise 0.3 --seed 1 --out demos10.hdf5
[ -f il.ckpt ] || $B/ibrl-il train --demos demos10.hdf5 --task nav2d --arch bc --chunk 1 --preset nav2d --seed 1 --out il.ckpt 2>il_train.log
$B/ibrl-il eval --policy il.ckpt --task nav2d --episodes 100 --seed 1 > il_eval.txt
for s in 11 12 13 14 15 16 17 18 19 20; do for mm in fp32 bf16x3; do
  d=runs/ibrl-$mm-s$s
  [ -f $d/summary.json ] && continue
  rm -rf $d
  $B/ibrl-train --preset nav2d --env-steps 10000 --demos demos10.hdf5 --il il.ckpt --method ibrl --seed $s --matmul $mm --out $d --quiet 2> $d.log
done; done
echo done > ALLDONE
