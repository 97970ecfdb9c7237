#!/usr/bin/env bash
# e2e_items.sh: the items one actor streams follow the n-step rule exactly (e2e_items.py):
# discounts, sparse-reward returns, next_obs n items ahead, episode_end on the last item, and
# gap-free seqs. One shard, one actor with one env, 12 IL warm-up episodes (no learner).
. "$(dirname "$0")/e2e_lib.sh"
e2e_il
ibc_replay r0 0 --obs-dim 37 --act-dim 2
P=$IBC_ADDR
rc=0
timeout 120 "$B/ibrl-actor" --replay "$P" --il "$W/il.ckpt" --preset nav2d-quick --episodes 12 --envs 1 \
  >"$IBC_LOGS/a0.log" 2>&1 || rc=$?
check "actor ran 12 episodes and exited 0 (exit $rc)" test "$rc" -eq 0
check "items follow the 3-step rule" python3 "$(dirname "$0")/e2e_items.py" "$B/ibrl-replayctl" "$P" 12 0.99 3
