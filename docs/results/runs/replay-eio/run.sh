#!/bin/bash
# A shard whose log's fdatasync fails in the block layer (needs root: tmpfs, loop devices, mounts).
#   bash docs/results/runs/replay-eio/run.sh [build dir] [scenario...]
# Scenarios (eio.py; default: all): heal, heal-journal, stale-restart (loop device straight on a
# tmpfs image: the block layer says ENOSPC) and heal-eio, heal-journal-eio, stale-restart-eio (the
# image served by eiodisk.py, a FUSE file that fails writes with EIO: the block layer says "I/O
# error"), and stale-restart-ckpt-eio (a work-around: Checkpoint at once after the restart); then
# loopshort.py (what the loop device does when its tmpfs fills mid-request). Each
# scenario writes, beside this script, <scenario>.txt (the timeline), <scenario>-replay.log (the
# shard's log), <scenario>-dmesg.txt (the kernel's lines from the scenario's start marker on) and,
# for *-eio, <scenario>-eiodisk.log. Everything it sets up (tmpfs, FUSE daemon, loop device, mounts,
# shard) is torn down on exit, also on failure.
set -uo pipefail
B=$(cd "${1:-build}" && pwd)
shift || true
SCENARIOS=("${@:-heal heal-journal stale-restart heal-eio heal-journal-eio stale-restart-eio stale-restart-ckpt-eio loopshort}")
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (mounts a tmpfs and attaches a loop device)" >&2; exit 2; }
ROOT=
cleanup() {
  [ -n "$ROOT" ] || return 0
  if [ -s "$ROOT/shard.pid" ] && kill -0 "$(cat "$ROOT/shard.pid")" 2>/dev/null; then
    kill -9 "$(cat "$ROOT/shard.pid")" 2>/dev/null || true
    sleep 0.5
  fi
  mountpoint -q "$ROOT/mnt" && umount "$ROOT/mnt"
  [ -s "$ROOT/loopdev" ] && losetup -d "$(cat "$ROOT/loopdev")" 2>/dev/null
  mountpoint -q "$ROOT/fuse" && umount "$ROOT/fuse"
  if [ -s "$ROOT/eiodisk.pid" ] && kill -0 "$(cat "$ROOT/eiodisk.pid")" 2>/dev/null; then
    sleep 0.5; kill "$(cat "$ROOT/eiodisk.pid")" 2>/dev/null || true
  fi
  mountpoint -q "$ROOT/tm" && umount "$ROOT/tm"
  rm -rf "$ROOT"
  ROOT=
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rc=0
for s in ${SCENARIOS[@]}; do
  ROOT=/tmp/ibrl-eio-$s
  cleanup 2>/dev/null; ROOT=/tmp/ibrl-eio-$s
  mkdir -p "$ROOT"
  echo "== $s: $(date -u +%FT%TZ), $(uname -r), commit $(git -C "$HERE" rev-parse --short HEAD), $B" | tee "$HERE/$s.txt"
  if [ "$s" = loopshort ]; then
    /usr/bin/python3 "$HERE/loopshort.py" "$ROOT" >> "$HERE/$s.txt" 2>&1 || rc=1
  else
    /usr/bin/python3 "$HERE/eio.py" "$B/bin" "$B/proto/py" "$ROOT" "$s" "$HERE" >> "$HERE/$s.txt" 2>&1 || rc=1
  fi
  dmesg | awk -v m="ibrl-eio: scenario $s: start" 'index($0, m) { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' > "$HERE/$s-dmesg.txt"
  tail -1 "$HERE/$s.txt"
  cleanup
done
losetup -a
exit $rc
