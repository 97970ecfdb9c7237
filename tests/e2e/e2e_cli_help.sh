#!/usr/bin/env bash
# e2e_cli_help.sh: what the binaries' --help promises (an exit-code line each, the defaults
# ibrl-train uses (tcfg_defaults), every --matmul value ibrl-bench nn accepts) and flag messages that name the
# flag (ibrl-bench e2e) or say that a flag takes no value. Runs nothing long.
set -uo pipefail
B=${IB_BIN_DIR:?IB_BIN_DIR is not set (run through ctest)}
FAILS=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; FAILS=$((FAILS + 1)); }
has() { # has "what" "text" CMD...: CMD exits 0 and its stdout holds text
  local what=$1 text=$2 out rc=0
  shift 2
  out=$("$@" 2>/dev/null) || rc=$?
  if [ "$rc" -eq 0 ] && grep -qF -- "$text" <<<"$out"; then ok "$what"; else bad "$what: exit $rc, no '$text' in: $out"; fi
}
refuses() { # refuses "what" CODE "text" CMD...: CMD exits CODE and its stderr+stdout hold text
  local what=$1 code=$2 text=$3 out rc=0
  shift 3
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq "$code" ] && grep -qF -- "$text" <<<"$out"; then ok "$what (exit $rc)"; else bad "$what: exit $rc (want $code), output: $out"; fi
}

has "ibrl-il --help: exit codes" "exit codes: 0 done, 1 a runtime error" "$B/ibrl-il" --help
has "ibrl-il train --help: exit codes" "exit codes:" "$B/ibrl-il" train --help
has "ibrl-il eval --help: exit codes" "exit codes:" "$B/ibrl-il" eval --help
has "ibrl-replay --help: exit codes" "2 bad flags or setup" "$B/ibrl-replay" --help
has "ibrl-plot --help: exit codes" "exit codes: 0 plot written" "$B/ibrl-plot" --help
has "ibrl-bench --help: exit codes" "exit codes: 0 done" "$B/ibrl-bench" --help
has "ibrl-learner --help: when setup is checked" "dims once the shards answer" "$B/ibrl-learner" --help
has "ibrl-train --help: --env-steps default" "warm-up excluded (default 20000)" "$B/ibrl-train" --help
has "ibrl-train --help: --hidden/--layers defaults" "actor hidden width (default 256); --layers L its hidden layers (default 2)" \
  "$B/ibrl-train" --help
has "ibrl-train --help: critic defaults" "critic hidden width (default 256); --critic-layers L (default 2)" "$B/ibrl-train" --help
has "ibrl-bench nn --help: --matmul auto" "or auto (bf16x3 with AMX-BF16, else fp32)" "$B/ibrl-bench" nn --help
refuses "ibrl-bench e2e --ranks x names the flag" 2 "--ranks 'x' is not an integer in [1, 16]" "$B/ibrl-bench" e2e --ranks x
refuses "ibrl-bench e2e --calls=5 names the flag" 2 "--calls '5' is not an integer in [10, 10000000]" "$B/ibrl-bench" e2e --calls=5
refuses "ibrl-actor --quiet=1: takes no value" 2 "option '--quiet' takes no value" "$B/ibrl-actor" --replay 127.0.0.1:1 --quiet=1
refuses "ibrl-replay --insecure=1: takes no value" 2 "option '--insecure' takes no value" "$B/ibrl-replay" --obs-dim 3 \
  --act-dim 2 --insecure=1

echo "e2e_cli_help: $FAILS failed"
[ "$FAILS" -eq 0 ]
