#!/bin/bash
# A shard whose real file system fills up and then gets space back (needs root: mounts a tmpfs).
#   bash docs/results/runs/replay-diskfull/run.sh [build dir]   > realfs.txt   (also writes restart.txt)
# The shard's own log goes to /tmp/ibrl-diskfull-replay.log (copied here as replay.log).
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
M=/tmp/ibrl-diskfull
mkdir -p $M
mount -t tmpfs -o size=8m tmpfs $M
trap 'umount $M || true' EXIT
mkdir -p $M/store
dd if=/dev/zero of=$M/filler bs=1M count=5 status=none
df -h $M | tail -1
/usr/bin/python3 "$HERE/realfs.py" "$B/bin" "$B/proto/py" $M
# Second scenario (restart.txt): stop and restart on the full disk.
umount $M
M2=/tmp/ibrl-df2
mkdir -p $M2
mount -t tmpfs -o size=8m tmpfs $M2
trap 'umount $M2 || true' EXIT
mkdir -p $M2/store
dd if=/dev/zero of=$M2/filler bs=1M count=5 status=none
/usr/bin/python3 "$HERE/restart.py" "$B/bin" "$B/proto/py" $M2 > "$HERE/restart.txt" 2>&1
