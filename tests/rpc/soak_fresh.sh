#!/bin/sh
# replay_soak_fresh: `ibrl-bench soak --against-fresh` judges an aged shard against a fresh one.
#   1. green: a short soak, then 2 rounds of 3 s on each shard. The bound is loose (--max-decay 50)
#      because two equal shards differ by up to ~15% per window on a shared 2-vCPU machine, and
#      ctest runs other tests beside this one; it checks that the comparison runs, measures rows
#      both ways and lands in the verdict and the JSON.
#   2. red: the same, with shard 0 started under `nice -n 19` (a --replay-bin wrapper) while two
#      busy loops hold the CPUs, so the "aged" shard is starved and the fresh one is not: the
#      comparison must FAIL and make the soak exit 1 (measured: the aged shard at 3-4% of the fresh).
# Memory is not judged here (a run this short is not flat; replay_soak judges it).
# Usage: soak_fresh.sh IBRL_BENCH IBRL_REPLAY
set -u
BENCH=$1
REPLAY=$2
fail() {
  echo "FAIL: $1"
  exit 1
}
d=$(mktemp -d /tmp/ibrl-soak-fresh-test-XXXXXX) || fail "mktemp"
hogs=""
cleanup() {
  [ -n "$hogs" ] && kill $hogs 2>/dev/null
  rm -rf "$d"
}
trap cleanup EXIT
common="--seconds 8 --durability ckpt --ckpt-period 2 --against-fresh 2 --fresh-window 3 --max-decay 50
  --max-slope 100000 --max-spread-mb 100000 --allowance-mb 100000 --progress 10 --json"

# 1. green
# shellcheck disable=SC2086
"$BENCH" soak $common --replay-bin "$REPLAY" >"$d/green.txt" 2>"$d/green.err"
r=$?
[ $r -eq 0 ] || { tail -20 "$d/green.txt"; tail -20 "$d/green.err"; fail "the green run exited $r (0 expected)"; }
grep -q "^soak: against a fresh shard: PASS (medians of 2 rounds" "$d/green.txt" ||
  { cat "$d/green.txt"; fail "the green run has no PASS line for the comparison"; }
[ "$(grep -c '^soak: round [12]: aged [1-9][0-9]* inserted and [1-9][0-9]* sampled rows/s, fresh [1-9]' "$d/green.txt")" -eq 2 ] ||
  { cat "$d/green.txt"; fail "the green run does not report 2 rounds with rows both ways"; }
grep '^{' "$d/green.txt" | grep -q '"fresh":{"pass":true,"ran":true,"rounds":2,' ||
  fail "the green run's JSON has no passing fresh member: $(grep '^{' "$d/green.txt" | cut -c1-400)"

# 2. red: shard 0 niced against two busy loops
cat >"$d/wrap.sh" <<EOF
#!/bin/sh
case " \$* " in
  *" --shard-index 0 "*) exec nice -n 19 "$REPLAY" "\$@" ;;
  *) exec "$REPLAY" "\$@" ;;
esac
EOF
chmod +x "$d/wrap.sh"
sh -c 'while :; do :; done' &
hogs="$!"
sh -c 'while :; do :; done' &
hogs="$hogs $!"
# shellcheck disable=SC2086
"$BENCH" soak $common --replay-bin "$d/wrap.sh" >"$d/red.txt" 2>"$d/red.err"
r=$?
kill $hogs 2>/dev/null
hogs=""
[ $r -eq 1 ] || { cat "$d/red.txt"; fail "the red run (starved shard 0) exited $r (1 expected)"; }
grep -q "^soak: against a fresh shard: FAIL" "$d/red.txt" ||
  { cat "$d/red.txt"; tail -20 "$d/red.err"; fail "the red run does not fail the comparison"; }
grep '^{' "$d/red.txt" | grep -q '"pass":false' || fail "the red run's JSON does not say pass false"
grep -q "^soak: clean: PASS" "$d/red.txt" || { cat "$d/red.txt"; fail "the red run failed calls: it should only be slow"; }
echo "ok: $(grep '^soak: against a fresh shard: PASS' "$d/green.txt" | cut -c1-200)"
echo "ok: red: $(grep '^soak: against a fresh shard: FAIL' "$d/red.txt" | cut -c1-200)"
