#!/bin/sh
# Summarises a two-shard soak's output folder (soak.log and timeline.csv of run.sh rows or
# calls): per 10 minutes the mean inserted and sampled rows/s and each shard's RSS at the
# end of the window; then, over the whole run, the checkpoints each shard logged: how long each
# took and how long it held the store (median, p90, p99, max).
# Usage: summary.sh DIR
set -eu
D=${1:?usage: summary.sh DIR}
[ -f "$D/timeline.csv" ] && [ -f "$D/soak.log" ] || { echo "summary.sh: $D needs timeline.csv and soak.log" >&2; exit 2; }
T=$(mktemp)
trap 'rm -f "$T"' EXIT
echo "minutes  inserted/s  sampled/s  RSS shard 0  RSS shard 1 (MB, at the window's end)"
awk -F, 'NR > 1 { w = int($1 / 600); ins[w] += $6; smp[w] += $7; n[w]++; r0[w] = $2; r1[w] = $16; if (w > last) last = w }
         END { for (w = 0; w <= last; w++) if (n[w]) printf "%3d-%-3d  %10.0f  %9.0f  %11.2f  %11.2f\n", w * 10, w * 10 + 10, ins[w] / n[w], smp[w] / n[w], r0[w], r1[w] }' "$D/timeline.csv"
for s in 0 1; do
  grep "replay\[$s\] INFO checkpoint [0-9]*:" "$D/soak.log" |
    sed -n 's/.* in \([0-9.]*\) s to .*(store held \([0-9.]*\) ms.*/\1 \2/p' >"$T" || true
  n=$(wc -l <"$T")
  [ "$n" -gt 0 ] || { echo "shard $s: no checkpoint lines"; continue; }
  for col in 1 2; do
    sort -g -k$col,$col "$T" | awk -v c=$col -v n="$n" -v s="$s" '
      { v[NR] = $c }
      END { what = c == 1 ? "checkpoint time (s)" : "store held (ms)"
            printf "shard %s: %d checkpoints, %s: median %s, p90 %s, p99 %s, max %s\n", s, n, what,
                   v[int((n + 1) / 2)], v[int(n * 0.9 + 0.5)], v[int(n * 0.99 + 0.5)], v[n] }'
  done
done
