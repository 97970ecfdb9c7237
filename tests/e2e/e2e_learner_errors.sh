#!/usr/bin/env bash
# e2e_learner_errors.sh: ibrl-learner (one rank, no mpirun) refuses bad flags, bad environment
# variables and a run directory it cannot resume with a clear message and the documented exit
# code (2 for usage and setup), lets a flag override a bad variable, and names what to change
# when the replay holds other dims.
. "$(dirname "$0")/e2e_lib.sh"
L=$B/ibrl-learner
expect_exit "--help" 0 "usage: mpirun -np N ibrl-learner" "$L" --help
expect_exit "unknown flag" 2 "unknown option '--bogus'" "$L" --bogus
expect_exit "value for a flag without one" 2 "'--quiet' takes no value" "$L" --replay 127.0.0.1:1 --out "$W/r" --quiet=1
expect_exit "bad variable is named" 2 "(environment) --batch" env IBRL_LEARNER_BATCH=abc "$L" --replay 127.0.0.1:1 --out "$W/r"
# A refused number is quoted, as every other flag's (it said "--minutes: not a number in ...").
expect_exit "bad --minutes is quoted" 2 "--minutes 'nan' is not a number in" "$L" --replay 127.0.0.1:1 \
  --out "$W/r" --minutes nan
expect_exit "bad preset variable is named" 2 "(environment) --preset" env IBRL_LEARNER_PRESET=huge "$L" --replay 127.0.0.1:1 \
  --out "$W/r"
expect_exit "one dim variable alone is named" 2 "(environment) --obs-dim: give both" env IBRL_LEARNER_OBS_DIM=5 "$L" \
  --replay 127.0.0.1:1 --out "$W/r"
# A missing IL policy file is named with where the path came from (flag or variable).
expect_exit "missing IL file from a variable is named" 2 "(environment) --il: cannot read '$W/none.il'" env \
  IBRL_LEARNER_IL="$W/none.il" "$L" --replay 127.0.0.1:1 --out "$W/r"
expect_exit "missing IL file from the flag" 2 "HINT: train a policy with ibrl-il" "$L" --replay 127.0.0.1:1 \
  --out "$W/r" --il "$W/none.il"
# --resume of a directory without learner.cfg: setup, exit 2 (as ibrl-train). The bad variables
# here are overridden by flags, so they must not be read at all.
mkdir -p "$W/empty"
expect_exit "resume without learner.cfg" 2 "empty/learner.cfg" "$L" --replay 127.0.0.1:1 --out "$W/empty" --resume
expect_exit "resume of a missing directory" 2 "HINT: --resume needs a run directory" "$L" --replay 127.0.0.1:1 \
  --out "$W/nothing" --resume
expect_exit "flags beat bad variables" 2 "empty/learner.cfg" env IBRL_LEARNER_BATCH=abc IBRL_LEARNER_PRESET=huge "$L" \
  --batch 64 --preset nav2d-quick --replay 127.0.0.1:1 --out "$W/empty" --resume

# Dims that differ from the shard's: the HINT names what the learner has (no --chunk flag).
ibc_replay r-dims 0 --obs-dim 5 --act-dim 2 --online-capacity 1000 --demo-capacity 1000
P=$IBC_ADDR
expect_exit "explicit dims differ" 2 "HINT: give the learner the shards' --obs-dim and --act-dim" "$L" --replay "$P" \
  --method rlpd --obs-dim 6 --act-dim 2 --out "$W/d1" --wait 5
expect_exit "--task dims differ" 2 "HINT: --task nav2d with --preset's chunk 1 and frame stack 1" "$L" --replay "$P" \
  --method rlpd --task nav2d --out "$W/d2" --wait 5
if grep -q -- "--chunk" <<<"$("$L" --replay "$P" --method rlpd --task nav2d --out "$W/d3" --wait 5 2>&1)"; then
  check "the dims HINT names no --chunk flag" false
else
  check "the dims HINT names no --chunk flag" true
fi

# An --out that cannot be created, or holds no writable place, is a setup error (2) found before
# the replay is contacted, as ibrl-train's (it exited 1 after reaching the replay; here the replay
# is unreachable, so the old order waited --wait first).
NO_HINT_WORDS="reachable" expect_one_hint "--out that cannot be created" 2 "cannot create /proc/lr" "$L" \
  --replay 127.0.0.1:1 --method rlpd --out /proc/lr --wait 3
if [ "$(id -u)" -eq 0 ]; then RO=/proc/sys; else RO=$W/ro && mkdir -p "$RO" && chmod 0555 "$RO"; fi
NO_HINT_WORDS="reachable" expect_one_hint "--out where no file can be created" 2 "--out $RO: cannot create a file in it" \
  "$L" --replay 127.0.0.1:1 --method rlpd --out "$RO" --wait 3

# A learner that got no batch: one HINT (the client's about the empty replay; it appended its own
# second one), and no curve for 0 updates, said in one note (it logged "gnuplot failed").
out=$("$L" --replay "$P" --method rlpd --obs-dim 5 --act-dim 2 --out "$W/d5" --wait 1 2>&1) || true
NO_HINT_WORDS="" expect_one_hint "no batch from an empty replay" 1 "no batch from the replay" "$L" --replay "$P" \
  --method rlpd --obs-dim 5 --act-dim 2 --out "$W/d6" --wait 1
check "0 updates: no gnuplot failure" bash -c '! grep -q "gnuplot failed" <<<"$1"' _ "$out"
check "0 updates: one note, no curve.png" bash -c 'grep -q "no curve.png: " <<<"$1" && [ ! -e "$2/curve.png" ]' _ "$out" \
  "$W/d5"
