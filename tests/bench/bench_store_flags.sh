#!/bin/bash
# bench_store_flags.sh IBRL_BENCH: checks `ibrl-bench store` as a tool (bad flags exit 2 naming the
# flag; a one-second `--what acks` run checkpoints and reports both modes; a small `--what thp` run
# reports its three states). It says nothing about speed: the figures are only checked to be there.
B="$1"
fail() {
  echo "FAIL: $*"
  exit 1
}
D=$(mktemp -d /tmp/ibrl-bench-store-XXXXXX) || exit 1
trap 'rm -rf "$D"' EXIT
m=$("$B" store --what bogus 2>&1)
[ $? -eq 2 ] || fail "--what bogus did not exit 2: $m"
grep -q "what 'bogus'" <<<"$m" || fail "--what bogus: the value is not named: $m"
m=$("$B" store --what acks 2>&1)
[ $? -eq 2 ] || fail "--what acks without --dir did not exit 2: $m"
grep -q -- "--dir" <<<"$m" || fail "--what acks without --dir: --dir is not named: $m"
m=$("$B" store --what acks --dir "$D/x" --period-ms 100 --window-ms 200 2>&1)
[ $? -eq 2 ] || fail "--window-ms longer than --period-ms did not exit 2: $m"
grep -q -- "--window-ms" <<<"$m" || fail "--window-ms: the flag is not named: $m"
m=$("$B" store --what acks --dir "$D/x" --seconds 0 2>&1)
[ $? -eq 2 ] || fail "--seconds 0 did not exit 2: $m"
"$B" store --help | grep -q -- "--period-ms" || fail "--help does not list --period-ms"
m=$("$B" store --what acks --dir "$D/run" --seconds 1 --reps 1 --ckpt-items 2000 --threads 2 --period-ms 300 \
  --window-ms 100 2>&1)
[ $? -eq 0 ] || fail "a one-second acks run failed: $m"
# Checkpoints start at 0, 300, 600 and 900 ms (each window must end within the second).
with=$(grep "^acks    with " <<<"$m")
without=$(grep "^acks    without " <<<"$m")
[ -n "$with" ] && [ -n "$without" ] || fail "acks: a mode is missing: $m"
grep -q "within 100 ms of 4 checkpoint starts" <<<"$with" || fail "acks: not 4 checkpoints in 1 s: $with"
for l in "$with" "$without"; do
  n=$(sed -E 's/.*checkpoints: ([0-9]+) acks.*/\1/' <<<"$l")
  [ "$n" -gt 0 ] 2>/dev/null || fail "acks: no acknowledged batch counted: $l"
done
[ -f "$D/run/acks/store.ckpt" ] || fail "acks: no checkpoint was written in $D/run/acks"
grep -q "^acks    cuts held the store median" <<<"$m" || fail "acks: no cut line: $m"
# --what thp on a small table (12.8 MB, huge-page sized): the three states and the collapse line.
m=$("$B" store --what thp --capacity 20000 --iters 200 2>&1)
[ $? -eq 0 ] || fail "a small thp run failed: $m"
for st in "fresh" "after fork+rewrite" "after collapse"; do
  grep -q "^thp     $st .*sample median .*fork median" <<<"$m" || fail "thp: no '$st' line: $m"
done
grep -q "^thp     store_huge_collapse took" <<<"$m" || fail "thp: no collapse line: $m"
echo "ok: flags, --what acks, --what thp"
