#!/usr/bin/env bash
# e2e_actor_errors.sh: ibrl-actor refuses bad flags, bad environment variables, missing or
# mismatched files and a replay of other dims with a clear message and the documented exit code.
. "$(dirname "$0")/e2e_lib.sh"
A=$B/ibrl-actor
expect_exit "--help" 0 "usage: ibrl-actor" "$A" --help
expect_exit "unknown flag" 2 "unknown option '--bogus'" "$A" --bogus
expect_exit "missing --replay" 2 "no replay shards" "$A" --il x.ckpt
expect_exit "--envs 0" 2 "--envs '0' is not an integer" "$A" --replay 127.0.0.1:1 --envs 0
expect_exit "bad variable" 2 "(environment) --max-pending" env IBRL_ACTOR_MAX_PENDING=abc "$A" --replay 127.0.0.1:1
expect_exit "flag beats variable" 2 "--envs '-3'" env IBRL_ACTOR_ENVS=abc "$A" --replay 127.0.0.1:1 --envs -3
expect_exit "eval without --out" 2 "needs a run directory" "$A" --role eval --replay 127.0.0.1:1
expect_exit "bad role" 2 "not explore or eval" "$A" --role learn --replay 127.0.0.1:1
expect_exit "unknown method" 2 "--method" "$A" --replay 127.0.0.1:1 --method dqn
expect_exit "unknown preset" 2 "nav2d-quick" "$A" --replay 127.0.0.1:1 --preset huge
expect_exit "unknown task" 2 "nav2d" "$A" --replay 127.0.0.1:1 --task moon --il x.ckpt
expect_exit "ibrl without --il" 2 "needs the IL policy" "$A" --replay 127.0.0.1:1
expect_exit "missing IL file" 2 "$W/none.ckpt" "$A" --replay 127.0.0.1:1 --il "$W/none.ckpt"

e2e_il
"$B/ibrl-il" train --demos "$W/demos.hdf5" --task nav2d --arch bc --chunk 1 --n-stack 2 --preset nav2d-quick --steps 20 \
  --out "$W/il2.ckpt" --quiet >"$IBC_LOGS/il2.log" 2>&1
expect_exit "IL policy of another frame stack" 2 "HINT: retrain" "$A" --replay 127.0.0.1:1 --il "$W/il2.ckpt" --wait 1 \
  --deadline-ms 200
# One HINT per message, naming no flag ibrl-actor lacks (the client's said "--shards /
# IBRL_REPLAY_SHARDS", ibrl-replayctl's, and the actor appended a second HINT).
NO_HINT_WORDS="--shards IBRL_REPLAY_SHARDS" expect_one_hint "replay unreachable" 1 "is ibrl-replay running" "$A" \
  --replay 127.0.0.1:1 --il "$W/il.ckpt" --wait 1 --deadline-ms 200
# A --status file that can never be written is refused at start (it used to be skipped
# silently at every --log-every, leaving no status and no message).
expect_exit "--status in a missing folder" 2 "the folder of '$W/nodir/s.json' does not exist" "$A" --replay 127.0.0.1:1 \
  --il "$W/il.ckpt" --wait 1 --deadline-ms 200 --status "$W/nodir/s.json"
expect_exit "--status is a directory" 2 "is a directory" "$A" --replay 127.0.0.1:1 --il "$W/il.ckpt" --wait 1 \
  --deadline-ms 200 --status "$W"
ibc_replay r-small 0 --obs-dim 5 --act-dim 2
P=$IBC_ADDR
expect_exit "replay of other dims" 2 "HINT: start the shards with --obs-dim 37" "$A" --replay "$P" --il "$W/il.ckpt"
expect_exit "eval role, replay of other dims" 2 "holds obs_dim 5" "$A" --role eval --replay "$P" --il "$W/il.ckpt" \
  --out "$W/ev"

# A shard with a token the actor lacks: the token's HINT only (it also got "is ibrl-replay
# running ... raise --wait", which does not apply to a refused token).
ibc_replay r-tok 0 --obs-dim 37 --act-dim 2 --online-capacity 1000 --demo-capacity 1000 --token sekrit
NO_HINT_WORDS="--wait running" expect_one_hint "refused token" 2 "missing or wrong token" "$A" --replay "$IBC_ADDR" \
  --il "$W/il.ckpt" --wait 1 --deadline-ms 500

# A shard of the right dims, no learner.
ibc_replay r-nav 0 --obs-dim 37 --act-dim 2 --online-capacity 20000 --demo-capacity 1000
P=$IBC_ADDR
# An evaluator that never saw weights made no evaluation: no curve, said in one note (it logged
# "gnuplot failed on curve.gp" as a warning).
out=$("$A" --role eval --replay "$P" --il "$W/il.ckpt" --out "$W/ev0" --minutes 0.01 --eval-episodes 2 2>&1) || true
check "evaluator with 0 evaluations: no gnuplot failure" bash -c '! grep -q "gnuplot failed" <<<"$1"' _ "$out"
check "evaluator with 0 evaluations: one note, no curve.png" bash -c \
  'grep -q "INFO no curve.png: " <<<"$1" && [ ! -e "$2/curve.png" ]' _ "$out" "$W/ev0"

# A --status file that stops being writable while the actor runs (here: its .tmp is a directory
# for a while): one warning naming the file and the cause when it starts failing, one note when
# it works again, never one per report (it was silent).
mkdir -p "$W/st"
ibc_start a-status "$A" --replay "$P" --il "$W/il.ckpt" --envs 1 --log-every 0.2 --minutes 0.15 --status "$W/st/s.json"
t=0
while [ ! -f "$W/st/s.json" ] && [ "$t" -lt 200 ]; do sleep 0.1; t=$((t + 1)); done
mkdir "$W/st/s.json.tmp"
sleep 1.5
rmdir "$W/st/s.json.tmp"
t=0
while ibc_alive a-status && [ "$t" -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
L=$IBC_LOGS/a-status.log
nw=$(grep -c "WARN .*--status $W/st/s.json: cannot create $W/st/s.json.tmp: Is a directory" "$L" || true)
nb=$(grep -c "is written again" "$L" || true)
check "status write failure: one warning naming the file and errno (got $nw)" test "$nw" -eq 1
check "status write works again: one note (got $nb)" test "$nb" -eq 1
check "the status file is fresh after the failure" grep -q '"done": true' "$W/st/s.json"
