#!/usr/bin/env bash
# e2e_fault.sh: faults while the system trains. Two replay shards (write-ahead log, so an
# acknowledged item survives a crash), actor 0 -> shard 0 and actor 1 -> shard 1, a 2-rank
# learner. Mid-run: actor 0 is killed (SIGKILL) and restarted with the same id, shard 1 is
# killed (SIGKILL) and restarted on the same port from its directory, then both shards are
# killed at once and restarted (the replay tier's machine rebooting). Checks: the learner
# finishes its updates and exits 0 (it never hangs), the restarted actor continues its seqs,
# actor 1 rides out the outage, and on each shard the stored items of its actor are exactly the
# seqs 0..last_seq once each (nothing lost, nothing duplicated).
. "$(dirname "$0")/e2e_lib.sh"
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
ibc_start learner timeout 300 mpirun --bind-to none -np 2 "$B/ibrl-learner" "${COMMON[@]}" --updates 1500 \
  --publish-every 20 --ckpt-every 500 --log-every 50 --wait 120 --deadline-ms 2000 --out "$W/learner"

updates() { awk -F, 'NR > 1 {u = $3} END {print u + 0}' "$W/learner/metrics.csv" 2>/dev/null || echo 0; }
wait_updates() { # wait_updates N SECONDS
  local t=0
  while [ "$(updates)" -lt "$1" ] && [ "$t" -lt $(($2 * 10)) ] && ibc_alive learner; do
    sleep 0.1
    t=$((t + 1))
  done
  [ "$(updates)" -ge "$1" ]
}
check "learner reaches 200 updates" wait_updates 200 120

# Fault 1: actor 0 dies and comes back under the same id.
kill -KILL "$(ibc_pid a0)"
wait "$(ibc_pid a0)" 2>/dev/null || true
ibc_start a0b "$B/ibrl-actor" "${COMMON[@]}" --actor-id 0 --log-every 1 --poll-ms 200 --deadline-ms 2000
u0=$(updates)

# Fault 2: shard 1 crashes; 2 s later it restarts on its port from its write-ahead log.
kill -KILL "$(ibc_pid r1)"
wait "$(ibc_pid r1)" 2>/dev/null || true
sleep 2
IBC_PORT=${S1##*:} ibc_replay r1b 1 "${RARGS[@]}" --ckpt-dir "$W/r1"
check "shard 1 restarted on the same address" test "$IBC_ADDR" = "$S1"
check "training continues after the faults (200 more updates)" wait_updates $((u0 + 200)) 150

# Fault 3: the whole replay tier goes down at once (both shards SIGKILLed together, as when their
# machine reboots); 3 s later both restart on their ports from their write-ahead logs.
u1=$(updates)
kill -KILL "$(ibc_pid r0)" "$(ibc_pid r1b)"
wait "$(ibc_pid r0)" "$(ibc_pid r1b)" 2>/dev/null || true
sleep 3
IBC_PORT=${S0##*:} ibc_replay r0b 0 "${RARGS[@]}" --ckpt-dir "$W/r0"
check "shard 0 restarted on the same address" test "$IBC_ADDR" = "$S0"
IBC_PORT=${S1##*:} ibc_replay r1c 1 "${RARGS[@]}" --ckpt-dir "$W/r1"
check "shard 1 restarted on the same address" test "$IBC_ADDR" = "$S1"
check "training continues after both shards were down at once (200 more updates)" wait_updates $((u1 + 200)) 150

lp=$(ibc_pid learner)
lrc=0
wait "$lp" || lrc=$?
check "the learner finished its 1500 updates and exited 0 (exit $lrc)" test "$lrc" -eq 0
check "the learner logged its last update" grep -q "done: 1500 critic updates" "$IBC_LOGS/learner.log"
seq0=$(grep -o 'from seq [0-9]*' "$IBC_LOGS/a0b.log" | head -n 1 | sed 's/from seq //')
check "the restarted actor continues its seqs (from ${seq0:-none} > 0)" test "${seq0:-0}" -gt 0
for a in a0b a1; do
  p=$(ibc_pid "$a")
  kill -TERM "$p"
  rc=0
  wait "$p" || rc=$?
  check "$a exits 0 on SIGTERM" test "$rc" -eq 0
done
check "actor 1 saw the outage and recovered" grep -q "acknowledges again\|accepts items again\|answers again" "$IBC_LOGS/a1.log"
# Nothing lost, nothing duplicated: shard i's online table holds exactly seqs 0..last_seq of actor i.
for i in 0 1; do
  s=$([ "$i" -eq 0 ] && echo "$S0" || echo "$S1")
  info=$("$B/ibrl-replayctl" --shards "$s" --json info --rate-ms 0)
  size=$(printf '%s' "$info" | grep -o '"name":"online","kind":"online","size":[0-9]*' | sed 's/.*://')
  last=$(printf '%s' "$info" | grep -o "\"actor_id\":$i,\"last_seq\":[0-9]*" | sed 's/.*://')
  check "shard $i holds actor $i's seqs 0..${last:-?} exactly once (size ${size:-?})" test "${size:-0}" -eq $((${last:--2} + 1))
  check "shard $i stored a real amount (${size:-0} >= 500)" test "${size:-0}" -ge 500
done
