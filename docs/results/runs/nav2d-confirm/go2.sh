#!/bin/sh
# worker: claims runs in a fixed order (seed 11..15, ibrl rlpd bc) with an atomic mkdir, so two workers share
# the list; the order and the settings are those of go.sh (PLAN.txt).
for s in 11 12 13 14 15; do for m in ibrl rlpd bc; do
  mkdir "/tmp/ibrl-nav2d-c/claims/$m-$s" 2>/dev/null || continue
  BUILD=/work/main/build-evid OUT=/tmp/ibrl-nav2d-c STEPS=20000 sh /work/main/docs/results/run_nav2d.sh --one $m $s
done; done
