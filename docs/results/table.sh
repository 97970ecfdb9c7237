#!/bin/sh
# table.sh: a markdown table of ibrl-train run directories.
#   table.sh RUN_DIR...        final eval success from each run's summary.json
#   AT=N table.sh RUN_DIR...   eval success of each run's first metrics.csv row at env_steps >= N
#                              (runs are deterministic, so this is what a run of budget N ends with);
#                              runs that have not reached N are listed as unfinished, not averaged
# Then one line per method: mean, standard error and min-max over its runs.
set -eu
AT=${AT:-}
echo "| run | method | seed | env steps | eval success | best eval success so far | IL policy alone |"
echo "|---|---|---|---|---|---|---|"
for r in "$@"; do
  s=$r/summary.json c=$r/config.json
  [ -f "$c" ] || continue
  m=$(sed -n 's/^  "method": "\(.*\)",$/\1/p' "$c")
  seed=$(sed -n 's/^  "seed": \([0-9]*\),$/\1/p' "$c")
  il=$(sed -n 's/^  "il_eval_success": \(.*\),$/\1/p' "$s" 2>/dev/null || true)
  if [ -n "$AT" ]; then
    # bc runs have rows at 0 and at their budget only: the IL policy does not change
    row=$(awk -F, -v at="$AT" 'NR > 1 && $1 >= at && !done {print; done = 1}' "$r/metrics.csv")
    if [ -z "$row" ]; then
      echo "| $(basename "$r") | $m | $seed | (unfinished: last row at $(tail -n 1 "$r/metrics.csv" | cut -d, -f1)) | | | |"
      continue
    fi
    steps=$(echo "$row" | cut -d, -f1)
    ev=$(echo "$row" | cut -d, -f5)
    best=$(awk -F, -v at="$steps" 'NR > 1 && $1 <= at && $5 > b {b = $5} END {print b + 0}' "$r/metrics.csv")
  else
    [ -f "$s" ] || { echo "| $(basename "$r") | $m | $seed | (unfinished) | | | |"; continue; }
    steps=$(sed -n 's/^  "env_steps": \(.*\),$/\1/p' "$s")
    ev=$(sed -n 's/^  "final_eval_success": \(.*\),$/\1/p' "$s")
    best=$(sed -n 's/^  "best_eval_success": \(.*\),$/\1/p' "$s")
  fi
  echo "| $(basename "$r") | $m | $seed | $steps | $ev | $best | ${il:-} |"
  echo "$m $ev" >>"${TMPDIR:-/tmp}/table.$$"
done
echo
# std err = sample standard deviation over the runs (n - 1) / sqrt(n): the spread across seeds,
# which already contains the evaluation noise of each run's finite number of episodes.
echo "| method | runs | mean eval success | std err | min | max |"
echo "|---|---|---|---|---|---|"
[ -f "${TMPDIR:-/tmp}/table.$$" ] && awk '{n[$1]++; s[$1]+=$2; q[$1]+=$2*$2; if (!($1 in lo) || $2 < lo[$1]) lo[$1]=$2; if (!($1 in hi) || $2 > hi[$1]) hi[$1]=$2}
  END {for (m in n) {
         se = "-"
         if (n[m] > 1) { v = (q[m] - s[m]*s[m]/n[m]) / (n[m] - 1); if (v < 0) v = 0; se = sprintf("%.3f", sqrt(v / n[m])) }
         printf "| %s | %d | %.3f | %s | %.2f | %.2f |\n", m, n[m], s[m]/n[m], se, lo[m], hi[m]}}' "${TMPDIR:-/tmp}/table.$$" | sort
rm -f "${TMPDIR:-/tmp}/table.$$"
