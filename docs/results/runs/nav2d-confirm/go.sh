#!/bin/sh
for s in 11 12 13 14 15; do for m in ibrl rlpd bc; do
  BUILD=/work/main/build-evid OUT=/tmp/ibrl-nav2d-c STEPS=20000 sh /work/main/docs/results/run_nav2d.sh --one $m $s
done; done
echo done > /tmp/ibrl-nav2d-c/ALLDONE
