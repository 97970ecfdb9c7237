#!/usr/bin/env bash
# How checkpoints change the acknowledgement latency of logged inserts (write-ahead log), in
# process: `ibrl-bench store --what acks`. 4 threads insert batches of 16 paper-size items (obs
# 69, action 7), each waiting for its record to be durable (group commit), into a store of 300,000
# items (a ~180 MB checkpoint); 20 s with a checkpoint started every 2 s, 20 s without, 3 rounds,
# the order alternating. The scratch directory is on the same disk as /tmp; it is deleted after.
# Usage: bash run.sh BUILD_BIN_DIR > acks.txt
set -euo pipefail
B=${1:?usage: run.sh BUILD_BIN_DIR}
D=$(mktemp -d /tmp/ibrl-acks-XXXXXX)
trap 'rm -rf "$D"' EXIT
echo "# $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg), $(df -T "$D" | awk 'NR == 2 {print $2}') on $(df "$D" | awk 'NR == 2 {print $1}')"
"$B/ibrl-bench" store --what acks --dir "$D" --seconds 20 --reps 3 --period-ms 2000 --window-ms 100
echo "# end $(date -u '+%T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
