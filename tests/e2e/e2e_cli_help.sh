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
# ibrl-bench subcommands: one message naming the flag (no glibc "envs: unrecognized option" line
# before the usage text), a refused number names its flag, a --dir that cannot be created is a
# setup error (2, before any part runs), and every HINT has the "(HINT: ...)" form.
only_line() { # only_line "what" CODE "text" CMD...: as refuses, and the output is that one line
  local what=$1 code=$2 text=$3 out rc=0
  shift 3
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq "$code" ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qF -- "$text" <<<"$out"; then ok "$what (exit $rc)"
  else bad "$what: exit $rc (want $code), want one line with '$text', output: $out"; fi
}
only_line "ibrl-bench envs --steps -1 names the flag" 2 "ibrl-bench envs: --steps '-1' is not a positive integer" \
  "$B/ibrl-bench" envs --steps -1
for sub in envs nn gemm learner replay store soak; do
  only_line "ibrl-bench $sub --bogus: one message" 2 "ibrl-bench $sub: unknown option '--bogus' (HINT: ibrl-bench $sub --help" \
    "$B/ibrl-bench" "$sub" --bogus
done
only_line "ibrl-bench nn --reps without a value" 2 "ibrl-bench nn: missing value for option '--reps'" "$B/ibrl-bench" nn --reps
only_line "ibrl-bench store --dir that cannot be created" 2 "cannot create --dir '/nonexistent/x'" "$B/ibrl-bench" store \
  --what persist --dir /nonexistent/x
refuses "ibrl-bench replay: a --replay-bin that is no executable, (HINT: ...) form" 2 \
  "is not an executable (HINT: build ibrl-replay or pass --replay-bin)" "$B/ibrl-bench" replay --replay-bin /nonexistent
refuses "ibrl-actor --quiet=1: takes no value" 2 "option '--quiet' takes no value" "$B/ibrl-actor" --replay 127.0.0.1:1 --quiet=1
refuses "ibrl-replay --insecure=1: takes no value" 2 "option '--insecure' takes no value" "$B/ibrl-replay" --obs-dim 3 \
  --act-dim 2 --insecure=1

echo "e2e_cli_help: $FAILS failed"
[ "$FAILS" -eq 0 ]
