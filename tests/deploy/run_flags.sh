#!/usr/bin/env bash
# run_flags.sh: deploy/local/run.sh refuses bad flags before it installs or builds anything
# (exit 2, with a HINT): an unknown --task (it used to exit 1, and only after deps + build), and
# --no-build without the binaries (it exited 1); its task list is the binaries' (ibrl-train
# --help), and --help says what exit 2 covers. Starts no job: every case stops at the checks.
set -uo pipefail
SRC=${IB_SOURCE_DIR:?IB_SOURCE_DIR is not set (run through ctest)}
RUN=$SRC/deploy/local/run.sh
W=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-run-flags.XXXXXX")
trap 'rm -rf "$W"' EXIT
FAILS=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }
# refuses "what" CODE "text" ARGS...: run.sh ARGS exits CODE within 20 s, its output holds text
# and shows no install/build step.
refuses() {
  local what=$1 code=$2 text=$3 out rc=0
  shift 3
  out=$(timeout 20 bash "$RUN" "$@" 2>&1) || rc=$?
  if [ "$rc" -eq "$code" ] && grep -qF -- "$text" <<<"$out" && ! grep -q "install and build" <<<"$out"; then
    ok "$what (exit $rc)"
  else
    bad "$what: exit $rc (want $code, '$text', no build step), output: $out"
  fi
}
# --no-build on an empty build directory: the flags must be refused before the missing binaries.
refuses "unknown --task" 2 "--task 'bogus' is not a known task (HINT: one of: nav2d nav2d-hard" \
  --task bogus --no-build --build-dir "$W/empty"
refuses "--no-build without the binaries" 2 "ibrl-replay is missing (HINT: drop --no-build" \
  --no-build --build-dir "$W/empty"
refuses "--actors 0" 2 "--actors '0' is not an integer in [1, 64]" --actors 0 --no-build --build-dir "$W/empty"
help=$(bash "$RUN" --help)
grep -qF -- "--no-build without the binaries" <<<"$help" && ok "--help: exit 2 covers --no-build" ||
  bad "--help does not say that --no-build without the binaries exits 2"
# The task list run.sh checks against is the binaries' own.
if [ -x "${IB_BIN_DIR:-}/ibrl-train" ]; then
  known=$("$IB_BIN_DIR/ibrl-train" --help | sed -n 's/.*known: *//p' | tr -s ' ' | sed 's/ *$//')
  listed=$(bash "$RUN" --help | sed -n '/--task T/{n;p}' | tr -s ' ' | sed 's/^ *//; s/ *$//')
  [ -n "$known" ] && [ "$known" = "$listed" ] && ok "run.sh's tasks are ibrl-train's ($known)" ||
    bad "run.sh lists '$listed', ibrl-train knows '$known'"
else
  echo "skip the task-list comparison: ibrl-train is not built"
fi
echo "run_flags: $FAILS failed"
[ "$FAILS" -eq 0 ]
