#!/usr/bin/env bash
# e2e_replay_setup.sh: ibrl-replay and ibrl-replayctl as an operator meets them (the replay audit):
# an existing --ckpt-dir where no file can be created is refused at start (exit 2, named, with a
# HINT) instead of failing hours later at the first checkpoint (red before that fix: the shard
# served and only its final checkpoint failed); a --tls-cert that is no PEM file is named (red
# before: only "cannot listen", read as a port in use), and so is a key that does not match the
# certificate (red before, same message); SIGTERM writes a final checkpoint that a
# restart restores (sizes equal); a flipped byte in that checkpoint is refused (exit 2, CRC,
# HINT, and names --salvage), and with --salvage a damaged checkpoint followed by a log starts with
# the log's rows, says so in `ibrl-replayctl info`, keeps the damaged file byte for byte in
# damaged-*, and restarts strictly; other dims are refused without suggesting --salvage, and
# --salvage refuses them too and changes nothing; a gap in the log chain is refused as missing
# data and suggests --salvage; tables
# larger than the machine's memory or ulimit -v are refused (exit 2, HINT; red
# before: SIGABRT in the allocator; the ulimit -v case is skipped with IB_E2E_ASAN=1, under
# AddressSanitizer). One small shard on 127.0.0.1, port 0; every wait is bounded.
. "$(dirname "$0")/e2e_lib.sh"
R=$B/ibrl-replay
C=$B/ibrl-replayctl
DIMS=(--obs-dim 37 --act-dim 2 --online-capacity 1000 --demo-capacity 2000)

# ---- an unwritable --ckpt-dir (root ignores file modes: /proc/sys refuses new files to anyone) ----
if [ "$(id -u)" -eq 0 ]; then
  RO=/proc/sys
else
  RO=$W/ro
  mkdir -p "$RO"
  chmod 0555 "$RO"
fi
if [ -d "$RO" ]; then
  expect_exit "an existing but unwritable --ckpt-dir is refused before serving" 2 \
    "ckpt-dir '$RO' is not writable.*HINT" \
    timeout 10 "$R" "${DIMS[@]}" --port 0 --ckpt-dir "$RO"
else
  echo "skip the unwritable --ckpt-dir case: no $RO"
fi
# Tables larger than the machine (or than ulimit -v) are a usage error before anything is
# allocated (they aborted in the allocator: "out of memory allocating N bytes", SIGABRT, 134).
expect_exit "tables larger than memory are refused" 2 \
  "--online-capacity 2000000000 .*: the tables need .* GiB, this machine has .* GiB (HINT: lower --online-capacity" \
  timeout 20 "$R" --obs-dim 512 --act-dim 128 --online-capacity 2000000000 --port 0
# Under AddressSanitizer (IB_E2E_ASAN=1, set by deploy/local/test.sh's IB_ASAN_E2E pass) a
# ulimit -v leaves no room for its shadow memory: that one case is skipped there.
if [ -z "${IB_E2E_ASAN:-}" ]; then
  expect_exit "tables larger than ulimit -v are refused" 2 "address-space limit (ulimit -v) (HINT: lower" \
    bash -c 'ulimit -v 2000000 && exec timeout 20 "$0" "$@"' "$R" --obs-dim 37 --act-dim 2 --online-capacity 30000000 --port 0
else
  echo "skip the ulimit -v case under AddressSanitizer (IB_E2E_ASAN=1): no room for its shadow memory"
fi
expect_exit "a --ckpt-dir that is a file is refused" 2 "is not a directory" \
  timeout 10 "$R" "${DIMS[@]}" --port 0 --ckpt-dir "$SRC/README.md"
# A TLS file that is not PEM: named (before: "cannot listen ... the port may be in use").
expect_exit "a --tls-cert that is not PEM is named" 2 "tls-cert '$SRC/README.md' holds no PEM certificate.*HINT" \
  timeout 10 "$R" "${DIMS[@]}" --port 0 --tls-cert "$SRC/README.md" --tls-key "$SRC/README.md"
