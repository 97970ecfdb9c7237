#!/usr/bin/env bash
# learner_e2e.sh (label mpi): the real ibrl-learner under mpirun -np 2 against an ibrl-replay
# started here on 127.0.0.1 with preloaded nav2d demos and a fake actor (fake_actor.c) that
# inserts online transitions stamped with the published weight versions.
#   A. 60 updates: exit 0, weight versions advance, losses finite, staleness and the wait for
#      batches measured, the next batch fetched while training, files.
#   B. --resume to 100 updates: continues from 60 (rows appended, versions keep rising).
#   C. a replay whose rate limiter blocks (samples-per-insert, no inserts): the learner waits
#      without hanging and exits 0 with a final checkpoint on SIGTERM.
#   E. two actors and a samples-per-insert limit: the replay's limiter holds samples/inserts at
#      the ratio (the UTD), whatever the number of actors.
#   F. the replay shard restarts mid-run (from its checkpoint): the learner waits and goes on.
#   0. a missing IL file with no replay listening: exit 2 at once (local setup comes first).
#   G. bad inputs: missing IL file, wrong dims, unreachable replay, uneven batch, resume of
#      nothing, unknown task, a blob above the message limit, an existing run; each a clear
#      message and a nonzero exit, bounded in time.
# Every wait is bounded; all processes started here are stopped by PID on exit.
set -u
BIN="${IB_BIN_DIR:?IB_BIN_DIR not set}"
FAKE="${FAKE_ACTOR:?FAKE_ACTOR not set}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-learner-e2e-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
export OMPI_MCA_mpi_yield_when_idle=1 # oversubscribed 2-core CI: do not spin while waiting
mpi() { timeout 150 mpirun -np 2 --bind-to none "$@" </dev/null; } # no stdin: mpirun would forward it
fails=0
check() { # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "  PASS $what"; else echo "  FAIL $what"; fails=$((fails + 1)); fi
}
# The column of metrics.csv named $2 of the row whose `updates` column is $3 (file $1).
col() { awk -F, -v name="$2" -v up="$3" 'NR==1{for(i=1;i<=NF;i++) if($i==name) c=i; next} $3==up{print $c}' "$1"; }
finite() { [[ "$1" =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]]; }
start_replay() { # start_replay <log> <args...>: sets PORT
  local log=$1; shift
  "$BIN/ibrl-replay" --port 0 --obs-dim 37 --act-dim 2 "$@" >"$log" 2>&1 &
  PIDS+=($!)
  PORT=""
  for _ in $(seq 1 100); do
    PORT=$(grep -o "listening on 127.0.0.1:[0-9]*" "$log" | grep -o "[0-9]*$")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "    ibrl-replay did not start:"; sed 's/^/    | /' "$log"; return 1
}

cd "$TMP" || exit 1
echo "0. local setup errors come before the replay: a missing --il, no replay listening"
# Port 1 has no listener and --wait is its 300 s default: only a check made before connecting
# ends this quickly, with exit 2 (setup) and the file named on stderr.
T0=$(date +%s)
timeout 60 mpirun -np 2 --bind-to none "$BIN/ibrl-learner" --replay 127.0.0.1:1 --il nothere0.ckpt --out bad0 \
  --updates 5 </dev/null >d0.out 2>d0.err
rc=$?
T1=$(date +%s)
check "missing IL, no replay: exit 2 (got $rc)" test $rc = 2
check "missing IL, no replay: file named on stderr" grep -q "nothere0.ckpt.*HINT" d0.err
check "missing IL, no replay: at once ($((T1 - T0)) s)" test $((T1 - T0)) -le 20
check "missing IL, no replay: no run directory made" test ! -e bad0

echo "setup: demos, IL policy, replay, fake actor"
"$BIN/ibrl-demos" generate --task nav2d --episodes 10 --seed 3 --out demos.hdf5 >demos.log 2>&1 || { cat demos.log; exit 1; }
"$BIN/ibrl-il" train --demos demos.hdf5 --out il.ckpt --steps 100 --hidden 32 --quiet >il.log 2>&1 || { cat il.log; exit 1; }
start_replay replay1.log || exit 1
R1="127.0.0.1:$PORT"
"$BIN/ibrl-replayctl" --shards "$R1" import-demos demos.hdf5 --stack 1 --chunk 1 >import.log 2>&1 || { cat import.log; exit 1; }
timeout 120 "$FAKE" --replay "$R1" --obs-dim 37 --act-dim 2 --items 20000 --rate 400 --seconds 100 >fake.log 2>&1 &
FAKE_PID=$!
PIDS+=($FAKE_PID)

