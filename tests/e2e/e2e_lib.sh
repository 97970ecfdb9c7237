# shellcheck shell=bash disable=SC2034
# e2e_lib.sh: shared setup of the e2e scripts (sourced). Gives: B (bin dir), W (a fresh work
# directory removed at exit), the cluster functions (deploy/local/cluster.sh), check/fail
# helpers, and e2e_il: 5 noisy nav2d demos and a quickly trained IL policy (nav2d-quick sizes).
set -euo pipefail
B=${IB_BIN_DIR:?IB_BIN_DIR is not set (run through ctest)}
SRC=${IB_SOURCE_DIR:?IB_SOURCE_DIR is not set (run through ctest)}
W=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-e2e.XXXXXX")
IBC_BIN=$B
IBC_LOGS=$W/logs
mkdir -p "$IBC_LOGS"
# shellcheck source=../../deploy/local/cluster.sh
. "$SRC/deploy/local/cluster.sh"
ibc_mpi_env
FAILS=0
e2e_cleanup() {
  local rc=$?
  ibc_stop_all
  if [ "$rc" -ne 0 ] || [ "$FAILS" -ne 0 ]; then
    echo "---- logs of the failed run ($W/logs) ----"
    for f in "$IBC_LOGS"/*.log; do
      [ -f "$f" ] || continue
      echo "== $f"
      tail -n 15 "$f"
    done
  fi
  if [ "$FAILS" -eq 0 ] && [ "$rc" -eq 0 ] && [ -z "${IB_E2E_KEEP:-}" ]; then rm -rf "$W"; fi
  [ "$FAILS" -eq 0 ] || exit 1
  exit "$rc"
}
trap e2e_cleanup EXIT

check() { # check "what" command...: passes when the command succeeds
  local what=$1
  shift
  if "$@"; then
    echo "ok   $what"
  else
    echo "FAIL $what"
    FAILS=$((FAILS + 1))
  fi
}

# Runs CMD, expects exit code CODE and stderr+stdout containing TEXT.
expect_exit() {
  local what=$1 code=$2 text=$3
  shift 3
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq "$code" ] && grep -q -- "$text" <<<"$out"; then
    echo "ok   $what (exit $rc)"
  else
    echo "FAIL $what: exit $rc (want $code), output: $out"
    FAILS=$((FAILS + 1))
  fi
}

# As expect_exit, and the last output line holding TEXT (the error) has exactly one "HINT" and
# none of the words in $NO_HINT_WORDS (space separated; e.g. a flag this binary does not have).
expect_one_hint() {
  local what=$1 code=$2 text=$3
  shift 3
  local out rc=0 line n w bad=""
  out=$("$@" 2>&1) || rc=$?
  line=$(grep -- "$text" <<<"$out" | tail -n 1 || true)
  n=$(grep -o HINT <<<"$line" | wc -l || true)
  for w in ${NO_HINT_WORDS:-}; do
    if grep -qF -- "$w" <<<"$line"; then bad="$bad $w"; fi
  done
  if [ "$rc" -eq "$code" ] && [ -n "$line" ] && [ "$n" -eq 1 ] && [ -z "$bad" ]; then
    echo "ok   $what (exit $rc, one HINT)"
  else
    echo "FAIL $what: exit $rc (want $code), $n HINTs (want 1)${bad:+, names$bad}, line: ${line:-none}; output: $out"
    FAILS=$((FAILS + 1))
  fi
}

e2e_il() {
  "$B/ibrl-demos" generate --task nav2d --episodes 5 --noise 0.3 --seed 1 --out "$W/demos.hdf5" --quiet >"$IBC_LOGS/demos.log" 2>&1
  "$B/ibrl-il" train --demos "$W/demos.hdf5" --task nav2d --arch bc --chunk 1 --n-stack 1 --preset nav2d-quick --steps 200 \
    --seed 1 --out "$W/il.ckpt" --quiet >"$IBC_LOGS/il.log" 2>&1
}

# The "online" table size of each shard, space separated (via ibrl-replayctl --json).
online_sizes() {
  "$B/ibrl-replayctl" --shards "$1" --json info --rate-ms 0 | grep -o '"name":"online","kind":"online","size":[0-9]*' |
    sed 's/.*://' | paste -sd' ' -
}