# A key that is not the certificate's: gRPC only says it could not add the port; the shard must
# add that TLS credentials can be the cause (before: only "the port may be in use").
if command -v openssl >/dev/null &&
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/k1.pem" -out "$W/c1.pem" -days 1 -subj /CN=localhost \
    >/dev/null 2>&1 && openssl genpkey -algorithm RSA -out "$W/k2.pem" >/dev/null 2>&1; then
  expect_exit "a --tls-key that does not match --tls-cert is named" 2 "is the private key of the certificate" \
    timeout 10 "$R" "${DIMS[@]}" --port 0 --tls-cert "$W/c1.pem" --tls-key "$W/k2.pem"
else
  echo "skip the mismatched TLS key case: openssl could not make a test certificate"
fi

# ---- SIGTERM: final checkpoint, restored on restart ----
"$B/ibrl-demos" generate --task nav2d --episodes 3 --noise 0.3 --seed 1 --out "$W/demos.hdf5" --quiet \
  >"$IBC_LOGS/demos.log" 2>&1
mkdir -p "$W/ck"
ibc_replay r0 0 "${DIMS[@]}" --ckpt-dir "$W/ck"
P=$IBC_ADDR
timeout 60 "$C" --shards "$P" import-demos "$W/demos.hdf5" --stack 1 >"$IBC_LOGS/import.log" 2>&1
demo_size() {
  timeout 30 "$C" --shards "$1" --json info --rate-ms 0 | grep -o '"name":"demo","kind":"demo","size":[0-9]*' |
    sed 's/.*://'
}
before=$(demo_size "$P")
check "the demo table holds the imported steps (${before:-none})" test "${before:-0}" -gt 0
p=$(ibc_pid r0)
kill -TERM "$p"
rc=0
wait "$p" || rc=$?
check "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
check "SIGTERM: the final checkpoint was written" grep -q "checkpoint .* items" "$IBC_LOGS/r0.log"
ibc_replay r1 0 "${DIMS[@]}" --ckpt-dir "$W/ck"
after=$(demo_size "$IBC_ADDR")
check "restart restores the checkpoint (demo size $before -> ${after:-none})" test "${after:-x}" = "$before"
ibc_stop r1

# ---- a flipped byte in the checkpoint ----
f=$W/ck/store.ckpt
size=$(stat -c %s "$f")
python3 -c 'import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))' "$f" $((size / 2))
expect_exit "a checkpoint with one flipped byte is refused, with a HINT" 2 "CRC-32.*HINT" \
  timeout 10 "$R" "${DIMS[@]}" --port 0 --ckpt-dir "$W/ck"
expect_exit "the refusal names --salvage" 2 "restart with --salvage" \
  timeout 10 "$R" "${DIMS[@]}" --port 0 --ckpt-dir "$W/ck"

# ---- --salvage: a damaged checkpoint with a log after it (what a disk that lost flushed data
# leaves) starts with the log's rows, keeps the files as they were, and restarts strictly ----
mkdir -p "$W/ck2"
ibc_replay r2 0 "${DIMS[@]}" --ckpt-dir "$W/ck2" --durability wal
timeout 60 "$C" --shards "$IBC_ADDR" import-demos "$W/demos.hdf5" --stack 1 >"$IBC_LOGS/import2.log" 2>&1
one=$(demo_size "$IBC_ADDR")
timeout 30 "$C" --shards "$IBC_ADDR" checkpoint >"$IBC_LOGS/ckpt2.log" 2>&1
timeout 60 "$C" --shards "$IBC_ADDR" import-demos "$W/demos.hdf5" --stack 1 --seq-base 100000 \
  >>"$IBC_LOGS/import2.log" 2>&1
two=$(demo_size "$IBC_ADDR")
check "two imports (${one:-none} then ${two:-none} demo rows)" test "${two:-0}" -eq $((2 * ${one:-0})) -a "${one:-0}" -gt 0
ibc_stop r2 KILL # no final checkpoint: the second import is only in the log
f=$W/ck2/store.ckpt
python3 -c 'import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(64); b = f.read(1); f.seek(64); f.write(bytes([b[0] ^ 0x10]))' "$f"
cp "$f" "$W/flipped.ckpt"
expect_exit "without --salvage the damaged checkpoint is refused" 2 "CRC-32.*--salvage" \
  timeout 10 "$R" "${DIMS[@]}" --port 0 --ckpt-dir "$W/ck2" --durability wal
