#!/usr/bin/env bash
# demos_cli.sh: the ibrl-demos command line: generate + info, reproducibility, and each bad
# usage / impossible request with its exit code (0 ok, 1 runtime error, 2 usage or setup) and message.
set -u
BIN="${IB_BIN_DIR:?IB_BIN_DIR not set}/ibrl-demos"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-demos-cli-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
check() { # check <description> <condition...>
  local what=$1; shift
  if "$@"; then echo "  PASS $what"; else echo "  FAIL $what"; fails=$((fails + 1)); fi
}
run() { # run <expected exit> <stderr/stdout file> <args...>
  local want=$1 out=$2; shift 2
  "$BIN" "$@" >"$out" 2>&1
  local got=$?
  if [ "$got" != "$want" ]; then echo "    exit $got, want $want: ibrl-demos $*"; sed 's/^/    | /' "$out"; return 1; fi
}

check "--help exits 0" run 0 "$TMP/o" --help
check "generate --help lists tasks" bash -c "'$BIN' generate --help | grep -q nav2d-hard"
check "no command exits 2" run 2 "$TMP/o"
check "unknown command exits 2" run 2 "$TMP/o" frobnicate
check "bad flag exits 2" run 2 "$TMP/o" generate --out "$TMP/x.hdf5" --bogus
check "bad flag is named" grep -q "ibrl-demos generate: unknown option '--bogus'" "$TMP/o"
check "a value for --quiet exits 2" run 2 "$TMP/o" generate --out "$TMP/x.hdf5" --quiet=1
check "--quiet takes no value" grep -q "option '--quiet' takes no value" "$TMP/o"
check "a missing value exits 2" run 2 "$TMP/o" info "$TMP/x.hdf5" --obs-keys
check "the missing value is named" grep -q "missing value for option '--obs-keys'" "$TMP/o"
check "missing --out exits 2" run 2 "$TMP/o" generate --episodes 3
check "--out named in message" grep -q -- "--out" "$TMP/o"
check "bad --episodes exits 2" run 2 "$TMP/o" generate --out "$TMP/x.hdf5" --episodes 0
check "bad --noise exits 2" run 2 "$TMP/o" generate --out "$TMP/x.hdf5" --noise nan
check "unknown task exits 2" run 2 "$TMP/o" generate --out "$TMP/x.hdf5" --task nav3d
check "unknown task lists known names" grep -q "metaworld/coffeepush" "$TMP/o"
# A Meta-World task without its asset folder is setup too (exit 2, as ibrl-il and ibrl-train).
export IBRL_METAWORLD_ASSETS="$TMP/no-assets"
check "missing Meta-World assets exit 2" run 2 "$TMP/o" generate --task metaworld/assembly --episodes 1 --quiet --out "$TMP/mw.hdf5"
unset IBRL_METAWORLD_ASSETS
check "missing Meta-World assets: named with a hint" grep -Eq "(no-assets|no Meta-World support).*HINT" "$TMP/o"

check "generate 20 nav2d episodes" run 0 "$TMP/gen" generate --task nav2d --episodes 20 --noise 0.2 --seed 5 --out "$TMP/a.hdf5"
check "generate reports tries and success rate" grep -Eq "tried [0-9]+ episodes: expert success rate [0-9.]+%" "$TMP/gen"
check "no temporary file left" test ! -e "$TMP/a.hdf5.tmp"
check "info reads it" run 0 "$TMP/info" info "$TMP/a.hdf5"
check "info: 20 episodes" grep -q "episodes:    20 (20 end with reward 1)" "$TMP/info"
check "info: keys and shapes" grep -q "obs:         37 floats = state (5) + lidar (32)" "$TMP/info"
check "info: action range" grep -Eq "action\[1\]  range \[[-+]" "$TMP/info"
check "info: env name" grep -q "env:         nav2d" "$TMP/info"
check "info --obs-keys lidar" bash -c "'$BIN' info '$TMP/a.hdf5' --obs-keys lidar | grep -q 'obs:         32 floats = lidar (32)'"
check "same seed, same file content" bash -c "'$BIN' generate --quiet --task nav2d --episodes 20 --noise 0.2 --seed 5 --out '$TMP/b.hdf5' >/dev/null && '$BIN' info '$TMP/a.hdf5' | tail -n +2 > '$TMP/ia' && '$BIN' info '$TMP/b.hdf5' | tail -n +2 > '$TMP/ib' && cmp -s '$TMP/ia' '$TMP/ib'"

# An expert that cannot make it: pure noise, tiny try budget -> clear error, exit 1, no file.
check "impossible request exits 1" run 1 "$TMP/o" generate --task nav2d --episodes 50 --noise 50 --max-tries 60 --out "$TMP/c.hdf5" --quiet
check "impossible request explains" grep -q "succeeded in only" "$TMP/o"
check "impossible request leaves no file" test ! -e "$TMP/c.hdf5" -a ! -e "$TMP/c.hdf5.tmp"
# Setup errors exit 2, as in ibrl-il and ibrl-train (a missing or malformed input, an --out
# that cannot be created); only failures after work started exit 1.
check "info on a missing file exits 2" run 2 "$TMP/o" info "$TMP/nope.hdf5"
check "missing file is named" grep -q "nope.hdf5" "$TMP/o"
printf 'not an hdf5 file\n' >"$TMP/junk.hdf5"
check "info on a non-HDF5 file exits 2" run 2 "$TMP/o" info "$TMP/junk.hdf5"
check "non-HDF5 file is named" grep -q "junk.hdf5" "$TMP/o"
check "non-HDF5 file gets a HINT" grep -q "not an HDF5 file (HINT:" "$TMP/o"
check "info with an unknown key exits 2" run 2 "$TMP/o" info "$TMP/a.hdf5" --obs-keys state,nope
check "unknown key lists the file's keys" grep -q "the file has: state, lidar" "$TMP/o"
check "info bad flag exits 2" run 2 "$TMP/o" info "$TMP/a.hdf5" --bogus
check "generate into a missing folder exits 2" run 2 "$TMP/o" generate --task nav2d --episodes 2 --quiet --out "$TMP/no/such/dir/d.hdf5"
check "unwritable --out is named with a hint" grep -q "no/such/dir/d.hdf5.*HINT" "$TMP/o"

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all ibrl-demos checks passed"
