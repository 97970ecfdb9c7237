#!/usr/bin/env bash
# The learner's wait for batches, before and after it kept its next batch in flight (rc_sampler),
# in turn, ROUNDS rounds (README "Whole system"; replay-throughput.md, "The learner samples one
# call ahead"). Two measurements, each with both bin directories (every ibrl binary of a build:
# `cp -r build/bin DIR` at each commit):
#   learner alone: one ibrl-replay holding 20 nav2d demos (no actors, no rate limiter), then
#     `mpirun -np 2 ibrl-learner --preset nav2d-quick --updates N`: wall time, and per 500-update
#     row of metrics.csv the updates/s and sample_ms (the first row, with the start, left out);
#   whole system: `ibrl-bench e2e --actors 1,4` of each bin directory (actors take CPU from the
#     learner there, so its update rate moves with the machine's load; the wait is what to read).
# Usage: run.sh BIN_BEFORE BIN_AFTER OUTDIR [ROUNDS [N]]   (about 10 minutes with 3 rounds)
# Files: e2e-ab-2026-11-24-2315.txt and learner-only-ab-2026-11-24-2324.txt were made with the same
# commands from an earlier form of these loops (the e2e rounds first), 3 rounds, N 4000: BIN_BEFORE
# held the binaries of 3c90351 (sample_ms, the learner on rc_sample) with the ibrl-bench of the
# next commit (its e2e prints the wait), BIN_AFTER that next commit's (the learner on rc_sampler).
set -u
before=${1:?usage: run.sh BIN_BEFORE BIN_AFTER OUTDIR [ROUNDS [N]]}
after=${2:?usage: run.sh BIN_BEFORE BIN_AFTER OUTDIR [ROUNDS [N]]}
out=${3:?usage: run.sh BIN_BEFORE BIN_AFTER OUTDIR [ROUNDS [N]]}
rounds=${4:-3}
n=${5:-4000}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated OMPI_MCA_btl=self,vader
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
cd "$out" || exit 1
"$before/ibrl-demos" generate --task nav2d --episodes 20 --noise 0.3 --out demos.hdf5 --quiet || exit 1
"$before/ibrl-il" train --demos demos.hdf5 --task nav2d --preset nav2d-quick --steps 50 --out il.ckpt --quiet || exit 1
# Column $2 of each metrics.csv row of file $1 after the first two lines (header, first row).
cols() { awk -F, -v a="$2" -v b="$3" 'NR==1{for(i=1;i<=NF;i++){if($i==a)x=i; if($i==b)y=i}; next} NR>2{printf "%s/%s ", $x, $y}' "$1"; }
for r in $(seq "$rounds"); do
  for v in before after; do
    bin=$before; [ $v = after ] && bin=$after
    rm -rf "run-$v-$r"
    "$bin/ibrl-replay" --port 0 --obs-dim 37 --act-dim 2 >"replay-$v-$r.log" 2>&1 &
    rp=$!
    port=""
    for _ in $(seq 100); do
      port=$(grep -o "listening on 127.0.0.1:[0-9]*" "replay-$v-$r.log" | grep -o "[0-9]*$")
      [ -n "$port" ] && break
      sleep 0.1
    done
    "$bin/ibrl-replayctl" --shards "127.0.0.1:$port" import-demos demos.hdf5 --stack 1 --chunk 1 >import.log 2>&1
    t0=$(date +%s.%N)
    timeout 600 mpirun -np 2 --bind-to none "$bin/ibrl-learner" --replay "127.0.0.1:$port" --il il.ckpt \
      --preset nav2d-quick --updates "$n" --log-every 500 --publish-every 100 --ckpt-every 0 --out "run-$v-$r" \
      >"learner-$v-$r.log" 2>&1 </dev/null
    t1=$(date +%s.%N)
    kill "$rp"
    wait "$rp" 2>/dev/null
    echo "$r $v wall $(echo "$t1 - $t0" | bc) s; $(grep -o 'waiting for batches [0-9.]* ms per update' "learner-$v-$r.log")" |
      tee -a learner-only.txt
    echo "  updates_per_s/sample_ms: $(cols "run-$v-$r/metrics.csv" updates_per_s sample_ms)" | tee -a learner-only.txt
  done
done
for r in $(seq "$rounds"); do
  for v in before after; do
    bin=$before; [ $v = after ] && bin=$after
    echo "== round $r $v $(date +%T)" | tee -a e2e.txt
    "$bin/ibrl-bench" e2e --actors 1,4 --calls 10 --repeats 1 >"e2e-$v-$r.out" 2>&1
    grep -E "^  [14] " "e2e-$v-$r.out" | tee -a e2e.txt
  done
done