ibc_replay r3 0 "${DIMS[@]}" --ckpt-dir "$W/ck2" --durability wal --salvage
kept=$(demo_size "$IBC_ADDR")
check "--salvage: the shard serves the log's rows (${kept:-none} of ${two:-none}; the checkpoint's are lost)" \
  test "${kept:-x}" = "$one"
check "--salvage: the log says what was kept and where the files are" \
  grep -q "salvaged .*: ${one} rows kept (checkpoint: damaged, lost.*damaged-" "$IBC_LOGS/r3.log"
aside=$(ls -d "$W"/ck2/damaged-* 2>/dev/null | head -n 1)
check "--salvage: the damaged checkpoint is kept as it was (${aside:-no damaged-* directory})" \
  cmp -s "$W/flipped.ckpt" "${aside:-/nonexistent}/store.ckpt"
timeout 30 "$C" --shards "$IBC_ADDR" info --rate-ms 0 >"$IBC_LOGS/info3.txt" 2>&1 || true
check "--salvage: info says the shard was salvaged, with the rows kept" \
  grep -q "SALVAGED at start (--salvage): ${one} rows kept .*damaged-" "$IBC_LOGS/info3.txt"
check "--salvage: info --json has it too" \
  bash -c 'timeout 30 "$0" --shards "$1" --json info --rate-ms 0 | grep -q "\"salvage\":\"$2 rows kept"' "$C" "$IBC_ADDR" "$one"
ibc_stop r3
ibc_replay r4 0 "${DIMS[@]}" --ckpt-dir "$W/ck2" --durability wal
again=$(demo_size "$IBC_ADDR")
check "a restart without --salvage restores the salvaged rows (${again:-none})" test "${again:-x}" = "$one"
check "after a strict restart, info --json has no salvage" \
  bash -c 'timeout 30 "$0" --shards "$1" --json info --rate-ms 0 | grep -q "\"salvage\":null"' "$C" "$IBC_ADDR"
ibc_stop r4

# ---- settings that differ are not damage: the refusal does not suggest --salvage, and --salvage
# refuses too, without touching the files ----
other=(--obs-dim 36 --act-dim 2 --online-capacity 1000 --demo-capacity 2000)
rc=0
out=$(timeout 10 "$R" "${other[@]}" --port 0 --ckpt-dir "$W/ck2" --durability wal 2>&1) || rc=$?
check "other dims: refused (exit $rc), naming obs_dim" bash -c '[ "$0" -eq 2 ] && grep -q "obs_dim" <<<"$1"' "$rc" "$out"
check "other dims: the refusal does not suggest --salvage" bash -c '! grep -q -- "--salvage" <<<"$0"' "$out"
n_aside=$(ls -d "$W"/ck2/damaged-* | wc -l)
expect_exit "other dims with --salvage: refused, nothing changed" 2 "salvage of .* not attempted, nothing changed" \
  timeout 10 "$R" "${other[@]}" --port 0 --ckpt-dir "$W/ck2" --durability wal --salvage
check "other dims with --salvage: no new damaged-* directory" test "$(ls -d "$W"/ck2/damaged-* | wc -l)" = "$n_aside"
ibc_replay r5 0 "${DIMS[@]}" --ckpt-dir "$W/ck2" --durability wal
again=$(demo_size "$IBC_ADDR")
check "the right dims still restore the same rows (${again:-none})" test "${again:-x}" = "$one"
ibc_stop r5

# ---- a log missing from the chain is data missing: the refusal suggests --salvage ----
ls "$W/ck2"/store.wal.* >"$IBC_LOGS/wals.txt" 2>&1
wal=$(head -n 1 "$IBC_LOGS/wals.txt")
check "after a clean stop the directory has a log (${wal:-none})" test -n "$wal"
ep=${wal##*.}
cp "$wal" "${wal%.*}.$(printf '%016x' $((16#${ep:-0} + 2)))"
expect_exit "a gap in the log chain is refused as missing data, naming --salvage" 2 "missing.*--salvage" \
  timeout 10 "$R" "${DIMS[@]}" --port 0 --ckpt-dir "$W/ck2" --durability wal
