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
expect_exit "replay unreachable" 1 "is ibrl-replay running" "$A" --replay 127.0.0.1:1 --il "$W/il.ckpt" --wait 1 \
  --deadline-ms 200
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
