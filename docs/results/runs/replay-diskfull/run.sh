#!/bin/bash
# A shard whose real file system fills up and then gets space back (needs root: mounts a tmpfs).
#   bash docs/results/runs/replay-diskfull/run.sh [build dir]   > realfs.txt
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
