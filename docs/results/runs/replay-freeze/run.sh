#!/usr/bin/env bash
# By-hand experiment (not a ctest): training with two shards; shard 1 is frozen (SIGSTOP) for 45 s,
# as a shard whose machine or network died looks to its clients, then thawed. Prints the learner's
# updates per second before, during (0-20 s, 20-45 s) and after the freeze.
# Usage (the environment ctest gives the e2e tests; BIN = a build's bin directory):
#   export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated \
#     OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
#   IB_BIN_DIR=BIN IB_SOURCE_DIR=/work/main bash run.sh
. "$IB_SOURCE_DIR/tests/e2e/e2e_lib.sh"
e2e_il
RARGS=(--obs-dim 37 --act-dim 2 --samples-per-insert 16 --error-buffer 8000 --min-size 200 --threads 6 --durability wal)
ibc_replay r0 0 "${RARGS[@]}" --ckpt-dir "$W/r0"
S0=$IBC_ADDR
ibc_replay r1 1 "${RARGS[@]}" --ckpt-dir "$W/r1"
S1=$IBC_ADDR
P="$S0,$S1"
"$B/ibrl-replayctl" --shards "$P" import-demos "$W/demos.hdf5" --chunk 1 --stack 1 >"$IBC_LOGS/import.log" 2>&1
COMMON=(--replay "$P" --il "$W/il.ckpt" --preset nav2d-quick --task nav2d)
for i in 0 1; do
  ibc_start "a$i" "$B/ibrl-actor" "${COMMON[@]}" --actor-id "$i" --log-every 1 --poll-ms 200 --deadline-ms 2000
done
ibc_start learner timeout 400 mpirun --bind-to none -np 2 "$B/ibrl-learner" "${COMMON[@]}" --updates 100000 \
  --publish-every 20 --ckpt-every 100000 --log-every 50 --wait 120 --deadline-ms 2000 --out "$W/learner"
updates() { awk -F, 'NR > 1 {u = $3} END {print u + 0}' "$W/learner/metrics.csv" 2>/dev/null || echo 0; }
t=0
while [ "$(updates)" -lt 300 ] && [ $t -lt 1200 ]; do sleep 0.1; t=$((t + 1)); done
u0=$(updates); sleep 20; u1=$(updates)
kill -STOP "$(ibc_pid r1)"
sleep 20; u2=$(updates); sleep 25; u3=$(updates)
kill -CONT "$(ibc_pid r1)"
sleep 20; u4=$(updates)
echo "updates/s: before $(( (u1 - u0) / 20 )), frozen 0-20 s $(( (u2 - u1) / 20 )), frozen 20-45 s $(( (u3 - u2) / 25 )), after thaw $(( (u4 - u3) / 20 ))"
grep -c "is back in the sample\|left out of the sample\|skipp" "$IBC_LOGS/learner.log" || true
grep -i "shard 1\|127.0.0.1:${S1##*:}" "$IBC_LOGS/learner.log" | head -8
kill -TERM "$(ibc_pid learner)" 2>/dev/null || true