COMMON=(--replay "$R1" --il il.ckpt --preset nav2d-quick --wait 30 --publish-every 10 --check-every 10 --log-every 20 --ckpt-every 30)
echo "A. 60 updates"
mpi "$BIN/ibrl-learner" "${COMMON[@]}" --updates 60 --out run >a.log 2>&1
rc=$?
check "run exits 0 (got $rc)" test $rc = 0
[ $rc = 0 ] || sed 's/^/    | /' a.log | grep -v "^    | \[vm" | tail -20
check "run directory files" test -f run/learner.state -a -f run/learner.cfg -a -f run/config.json -a -f run/metrics.csv -a -f run/summary.json
check "rows at 20, 40, 60 updates" test "$(awk -F, 'NR>1{printf "%s ", $3}' run/metrics.csv)" = "20 40 60 "
V20=$(col run/metrics.csv weight_version 20); V60=$(col run/metrics.csv weight_version 60)
check "weight versions advance ($V20 -> $V60)" test "${V60:-0}" -gt "${V20:-0}"
check "critic loss finite at 60" finite "$(col run/metrics.csv critic_loss 60)"
check "actor loss finite at 60" finite "$(col run/metrics.csv actor_loss 60)"
check "throughput logged" finite "$(col run/metrics.csv updates_per_s 60)"
check "staleness measured from the actor's rows" finite "$(col run/metrics.csv staleness_mean 60)"
check "time waiting for batches logged" finite "$(col run/metrics.csv sample_ms 60)"
check "and on the closing line" grep -q "waiting for batches [0-9.]* ms per update" a.log
check "weights checked equal across ranks" grep -q "weights crc" a.log
check "agent checkpoint of update 60" test -f run/agent-60.ckpt
# Each rank keeps its next batch in flight while it trains (rc_sampler): after 60 updates the shard
# has served 61 batches per rank, the last one while the update of batch 60 ran (it is cancelled
# unread at exit). Fetched one at a time, it would be exactly 60 x the global batch.
G=$(grep -o "global batch [0-9]*" a.log | grep -o "[0-9]*$")
SAMPLED=$("$BIN/ibrl-replayctl" --shards "$R1" info --json 2>/dev/null | grep -o '"sampled":[0-9]*' |
  awk -F: '{s += $2} END {print s + 0}')
check "the next batch was in flight ($SAMPLED rows sampled, 60 batches of ${G:-?} used)" \
  test "${SAMPLED:-0}" -ge $((61 * ${G:-1000000}))

echo "B. --resume to 100 updates"
mpi "$BIN/ibrl-learner" --replay "$R1" --il il.ckpt --wait 30 --publish-every 10 --check-every 10 --log-every 20 \
  --ckpt-every 30 --updates 100 --out run --resume >b.log 2>&1
rc=$?
check "resume exits 0 (got $rc)" test $rc = 0
[ $rc = 0 ] || sed 's/^/    | /' b.log | grep -v "^    | \[vm" | tail -20
check "resumed, not restarted" grep -q "resuming ibrl" b.log
check "rows continue at 80, 100" test "$(awk -F, 'NR>1{printf "%s ", $3}' run/metrics.csv)" = "20 40 60 80 100 "
V100=$(col run/metrics.csv weight_version 100)
check "versions keep rising ($V60 -> $V100)" test "${V100:-0}" -gt "${V60:-0}"
check "critic loss finite at 100" finite "$(col run/metrics.csv critic_loss 100)"
check "sample_ms after the resume" finite "$(col run/metrics.csv sample_ms 100)"
check "old agent checkpoints removed" test "$(ls run/agent-*.ckpt | wc -l)" = 1
"$BIN/ibrl-replayctl" --shards "$R1" info >info.log 2>&1
kill -TERM $FAKE_PID 2>/dev/null
wait $FAKE_PID 2>/dev/null
check "the fake actor verified the published blobs ($(grep -c "checked blob" fake.log))" test "$(grep -c "checked blob" fake.log)" -ge 3

