#!/usr/bin/env bash
# mpi_launch.sh (label deploy): the bare-metal launch script deploy/mpi/run-learner.sh runs the
# real ibrl-learner with mpirun on this host (2 ranks, bound to one core each, tiny budget)
# against an ibrl-replay started here on 127.0.0.1 with a token, fed by nav2d demos and one
# ibrl-actor. Checks: exit 0, both ranks ran and were bound, the token reached the ranks through
# -x (calls would fail UNAUTHENTICATED otherwise), metrics rows, published weights. Then the
# script's own failure paths: bad flags, missing binary, unreadable hostfile, a learner error
# propagating as a nonzero exit. Last, the MPIJob launcher's own script from the dev render runs
# here (image paths mapped to the build): first start, then a restart that must resume the run.
# Every wait is bounded; processes started here are stopped by PID.
# Exit 77 (ctest: skipped) only while ibrl-learner is not built.
set -u
BIN="${IB_BIN_DIR:?IB_BIN_DIR not set}"
SRC="${IB_SOURCE_DIR:?IB_SOURCE_DIR not set}"
RUN="$SRC/deploy/mpi/run-learner.sh"
for b in ibrl-learner ibrl-replay ibrl-replayctl ibrl-demos ibrl-il ibrl-actor; do
  if [ ! -x "$BIN/$b" ]; then
    echo "SKIP: $b is not built yet in $BIN (the launch test needs it)"
    exit 77
  fi
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-deploy-mpi-XXXXXX")
PIDS=()
cleanup() { # SIGTERM, up to 5 s to stop (the replay drains), then SIGKILL
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
export OMPI_MCA_mpi_yield_when_idle=1 # 2 shared cores: ranks must not spin while waiting
fails=0
check() { # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "  PASS $what"; else echo "  FAIL $what"; fails=$((fails + 1)); fi
}
expect_exit() { # expect_exit <code> <message regex> <description> <command...>: bounded run
  local code=$1 re=$2 what=$3; shift 3
  local out rc
  out=$(timeout 60 "$@" 2>&1); rc=$?
  if [ "$rc" = "$code" ] && grep -Eq -- "$re" <<<"$out"; then echo "  PASS $what (exit $rc)"
  else echo "  FAIL $what: exit $rc, wanted $code and /$re/:"; printf '%s\n' "$out" | tail -5 | sed 's/^/    | /'; fails=$((fails + 1)); fi
}

cd "$TMP" || exit 1
TOKEN=deploy-test-token
echo "setup: demos, IL policy, replay (token), demos imported, one actor"
"$BIN/ibrl-demos" generate --task nav2d --episodes 10 --seed 3 --out demos.hdf5 --quiet >demos.log 2>&1 || { cat demos.log; exit 1; }
"$BIN/ibrl-il" train --demos demos.hdf5 --out il.ckpt --steps 100 --hidden 32 --quiet >il.log 2>&1 || { cat il.log; exit 1; }
"$BIN/ibrl-replay" --port 0 --obs-dim 37 --act-dim 2 --token "$TOKEN" >replay.log 2>&1 &
PIDS+=($!)
PORT=""
for _ in $(seq 1 100); do
  PORT=$(grep -o "listening on 127.0.0.1:[0-9]*" replay.log | grep -o "[0-9]*$")
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "ibrl-replay did not start:"; cat replay.log; exit 1; }
R="127.0.0.1:$PORT"
"$BIN/ibrl-replayctl" --shards "$R" --token "$TOKEN" import-demos demos.hdf5 --stack 1 --chunk 1 >import.log 2>&1 || { cat import.log; exit 1; }
IBRL_ACTOR_TOKEN=$TOKEN timeout 200 "$BIN/ibrl-actor" --replay "$R" --il il.ckpt --preset nav2d-quick \
  --env-steps 20000 --minutes 3 --quiet >actor.log 2>&1 &
PIDS+=($!)

echo "A. run-learner.sh -n 2 (bound, token exported with -x), 20 updates"
IBRL_LEARNER_TOKEN=$TOKEN timeout 180 "$RUN" -n 2 -b "$BIN" -t 1 -- --replay "$R" --il il.ckpt --preset nav2d-quick \
  --updates 20 --publish-every 10 --check-every 10 --log-every 10 --ckpt-every 0 --wait 60 --out run >a.log 2>&1
