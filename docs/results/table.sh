#!/bin/sh
# table.sh: a markdown table of ibrl-train run directories from their summary.json files.
#   table.sh RUN_DIR...   -> | run | method | seed | env steps | final eval | best eval | IL alone | wall s |
# Then one line per method: the mean final eval success over its runs.
set -eu
echo "| run | method | seed | env steps | final eval success | best eval success | IL policy alone | wall s |"
echo "|---|---|---|---|---|---|---|---|"
for r in "$@"; do
  s=$r/summary.json
  [ -f "$s" ] || { echo "| $(basename "$r") | (no summary.json: unfinished) | | | | | | |"; continue; }
  get() { sed -n "s/^  \"$1\": \"*\([^\",]*\)\"*,*$/\1/p" "$s"; }
  echo "| $(basename "$r") | $(get method) | $(get seed) | $(get env_steps) | $(get final_eval_success) | $(get best_eval_success) | $(get il_eval_success) | $(get wall_s) |"
done
echo
echo "| method | runs | mean final eval success |"
echo "|---|---|---|"
for r in "$@"; do
  s=$r/summary.json
  [ -f "$s" ] || continue
  m=$(sed -n 's/^  "method": "\(.*\)",$/\1/p' "$s")
  v=$(sed -n 's/^  "final_eval_success": \(.*\),$/\1/p' "$s")
  echo "$m $v"
done | awk '{n[$1]++; s[$1]+=$2} END {for (m in n) printf "| %s | %d | %.3f |\n", m, n[m], s[m]/n[m]}' | sort