echo "C. rate limiter blocks, SIGTERM stops cleanly"
start_replay replay2.log --samples-per-insert 4 --error-buffer 300 || exit 1
R2="127.0.0.1:$PORT"
"$BIN/ibrl-replayctl" --shards "$R2" import-demos demos.hdf5 --stack 1 --chunk 1 >import2.log 2>&1
mpi "$BIN/ibrl-learner" --replay "$R2" --il il.ckpt --preset nav2d-quick --log-every 1 --deadline-ms 300 \
  --out run2 >c.log 2>&1 &
MP=$!
PIDS+=($MP)
for _ in $(seq 1 200); do grep -q "replay not giving batches" c.log && break; sleep 0.1; done
check "learner waits on the limiter (and says so)" grep -q "replay not giving batches" c.log
# What Kubernetes does to the ranks: SIGTERM to each (mpirun itself exits 1 when signalled).
# The ranks are the ibrl-learner processes among $MP's descendants (subshell, timeout, mpirun).
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
RANKS=""
for p in $(descendants $MP); do [ "$(ps -o comm= -p "$p")" = ibrl-learner ] && RANKS="$RANKS $p"; done
check "found the 2 ranks ($RANKS)" test "$(echo $RANKS | wc -w)" = 2
kill -TERM $RANKS 2>/dev/null
T0=$(date +%s)
wait $MP
rc=$?
T1=$(date +%s)
check "exits 0 after SIGTERM (got $rc)" test $rc = 0
check "within 15 s of the signal ($((T1 - T0)) s)" test $((T1 - T0)) -le 15
check "final checkpoint on SIGTERM" grep -q "stopped by signal" c.log
check "state file written" test -f run2/learner.state
[ $rc = 0 ] || sed 's/^/    | /' c.log | grep -v "^    | \[vm" | tail -20

echo "E. the replay's rate limiter sets the UTD, whatever the number of actors"
# spi 16 samples per inserted item, min_size 100, error_buffer 1000: the limiter keeps the
# cursor c = 16 * inserts - samples within [16*100 - 1000, 16*100 + 1000] (up to one batch).
start_replay replay3.log --samples-per-insert 16 --error-buffer 1000 --min-size 100 || exit 1
R3="127.0.0.1:$PORT"
"$BIN/ibrl-replayctl" --shards "$R3" import-demos demos.hdf5 --stack 1 --chunk 1 >import3.log 2>&1
for a in 1 2; do
  timeout 100 "$FAKE" --replay "$R3" --obs-dim 37 --act-dim 2 --items 20000 --rate 150 --actor-id $a --seconds 90 >fake3_$a.log 2>&1 &
  PIDS+=($!)
done
mpi "$BIN/ibrl-learner" --replay "$R3" --il il.ckpt --preset nav2d-quick --wait 30 --updates 150 --log-every 50 \
  --out run3 >e.log 2>&1
check "limited run exits 0" test $? = 0
"$BIN/ibrl-replayctl" --shards "$R3" info >info3.log 2>&1
I=$(grep -o "inserts [0-9]*" info3.log | head -1 | grep -o "[0-9]*"); S=$(grep -o "samples [0-9]*" info3.log | head -1 | grep -o "[0-9]*")
C=$(( 16 * ${I:-0} - ${S:-0} ))
check "samples/inserts follows spi 16 (inserts ${I:-?}, samples ${S:-?}, cursor $C in [472, 2856])" \
  test "${S:-0}" -ge 19200 -a $C -ge 472 -a $C -le 2856
echo "    learner: $(grep "updates 150 " e.log | sed 's/.*INFO //')"

