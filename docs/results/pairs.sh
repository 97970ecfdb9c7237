#!/bin/sh
# pairs.sh: per-seed comparison of two methods (paired by seed: a seed fixes the evaluation
# layouts, so the two runs of a seed are scored on the same episodes).
#   AT=N sh pairs.sh A_DIR_PREFIX B_DIR_PREFIX     e.g. AT=10000 sh pairs.sh runs/nav2d/ibrl runs/nav2d/rlpd
# For every A_DIR_PREFIX-sK that has a B_DIR_PREFIX-sK: eval success of both at env_steps >= AT
# (the first metrics.csv row there; without AT the last row), their difference, then the number of
# seeds A wins / ties / loses, the mean difference and its standard error over seeds.
# A bc run never changes its policy, so its last row stands for any budget (it is scored at 0
# and at its own budget only).
set -eu
[ $# -eq 2 ] || { echo "usage: AT=N sh pairs.sh A_DIR_PREFIX B_DIR_PREFIX" >&2; exit 2; }
AT=${AT:-}
# value RUN_DIR: eval success at AT (empty if the run has not reached AT)
value() {
  awk -F, -v at="$AT" -v bc="$(sed -n 's/^  "method": "bc",$/1/p' "$1/config.json")" '
    NR > 1 { last = $5; if (at != "" && $1 >= at && v == "") v = $5 }
    END { if (at == "" || (v == "" && bc == 1)) v = last; print v }' "$1/metrics.csv"
}
echo "| seed | $(basename "$1") | $(basename "$2") | difference |"
echo "|---|---|---|---|"
tmp=${TMPDIR:-/tmp}/pairs.$$
: >"$tmp"
for a in "$1"-s*; do
  k=${a##*-s}
  b=$2-s$k
  [ -f "$a/metrics.csv" ] && [ -f "$b/metrics.csv" ] || continue
  va=$(value "$a") vb=$(value "$b")
  if [ -z "$va" ] || [ -z "$vb" ]; then
    echo "| $k | ${va:-unfinished} | ${vb:-unfinished} | |"
    continue
  fi
  d=$(awk -v x="$va" -v y="$vb" 'BEGIN {printf "%+.2f", x - y}')
  echo "| $k | $va | $vb | $d |"
  echo "$d" >>"$tmp"
done
echo
awk '{n++; s += $1; q += $1 * $1; if ($1 > 0) w++; else if ($1 < 0) l++; else t++}
  END {if (n == 0) {print "no paired seeds"; exit}
       se = "-"; if (n > 1) {v = (q - s * s / n) / (n - 1); if (v < 0) v = 0; se = sprintf("%.3f", sqrt(v / n))}
       printf "seeds: %d; A wins %d, ties %d, loses %d; mean difference %+.3f (std err %s)\n", n, w, t, l, s / n, se}' "$tmp"
rm -f "$tmp"
