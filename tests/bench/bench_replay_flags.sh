#!/bin/bash
# bench_replay_flags.sh IBRL_BENCH: checks `ibrl-bench replay` as a tool (flags, --variant, the
# in-process decode bench) with runs of a fraction of a second. It says nothing about speed.
B="$1"
fail() {
  echo "FAIL: $*"
  exit 1
}
m=$("$B" replay --variant bogus 2>&1)
[ $? -eq 2 ] || fail "--variant bogus did not exit 2: $m"
grep -q -- "--variant 'bogus'" <<<"$m" || fail "--variant bogus: the flag is not named: $m"
m=$("$B" replay --threads 3 2>&1)
[ $? -eq 2 ] || fail "--threads 3 did not exit 2: $m"
"$B" replay --help | grep -q -- "--variant V" || fail "--help does not list --variant"
m=$("$B" replay --server-threads 0 2>&1)
[ $? -eq 2 ] || fail "--server-threads 0 did not exit 2: $m"
grep -q -- "--server-threads '0'" <<<"$m" || fail "--server-threads 0: the flag is not named: $m"
m=$("$B" replay --only insert --threads 1 --rounds 1 --seconds 0.1 --variant full --server-threads 2 2>&1)
[ $? -eq 0 ] || fail "--variant full run failed: $m"
line=$(grep "^insert  1 " <<<"$m" | head -1)
[ -n "$line" ] || fail "no insert row: $m"
read -r _ _ full _ client _ raw _ <<<"$line"
[ "$full" != "nan" ] || fail "--variant full: full was not measured: $line"
read -r _ _ _ _ _ _ _ _ _ _ proto _ <<<"$line"
[ "$client" = "nan" ] && [ "$raw" = "nan" ] && [ "$proto" = "nan" ] || fail "--variant full: client, raw or proto ran: $line"
grep -q "servers: 2 worker threads each (ibrl-replay --threads; --server-threads), one per two calls in progress taking calls, at most 2" <<<"$m" ||
  fail "--server-threads 2 is not in the header: $m"
# The shard's online table is full before the first phase, so sampling draws from 183 MB of rows
# and not from a few MB in the CPU's cache (the prefill wrote 10,240 rows before 24 Nov).
grep -q "prefill: the shard's online table holds 300000 of 300000 rows" <<<"$m" ||
  fail "the prefill did not fill the shard's online table: $m"
# --variant proto: raw with the prototype's copies (its server copies each message into a ring
# and builds each reply from ring rows; the client copies in and out) counts rows, alone.
m=$("$B" replay --threads 1 --rounds 1 --seconds 0.1 --variant proto 2>&1)
[ $? -eq 0 ] || fail "--variant proto run failed: $m"
grep -q "proto = raw with grpc-core.md's prototype's copies" <<<"$m" || fail "--variant proto: the header does not say what proto is: $m"
for op in insert sample; do
  line=$(grep "^$op  1 " <<<"$m" | head -1)
  read -r _ _ full _ client _ raw _ _ _ proto _ ratio <<<"$line"
  [ "$full" = "nan" ] && [ "$raw" = "nan" ] || fail "--variant proto: full or raw ran: $line"
  [ "${proto%%.*}" -gt 0 ] 2>/dev/null || fail "--variant proto: proto counted no $op rows: $line"
  [ "$ratio" = "nan%" ] || fail "--variant proto: full/proto is not nan alone: $line"
done
m=$("$B" replay --server-threads 2 --server-pollers 3 2>&1)
[ $? -eq 2 ] || fail "--server-pollers 3 > --server-threads 2 did not exit 2: $m"
grep -q -- "--server-pollers 3 exceeds --server-threads 2" <<<"$m" || fail "--server-pollers 3: not named: $m"
m=$("$B" replay --only insert --threads 1 --rounds 1 --seconds 0.1 --server-threads 3 --server-pollers 1 2>&1)
[ $? -eq 0 ] || fail "--server-pollers 1 run failed: $m"
grep -q "taking calls, at most 1 (" <<<"$m" || fail "--server-pollers 1 is not in the header: $m"
line=$(grep "^insert  1 " <<<"$m" | head -1)
read -r _ _ full _ client _ raw _ <<<"$line"
read -r _ _ _ _ _ _ _ _ _ _ proto _ <<<"$line"
for v in "$full" "$client" "$raw" "$proto"; do
  [ "${v%%.*}" -gt 0 ] 2>/dev/null || fail "--server-pollers 1: a variant counted no rows: $line"
done
m=$("$B" replay --raw-msgs -1 2>&1)
[ $? -eq 2 ] || fail "--raw-msgs -1 did not exit 2: $m"
grep -q -- "--raw-msgs '-1'" <<<"$m" || fail "--raw-msgs -1: the flag is not named: $m"
# One raw stream per measurement (grpc-core.md's method): raw must still count the rows it sent.
m=$("$B" replay --only insert --threads 1 --rounds 1 --seconds 0.1 --variant raw --raw-msgs 0 2>&1)
[ $? -eq 0 ] || fail "--raw-msgs 0 run failed: $m"
grep -q "raw and proto send on one stream per measurement" <<<"$m" || fail "--raw-msgs 0 is not in the header: $m"
line=$(grep "^insert  1 " <<<"$m" | head -1)
read -r _ _ full _ client _ raw _ <<<"$line"
[ "$raw" != "nan" ] && [ "${raw%%.*}" -gt 0 ] 2>/dev/null || fail "--raw-msgs 0: raw counted no rows: $line"
# By default raw sends on one stream per measurement; the header names the writer's streams for
# the batch (half its 8192 rows of max_pending, rounded up to whole messages: 41 of 100 rows).
m=$("$B" replay --only insert --threads 1 --rounds 1 --seconds 0.1 --variant raw --batch 100 2>&1)
[ $? -eq 0 ] || fail "--batch 100 run failed: $m"
grep -q "streams of 41 messages (the writer's 4100 rows), each half-closed while the next goes out; raw and proto send on one stream per measurement" <<<"$m" ||
  fail "--batch 100: the header does not describe the writer's streams and raw's default: $m"
m=$("$B" replay --only insert --threads 1 --rounds 1 --seconds 0.1 --variant raw --raw-msgs 4 2>&1)
[ $? -eq 0 ] || fail "--raw-msgs 4 run failed: $m"
grep -q "raw and proto wait for the reply every 4 messages (--raw-msgs)" <<<"$m" || fail "--raw-msgs 4 is not in the header: $m"
m=$("$B" replay --only decode --rounds 1 --seconds 0.1 2>&1)
[ $? -eq 0 ] || fail "--only decode failed: $m"
grep -q "CPU ns per row: decode" <<<"$m" || fail "--only decode printed no result: $m"
echo "ok: flags, --variant (proto too), --server-threads, --server-pollers, --raw-msgs, --only decode"