echo "F. a replay shard restarts mid-run: the learner waits and goes on"
mkdir -p ck4
start_replay replay4.log --ckpt-dir ck4 || exit 1
R4="127.0.0.1:$PORT"; P4=$PORT; RP4=${PIDS[${#PIDS[@]}-1]}
"$BIN/ibrl-replayctl" --shards "$R4" import-demos demos.hdf5 --stack 1 --chunk 1 >import4.log 2>&1
mpi "$BIN/ibrl-learner" --replay "$R4" --il il.ckpt --preset nav2d-quick --updates 200 --log-every 50 --wait 60 \
  --deadline-ms 1000 --out run4 >f.log 2>&1 &
MP=$!
PIDS+=($MP)
for _ in $(seq 1 300); do grep -q "updates 50 " f.log && break; sleep 0.1; done
kill -TERM $RP4; wait $RP4 2>/dev/null # the shard writes its checkpoint and stops
sleep 2
"$BIN/ibrl-replay" --port "$P4" --obs-dim 37 --act-dim 2 --ckpt-dir ck4 >replay4b.log 2>&1 &
PIDS+=($!)
wait $MP
rc=$?
check "learner survives the restart, exits 0 (got $rc)" test $rc = 0
check "it noticed and resumed sampling" grep -q "sampling resumed" f.log
check "rows through 200 updates" test "$(awk -F, 'NR>1{printf "%s ", $3}' run4/metrics.csv)" = "50 100 150 200 "

echo "G. bad inputs"
mpi "$BIN/ibrl-learner" --replay "$R1" --il nothere.ckpt --out bad1 --updates 5 >d1.log 2>&1
check "missing IL file: exit 2" test $? = 2
check "missing IL file: named" grep -q "nothere.ckpt" d1.log
mpi "$BIN/ibrl-learner" --replay "$R1" --il il.ckpt --obs-dim 5 --act-dim 2 --out bad2 --updates 5 >d2.log 2>&1
check "wrong dims: nonzero exit" test $? != 0
check "wrong dims: shard and dims named" grep -q "obs_dim 37 act_dim 2 but the learner uses 5 2" d2.log
T0=$(date +%s)
mpi "$BIN/ibrl-learner" --replay 127.0.0.1:1 --il il.ckpt --out bad3 --updates 5 --wait 2 --deadline-ms 300 >d3.log 2>&1
rc=$?
T1=$(date +%s)
check "unreachable replay: nonzero exit" test $rc != 0
check "unreachable replay: bounded ($((T1 - T0)) s)" test $((T1 - T0)) -le 30
check "unreachable replay: shard named" grep -q "127.0.0.1:1" d3.log
mpi "$BIN/ibrl-learner" --replay "$R1" --il il.ckpt --batch 127 --out bad4 --updates 5 >d4.log 2>&1
check "uneven batch: exit 2" test $? = 2
check "uneven batch: explained" grep -q "does not split evenly over 2 ranks" d4.log
mpi "$BIN/ibrl-learner" --replay "$R1" --out nothing --resume >d5.log 2>&1
check "resume of nothing: nonzero exit" test $? != 0
check "resume of nothing: file named" grep -q "nothing/learner.cfg" d5.log
mpi "$BIN/ibrl-learner" --replay "$R1" --il il.ckpt --task nav3d --out bad6 --updates 5 >d8.log 2>&1
check "unknown task: exit 2" test $? = 2
check "unknown task: known names listed" grep -q "nav2d" d8.log
mpi "$BIN/ibrl-learner" --replay "$R1" --il il.ckpt --task nav2d --out bad7 --updates 5 --log-every 5 >d9.log 2>&1
check "dims from --task nav2d: runs" test $? = 0
mpi "$BIN/ibrl-learner" --replay "$R1" --il il.ckpt --preset paper-state --out bad8 --updates 5 >d10.log 2>&1
check "blob larger than the message limit: exit 2" test $? = 2
check "blob larger than the message limit: explained" grep -q "max-message-mb" d10.log
"$BIN/ibrl-learner" --replay "$R1" --out x --bogus >d6.log 2>&1
check "bad flag: exit 2 without mpirun" test $? = 2
mpi "$BIN/ibrl-learner" "${COMMON[@]}" --updates 5 --out run >d7.log 2>&1
check "existing run without --resume: refused" grep -q "already holds a learner run" d7.log

echo "learner_e2e: $fails failed"
[ $fails = 0 ]
