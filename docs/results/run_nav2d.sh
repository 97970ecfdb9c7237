#!/bin/sh
# run_nav2d.sh: the nav2d evidence of docs/results/nav2d.md, end to end.
#   1. 10 noisy expert demos (ibrl-demos, noise 0.3);
#   2. a BC policy on them (ibrl-il train, the preset's IL sizes);
#   3. IBRL, RLPD and BC with the preset over SEEDS (same env-step budget for all);
#   4. the ablation: ibrl-noact, ibrl-noboot, ibrl-neither over ABL_SEEDS (full IBRL = step 3);
#   5. tables (table.sh) and overlaid curves (ibrl-plot).
# Usage: BUILD=/work/main/build OUT=/tmp/nav2d sh docs/results/run_nav2d.sh
# Settings (environment): PRESET (nav2d), SEEDS ("1 2 3"), ABL_SEEDS ("1"), JOBS (parallel runs, 2),
# STEPS (env-step budget; default the preset's), EXTRA (more ibrl-train flags, applied to every run).
# Runs are deterministic, so a run's metrics.csv row at N env steps is what a run with budget N
# would end with: tables at a smaller budget can be read from longer runs (table.sh with AT=N).
set -eu
SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
HERE=$(dirname "$SCRIPT")
BUILD=${BUILD:-/work/main/build}
B=$BUILD/bin
OUT=${OUT:-/tmp/ibrl-nav2d}
PRESET=${PRESET:-nav2d}
SEEDS=${SEEDS:-1 2 3}
ABL_SEEDS=${ABL_SEEDS:-1}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
STEPS=${STEPS:-}
mkdir -p "$OUT/runs"
cd "$OUT"
export OPENBLAS_NUM_THREADS=1

if [ "${1:-}" != "--one" ]; then
[ -f demos10.hdf5 ] || "$B/ibrl-demos" generate --task nav2d --episodes 10 --noise 0.3 --seed 1 --out demos10.hdf5
[ -f il.ckpt ] || "$B/ibrl-il" train --demos demos10.hdf5 --task nav2d --arch bc --chunk 1 --preset "$PRESET" \
  --seed 1 --out il.ckpt 2>il_train.log
"$B/ibrl-il" eval --policy il.ckpt --task nav2d --episodes 100 --seed 1 | tee il_eval.txt
fi

# One line per run: "method seed"; runs already finished (summary.json) are skipped, so the
# script can be re-run after an interruption (unfinished runs continue with --resume).
jobs_file=$OUT/jobs.txt
[ "${1:-}" = "--one" ] || : >"$jobs_file"
if [ "${1:-}" != "--one" ]; then
  for s in $SEEDS; do for m in ibrl rlpd; do echo "$m $s" >>"$jobs_file"; done; done
  for s in $SEEDS; do echo "bc $s" >>"$jobs_file"; done
  for s in $ABL_SEEDS; do for m in ibrl-noact ibrl-noboot ibrl-neither; do echo "$m $s" >>"$jobs_file"; done; done
fi

# One run (also the entry point of the parallel workers: run_nav2d.sh --one METHOD SEED).
run_one() {
  m=$1 s=$2 d=$OUT/runs/$1-s$2
  if [ -f "$d/summary.json" ]; then
    # a finished run is extended (resumed from its last checkpoint) only to a larger STEPS
    done_steps=$(sed -n 's/^  "env_steps": \([0-9]*\),$/\1/p' "$d/summary.json")
    [ -n "$STEPS" ] && [ "$done_steps" -lt "$STEPS" ] || return 0
  fi
  if [ -f "$d/state.bin" ]; then
    "$B/ibrl-train" --resume "$d" ${STEPS:+--env-steps $STEPS} 2>>"$d.log"
  else
    rm -rf "$d"
    # shellcheck disable=SC2086
    "$B/ibrl-train" --preset "$PRESET" --task nav2d --demos demos10.hdf5 --il il.ckpt --method "$m" --seed "$s" \
      --out "$d" ${STEPS:+--env-steps $STEPS} $EXTRA 2>"$d.log"
  fi
}
if [ "${1:-}" = "--one" ]; then
  run_one "$2" "$3"
  exit $?
fi
# JOBS runs side by side, each single-threaded.
xargs -P "$JOBS" -L 1 sh "$SCRIPT" --one <"$jobs_file" || echo "some runs failed: see $OUT/runs/*.log"

# Run directories only: each run's log (runs/M-sS.log) sits next to it and matches the same globs.
run_dirs() { for d in "$@"; do if [ -d "$d" ]; then echo "$d"; fi; done; }
AT=$STEPS sh "$HERE/table.sh" $(run_dirs runs/ibrl-s* runs/rlpd-s* runs/bc-s*) >table_main.md
AT=$STEPS sh "$HERE/table.sh" $(run_dirs runs/ibrl-s1 runs/ibrl-noact-s* runs/ibrl-noboot-s* runs/ibrl-neither-s*) >table_ablation.md
"$B/ibrl-plot" -o curves_main.png -t "nav2d, 10 noisy demos: eval success" $(run_dirs runs/ibrl-s* runs/rlpd-s* runs/bc-s*)
"$B/ibrl-plot" -o curves_ablation.png -t "nav2d ablation: eval success" \
  $(run_dirs runs/ibrl-s1 runs/ibrl-noact-s* runs/ibrl-noboot-s* runs/ibrl-neither-s*)
cat table_main.md table_ablation.md
