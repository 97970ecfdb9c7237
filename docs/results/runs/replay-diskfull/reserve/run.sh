#!/bin/bash
# Checkpoints that do not fit on the disk: ibrl-bench soak against an ibrl-replay whose checkpoint
# directory is on a fresh tmpfs of 120 MB (needs root: it mounts it), 300,000-row ring, inserts
# capped at 5,000 rows/s, a checkpoint every 2 s, 45 s of traffic. The ring reaches the size where
# a new checkpoint no longer fits next to the last one at about 19 s; the log fills the disk at
# about 39 s.
#   bash docs/results/runs/replay-diskfull/reserve/run.sh REPLAY_BIN LABEL [build dir]
#     > LABEL.log is written here
# With `disk` as the first argument it instead times the checkpoints that succeed on the machine's
# own disk (ext4): 300,000-row ring, uncapped inserts from 2 writers, a checkpoint every 5 s, 60 s.
#   bash docs/results/runs/replay-diskfull/reserve/run.sh disk REPLAY_BIN LABEL [build dir]
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = disk ]; then
  BIN=$2 LABEL=$3 B=$(cd "${4:-build}" && pwd)
  D=/tmp/ibrl-reserve-disk-$LABEL
  rm -rf "$D"
  "$B/bin/ibrl-bench" soak --replay-bin "$BIN" --ckpt-dir "$D" --online-capacity 300000 \
    --ckpt-period 5 --seconds 60 --writers 2 --churn-every 0 --bad-every 0 --samplers 1 \
    --progress 10 > "$HERE/$LABEL.log" 2>&1
  echo "soak exit $?" >> "$HERE/$LABEL.log"
  rm -rf "$D"
  exit 0
fi
BIN=$1 LABEL=$2 B=$(cd "${3:-build}" && pwd)
M=/tmp/ibrl-reserve-$LABEL
mkdir -p "$M"
umount "$M" 2>/dev/null
mount -t tmpfs -o size=120m tmpfs "$M" || exit 1
trap 'umount "$M" || true' EXIT
"$B/bin/ibrl-bench" soak --replay-bin "$BIN" --ckpt-dir "$M/s" --online-capacity 300000 \
  --insert-rate 5000 --ckpt-period 2 --seconds 45 --churn-every 0 --bad-every 0 --samplers 1 \
  --progress 5 > "$HERE/$LABEL.log" 2>&1
echo "soak exit $? (1 expected: the disk fills up and inserts fail at the end)" >> "$HERE/$LABEL.log"
df -h "$M" >> "$HERE/$LABEL.log"
