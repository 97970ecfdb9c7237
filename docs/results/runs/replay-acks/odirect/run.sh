#!/usr/bin/env bash
# The O_DIRECT checkpoint writer against HEAD's page-cache writer: `ibrl-bench store --what acks`
# (4 threads logging batches of 16 into a 300,000-item store, a ~180 MB checkpoint every 2 s, 20 s
# with and 20 s without, 2 reps per run), alternating binaries: old first in odd rounds, new first
# in even ones. Each run gets a fresh scratch directory on the same disk as /tmp, deleted after.
# Usage: bash run.sh OLD_BIN_DIR NEW_BIN_DIR ROUNDS OUT_DIR [NEW_NAME [FIRST_ROUND]]
#   writes OUT_DIR/old-<round>.txt and OUT_DIR/<NEW_NAME, default new>-<round>.txt
set -euo pipefail
OLD=${1:?usage: run.sh OLD_BIN_DIR NEW_BIN_DIR ROUNDS OUT_DIR}
NEW=${2:?}
ROUNDS=${3:?}
OUT=${4:?}
NAME=${5:-new}
FIRST=${6:-1}
one() { # which round
  local which=$1 r=$2 bin D
  if [ "$which" = old ]; then bin=$OLD; else bin=$NEW; which=$NAME; fi
  D=$(mktemp -d /tmp/odx-XXXXXX)
  {
    echo "# $which round $r: $(date -u '+%F %T') UTC, uptime: $(uptime)"
    echo "# $bin/ibrl-bench store --what acks --dir $D --seconds 20 --reps 2 --period-ms 2000"
    "$bin/ibrl-bench" store --what acks --dir "$D" --seconds 20 --reps 2 --period-ms 2000 2>/dev/null
    echo "# end $(date -u '+%T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$OUT/$which-$r.txt"
  rm -rf "$D"
}
for r in $(seq "$FIRST" $((FIRST + ROUNDS - 1))); do
  if [ $((r % 2)) -eq 1 ]; then one old "$r"; one new "$r"; else one new "$r"; one old "$r"; fi
done
