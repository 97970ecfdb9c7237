#!/bin/sh
# one pilot run: run.sh CFG SEED
cfg=$1 s=$2 B=/work/evid5/bin
case $cfg in A) x="--update-every 2 --critic-updates 1";; B) x="--update-every 1 --critic-updates 1";; C) x="--update-every 1 --critic-updates 2";; esac
d=/work/evid5/mw/pilot/$cfg-s$s
rm -rf $d
OPENBLAS_NUM_THREADS=1 $B/ibrl-train --preset metaworld-state --demos /work/evid5/mw/demos3.hdf5 --il /work/evid5/mw/il.ckpt --method ibrl --seed $s $x --out $d --quiet 2>$d.log
