#!/bin/sh
# run_metaworld.sh: the Meta-World evidence of docs/results/metaworld.md: CoffeePush, state-based,
# 3 scripted demos, IBRL and RLPD at the same env-step budget (preset metaworld-state, 40k steps).
#   1. 3 expert demos (ibrl-demos, noise 0.1); 2. a BC policy (ibrl-il train); 3. the runs;
#   4. table (table.sh) and curves (ibrl-plot).
# Usage: BUILD=/work/main/build OUT=/tmp/mw sh docs/results/run_metaworld.sh
# Settings (environment): SEEDS ("1"), JOBS (2), EXTRA (more ibrl-train flags).
# Needs the Meta-World assets (IBRL_METAWORLD_ASSETS or the build default).
set -eu
SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
HERE=$(dirname "$SCRIPT")
BUILD=${BUILD:-/work/main/build}
B=$BUILD/bin
OUT=${OUT:-/tmp/ibrl-metaworld}
SEEDS=${SEEDS:-1}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
TASK=metaworld/coffeepush
mkdir -p "$OUT/runs"
cd "$OUT"
export OPENBLAS_NUM_THREADS=1

run_one() {
  m=$1 s=$2 d=$OUT/runs/$1-s$2
  [ -f "$d/summary.json" ] && return 0
  if [ -f "$d/state.bin" ]; then
    "$B/ibrl-train" --resume "$d" 2>"$d.log"
  else
    rm -rf "$d"
    # shellcheck disable=SC2086
    "$B/ibrl-train" --preset metaworld-state --demos demos3.hdf5 --il il.ckpt --method "$m" --seed "$s" --out "$d" \
      $EXTRA 2>"$d.log"
  fi
}
if [ "${1:-}" = "--one" ]; then
  run_one "$2" "$3"
  exit $?
fi

[ -f demos3.hdf5 ] || "$B/ibrl-demos" generate --task $TASK --episodes 3 --noise 0.1 --seed 1 --out demos3.hdf5
[ -f il.ckpt ] || "$B/ibrl-il" train --demos demos3.hdf5 --task $TASK --arch bc --preset metaworld-state --seed 1 \
  --out il.ckpt 2>il_train.log
"$B/ibrl-il" eval --policy il.ckpt --task $TASK --episodes 50 --seed 1 | tee il_eval.txt

: >jobs.txt
for s in $SEEDS; do for m in ibrl rlpd bc; do echo "$m $s" >>jobs.txt; done; done
xargs -P "$JOBS" -L 1 sh "$SCRIPT" --one <jobs.txt || echo "some runs failed: see $OUT/runs/*.log"

sh "$HERE/table.sh" $(ls -d runs/*/ | sed 's,/$,,') >table.md
"$B/ibrl-plot" -o curves.png -t "Meta-World CoffeePush (state, 3 demos): eval success" $(ls -d runs/*/ | sed 's,/$,,')
cat table.md