rc=$?
check "launch exits 0" test $rc = 0
[ $rc = 0 ] || tail -25 a.log | sed 's/^/    | /'
check "mpirun command exports the token by name (-x IBRL_LEARNER_TOKEN)" grep -q -- "-x IBRL_LEARNER_TOKEN" a.log
check "token value not on the command line" bash -c "! grep -q -- '$TOKEN' a.log"
check "rank 0 and rank 1 both ran (--tag-output)" bash -c "grep -q '^\[1,0\]' a.log && grep -q '^\[1,1\]' a.log"
check "ranks bound to cores (--report-bindings)" grep -Eq "MCW rank 1 bound to" a.log
check "metrics rows at 10 and 20 updates" test "$(awk -F, 'NR>1{printf "%s ", $3}' run/metrics.csv 2>/dev/null)" = "10 20 "
ver=$("$BIN/ibrl-replayctl" --shards "$R" --token "$TOKEN" --json params 2>/dev/null | grep -oE '"version": *[0-9]+' | grep -oE '[0-9]+$')
check "weights published to the replay (version ${ver:-none})" test "${ver:-0}" -gt 0

echo "B. failure paths of run-learner.sh"
expect_exit 2 "unknown option" "bad flag" "$RUN" --bogus
expect_exit 2 "not a positive integer" "--np 0" "$RUN" -n 0 -b "$BIN" -- --replay "$R" --out x
expect_exit 2 "no ibrl-learner at" "missing binary" "$RUN" -b "$TMP/nope" -- --replay "$R" --out x
expect_exit 2 "hostfile .* is not readable" "missing hostfile" "$RUN" -H "$TMP/nohosts" -b "$BIN" -- --replay "$R" --out x
expect_exit 2 "no ibrl-learner flags" "no learner flags" "$RUN" -b "$BIN"
expect_exit 0 "^usage:" "--help" "$RUN" --help
echo "C. a learner error propagates: wrong token -> nonzero exit, bounded"
out=$(IBRL_LEARNER_TOKEN=wrong timeout 120 "$RUN" -n 2 -b "$BIN" --no-bind -- --replay "$R" --il il.ckpt --preset nav2d-quick \
  --updates 5 --wait 5 --deadline-ms 2000 --out run-bad 2>&1); rc=$?
check "wrong token: exit $rc is nonzero and not a timeout" test $rc -ne 0 -a $rc -ne 124
[ $rc -ne 0 ] && [ $rc -ne 124 ] || printf '%s\n' "$out" | tail -8 | sed 's/^/    | /'

echo "D. the MPIJob launcher command of the dev render, run here (paths mapped to this host)"
# The launcher's shell script and its ConfigMap environment, straight from the rendered manifest;
# only the image paths, the shard addresses and a budget (IBRL_LEARNER_UPDATES) are local.
/usr/bin/python3 - "$SRC/deploy/k8s/rendered/dev.yaml" "$BIN" "$TMP/shared" "$R" >launcher.sh <<'PY' || { echo "  FAIL cannot extract the launcher"; fails=$((fails + 1)); }
import shlex, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
job = next(d for d in docs if d["kind"] == "MPIJob")
c = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
for ref in c.get("envFrom", []):
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["configMapRef"]["name"])
    for k, v in cm["data"].items():
        print(f"export {k}={shlex.quote(v)}")
print(f"export REPLAY_LIST={shlex.quote(sys.argv[4])} PARAMS_ENDPOINT={shlex.quote(sys.argv[4])}")
if c["command"] != ["/bin/sh", "-c"]:
    sys.exit("the launcher is not /bin/sh -c SCRIPT")
print(c["args"][0].replace("/opt/ibrl/bin/", sys.argv[2] + "/").replace("/var/lib/ibrl/shared", sys.argv[3]))
PY
mkdir -p shared/il shared/runs && cp il.ckpt* shared/il/
launch() { # launch <updates>: the launcher script, bounded, with a budget
  env IBRL_LEARNER_TOKEN=$TOKEN IBRL_LEARNER_UPDATES=$1 IBRL_LEARNER_LOG_EVERY=10 IBRL_LEARNER_PUBLISH_EVERY=10 \
    IBRL_LEARNER_CHECK_EVERY=10 timeout 180 /bin/sh launcher.sh >"d$1.log" 2>&1
}
launch 20; rc=$?
check "launcher script exits 0 (first start)" test $rc = 0
[ $rc = 0 ] || tail -15 d20.log | sed 's/^/    | /'
run_dir=shared/runs/$(sed -n 's/^export RUN_NAME=//p' launcher.sh)
check "run directory has rows up to 20 updates" test "$(awk -F, 'NR>1{u=$3} END{print u}' "$run_dir/metrics.csv" 2>/dev/null)" = 20
launch 40; rc=$?
check "a restarted launcher resumes the run (exit $rc)" bash -c "test $rc = 0 && grep -q 'resuming the run' d40.log"
check "resumed run continues to 40 updates" test "$(awk -F, 'NR>1{u=$3} END{print u}' "$run_dir/metrics.csv" 2>/dev/null)" = 40

echo "$((fails == 0 ? 1 : 0)) passed, $((fails > 0 ? 1 : 0)) failed ($fails failed checks)"
[ $fails = 0 ]
