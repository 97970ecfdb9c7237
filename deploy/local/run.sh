#!/usr/bin/env bash
# The ibrl main job on one host: demos -> IL policy -> replay shards + actors + MPI learner group,
# with a live progress view, a summary (BC vs IBRL) and a learning curve.
#   usage: bash deploy/local/run.sh [--task T] [--actors N] [--shards N] [--ranks N] [--minutes M]
#                                   [--out DIR] [flags]      (--help for all flags)
# Installs what is missing (deploy/local/deps.sh) and builds the binaries first. Every process it
# starts is stopped when it ends, also on Ctrl-C / SIGTERM (trap; the pids it started).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
prog=run.sh

task=nav2d
actors=4
shards=2
ranks=2
minutes=5
out=""
preset=""
n_demos=10
demo_noise=0.3
seed=1
utd=0.5
matmul=""   # empty: the preset's (fp32; auto for paper-state)
eval_episodes=50
build_dir=$ROOT/build
do_build=1
# The tasks the binaries know (actor/env/env.c's table; tests/deploy/run_flags.sh keeps the two equal).
tasks="nav2d nav2d-hard metaworld/assembly metaworld/boxclose metaworld/coffeepush metaworld/stickpull"

usage() {
  cat <<EOF
usage: bash deploy/local/run.sh [flags]
The ibrl main job on this host: generates demos and trains the IL policy on the task, then runs
--shards replay shards, --actors actors (+ 1 evaluator) and an MPI learner group of --ranks ranks
for --minutes, shows live progress, and ends with BC vs IBRL success and a learning curve.
  --task T         task [$task], one of:
                   $tasks
  --actors N       actor processes, 1..64 [$actors]
  --shards N       replay shards, 1..16 [$shards]
  --ranks N        MPI learner ranks (must divide the preset's batch) [$ranks]
  --minutes M      learner training time in minutes [$minutes]
  --out DIR        run directory [/tmp/ibrl-main-<date>]
  --preset P       hyperparameters: nav2d-quick nav2d metaworld-state paper-state
                   [nav2d-quick for nav2d*, metaworld-state for metaworld/*]
  --demos N        demonstrations to generate [$n_demos]
  --seed S         seed of everything [$seed]
  --utd X          learner updates per inserted transition (replay rate limiter) [$utd]
  --matmul P       the learner's matrix-product precision: fp32, bf16x3 (near-fp32), bf16 (the
                   two on AMX-BF16 CPUs only) or auto (bf16x3 with AMX-BF16, else fp32)
                   [the preset's: fp32, auto for paper-state]
  --eval-episodes N  episodes per evaluation [$eval_episodes]
  --build-dir DIR  CMake build directory [build]
  --no-build       use the binaries already in --build-dir
  --help           this text
Exit codes: 0 done, 1 a process (or the install or build) failed, 2 bad flags or setup (an
unknown task, a count out of range, --no-build without the binaries); flags are checked before
anything is installed or built.
EOF
}

bad() {
  echo "$prog: $* (see bash deploy/local/run.sh --help)" >&2
  exit 2
}
need_val() { [ $# -ge 2 ] && [ -n "$2" ] || bad "missing value for $1"; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

while [ $# -gt 0 ]; do
  case "$1" in
    --task) need_val "$@"; task=$2; shift 2 ;;
    --actors) need_val "$@"; actors=$2; shift 2 ;;
    --shards) need_val "$@"; shards=$2; shift 2 ;;
    --ranks) need_val "$@"; ranks=$2; shift 2 ;;
    --minutes) need_val "$@"; minutes=$2; shift 2 ;;
    --out) need_val "$@"; out=$2; shift 2 ;;
    --preset) need_val "$@"; preset=$2; shift 2 ;;
    --demos) need_val "$@"; n_demos=$2; shift 2 ;;
    --seed) need_val "$@"; seed=$2; shift 2 ;;
    --utd) need_val "$@"; utd=$2; shift 2 ;;
    --matmul) need_val "$@"; matmul=$2; shift 2 ;;
    --eval-episodes) need_val "$@"; eval_episodes=$2; shift 2 ;;
    --build-dir) need_val "$@"; build_dir=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) bad "unknown flag '$1'" ;;
  esac
done
case " $tasks " in *" $task "*) ;; *) bad "--task '$task' is not a known task (HINT: one of: $tasks)" ;; esac
is_int "$actors" && [ "$actors" -ge 1 ] && [ "$actors" -le 64 ] || bad "--actors '$actors' is not an integer in [1, 64]"
is_int "$shards" && [ "$shards" -ge 1 ] && [ "$shards" -le 16 ] || bad "--shards '$shards' is not an integer in [1, 16]"
is_int "$ranks" && [ "$ranks" -ge 1 ] && [ "$ranks" -le 64 ] || bad "--ranks '$ranks' is not an integer in [1, 64]"
is_num "$minutes" && awk "BEGIN{exit !($minutes > 0)}" || bad "--minutes '$minutes' is not a positive number"
case "$matmul" in ""|fp32|bf16x3|bf16|auto) ;; *) bad "--matmul '$matmul' is not fp32, bf16x3, bf16 or auto" ;; esac
is_num "$utd" && awk "BEGIN{exit !($utd > 0)}" || bad "--utd '$utd' is not a positive number"
is_int "$n_demos" && [ "$n_demos" -ge 1 ] || bad "--demos '$n_demos' is not a positive integer"
is_int "$seed" || bad "--seed '$seed' is not a non-negative integer"
is_int "$eval_episodes" && [ "$eval_episodes" -ge 1 ] || bad "--eval-episodes '$eval_episodes' is not a positive integer"
if [ -z "$preset" ]; then
  case "$task" in
    metaworld/*) preset=metaworld-state ;;
    *) preset=nav2d-quick ;;
  esac
fi
case "$preset" in
  nav2d-quick|nav2d|metaworld-state) batch=128 ;;
  paper-state) batch=256 ;;
  *) bad "--preset '$preset' is not one of nav2d-quick nav2d metaworld-state paper-state" ;;
esac
[ $((batch % ranks)) -eq 0 ] || bad "--ranks $ranks does not divide the preset's batch $batch (HINT: 1, 2 or 4)"
[ -n "$out" ] || out=${TMPDIR:-/tmp}/ibrl-main-$(date +%Y%m%d-%H%M%S)
t_start=$(date +%s)

# ---- 1. install and build ----
B=$build_dir/bin
targets="ibrl-replay ibrl-replayctl ibrl-actor ibrl-learner ibrl-demos ibrl-il ibrl-plot"
if [ "$do_build" -eq 1 ]; then
  echo "== 1/4 install and build ($build_dir)"
  "$ROOT/deploy/local/deps.sh"
  cmake -S "$ROOT" -B "$build_dir" >"${TMPDIR:-/tmp}/ibrl-run-cmake.log" 2>&1 ||
    { tail -n 20 "${TMPDIR:-/tmp}/ibrl-run-cmake.log" >&2; echo "$prog: cmake failed" >&2; exit 1; }
  # shellcheck disable=SC2086
  cmake --build "$build_dir" -j"$(nproc 2>/dev/null || echo 2)" --target $targets >"${TMPDIR:-/tmp}/ibrl-run-build.log" 2>&1 ||
    { tail -n 30 "${TMPDIR:-/tmp}/ibrl-run-build.log" >&2; echo "$prog: build failed" >&2; exit 1; }
fi
for t in $targets; do
  [ -x "$B/$t" ] && continue
  # Without --no-build the build just made them: a missing one is a failed build (1).
  [ "$do_build" -eq 0 ] || { echo "$prog: $B/$t is missing after the build" >&2; exit 1; }
  echo "$prog: $B/$t is missing (HINT: drop --no-build, or pass the right --build-dir)" >&2
  exit 2
done

mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
IBC_BIN=$B
IBC_LOGS=$out/logs
# shellcheck source=deploy/local/cluster.sh
. "$ROOT/deploy/local/cluster.sh"
ibc_mpi_env
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$IBC_PIDS" ]; then
    echo ""
    echo "stopping every process of this run..."
    ibc_stop_all
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'echo ""; echo "interrupted"; exit 130' INT TERM

# ---- 2. demos and the IL policy ----
echo "== 2/4 demos and IL policy: $n_demos demos of $task (noise $demo_noise), preset $preset  [$out]"
if [ ! -f "$out/demos.hdf5" ]; then
  "$B/ibrl-demos" generate --task "$task" --episodes "$n_demos" --noise "$demo_noise" --seed "$seed" --out "$out/demos.hdf5" \
    --quiet >"$IBC_LOGS/demos.log" 2>&1 || { tail -n 5 "$IBC_LOGS/demos.log" >&2; exit 1; }
fi
tail -n 1 "$IBC_LOGS/demos.log" 2>/dev/null || true
if [ ! -f "$out/il.ckpt.meta" ]; then
  "$B/ibrl-il" train --demos "$out/demos.hdf5" --task "$task" --arch bc --chunk 1 --n-stack 1 --preset "$preset" \
    --seed "$seed" --out "$out/il.ckpt" --quiet >"$IBC_LOGS/il_train.log" 2>&1 || { tail -n 5 "$IBC_LOGS/il_train.log" >&2; exit 1; }
fi
meta() { awk -v k="$1" '$1 == k {print $2}' "$out/il.ckpt.meta"; }
obs_dim=$(meta obs_dim)
act_dim=$(meta act_dim)
chunk=$(meta chunk)
n_stack=$(meta n_stack)
echo "   IL policy: obs $obs_dim -> action chunk $act_dim ($out/il.ckpt)"

# ---- 3. the system ----
spi=$(awk "BEGIN{printf \"%.6g\", $batch * $utd}")
ebuf=$(awk "BEGIN{printf \"%.6g\", $batch * $utd * 400}")
echo "== 3/4 system: $shards replay shard(s), $actors actors + 1 evaluator, mpirun -np $ranks ibrl-learner, $minutes min"
echo "   rate limiter per shard: $spi samples per insert (UTD $utd x batch $batch), min size 500"
list=""
for ((s = 0; s < shards; s++)); do
  ibc_replay "replay-$s" "$s" --obs-dim "$obs_dim" --act-dim "$act_dim" --online-capacity 200000 \
    --samples-per-insert "$spi" --error-buffer "$ebuf" --min-size 500 --threads 6 \
    --ckpt-dir "$out/replay-$s" --ckpt-period 60 --seed $((seed + s))
  list=${list:+$list,}$IBC_ADDR
done
echo "   replay shards: $list"
"$B/ibrl-replayctl" --shards "$list" import-demos "$out/demos.hdf5" --chunk "$chunk" --stack "$n_stack" \
  >"$IBC_LOGS/import.log" 2>&1 || { cat "$IBC_LOGS/import.log" >&2; exit 1; }
echo "   $(tail -n 1 "$IBC_LOGS/import.log")"
common=(--replay "$list" --il "$out/il.ckpt" --preset "$preset" --task "$task" --seed "$seed")
ibc_start learner mpirun --bind-to none -np "$ranks" "$B/ibrl-learner" "${common[@]}" --minutes "$minutes" \
  ${matmul:+--matmul "$matmul"} --publish-every 25 --log-every 25 --ckpt-every 1000 --out "$out/learner"
ibc_start eval "$B/ibrl-actor" --role eval "${common[@]}" --out "$out/eval" --eval-episodes "$eval_episodes" --eval-every 20
for ((i = 0; i < actors; i++)); do
  ibc_start "actor-$i" "$B/ibrl-actor" "${common[@]}" --actor-id "$i" --log-every 2 --status "$out/logs/actor-$i.json"
done

# ---- live progress ----
last_csv_row() { [ -f "$1" ] && tail -n 1 "$1" | grep -v '^env_steps' || true; }
col() { echo "$1" | awk -F, -v c="$2" '{print $c}'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN{ if (v == "" || v == "nan" || v == "-1") print "-"; else printf f, v }'; }
tty=0
[ -t 1 ] && tty=1
drawn=0
prev_steps=0
prev_t=$(date +%s.%N)
sps=-
last_plain=0
progress() {
  local steps=0 eps=0 succ=0 ilw=0 ilt=0 now f v
  for ((i = 0; i < actors; i++)); do
    f=$out/logs/actor-$i.json
    [ -f "$f" ] || continue
    v=$(ibc_json_num "$f" env_steps); steps=$((steps + ${v:-0}))
    v=$(ibc_json_num "$f" episodes); eps=$((eps + ${v:-0}))
    v=$(ibc_json_num "$f" successes); succ=$((succ + ${v:-0}))
    v=$(ibc_json_num "$f" il_act_il); ilw=$((ilw + ${v:-0}))
    v=$(ibc_json_num "$f" il_act_total); ilt=$((ilt + ${v:-0}))
  done
  now=$(date +%s.%N)
  # env steps/s over windows of at least 10 s (actors held back by the rate limiter update their
  # status files in bursts)
  if awk -v t="$now" -v u="$prev_t" 'BEGIN{exit !(t - u >= 10)}'; then
    sps=$(awk -v a="$steps" -v b="$prev_steps" -v t="$now" -v u="$prev_t" 'BEGIN{d = t - u; r = 0; if (d > 0) r = (a - b) / d; printf "%.0f", r}')
    prev_steps=$steps
    prev_t=$now
  fi
  local lrow ups stale ver upd wait erow ev
  lrow=$(last_csv_row "$out/learner/metrics.csv")
  upd=$(col "$lrow" 3); ups=$(col "$lrow" 13); stale=$(col "$lrow" 15); ver=$(col "$lrow" 18); wait=$(col "$lrow" 19)
  erow=$(last_csv_row "$out/eval/metrics.csv")
  ev=$(col "$erow" 5)
  local sizes
  sizes=$("$B/ibrl-replayctl" --shards "$list" --deadline-ms 1000 --json info --rate-ms 0 2>/dev/null |
    grep -o '"name":"online","kind":"online","size":[0-9]*' | sed 's/.*://' | paste -sd/ - || true)
  local el=$(($(date +%s) - t_start))
  local l1 l2 l3
  l1=$(printf "  [%3d:%02d] env steps %8d  %6s steps/s | updates %6s  %6s upd/s | weights v%-5s sampled data age %s versions" \
    $((el / 60)) $((el % 60)) "$steps" "$sps" "${upd:--}" "$(fmt "$ups" "%.1f")" "${ver:--}" "$(fmt "$stale" "%.1f")")
  l2=$(printf "           episodes %6d  train success %s  IL-win %s | eval success %s (IL alone %s)" "$eps" \
    "$(fmt "$(awk -v a="$succ" -v b="$eps" 'BEGIN{if (b > 0) print a / b; else print ""}')" "%.2f")" \
    "$(fmt "$(awk -v a="$ilw" -v b="$ilt" 'BEGIN{if (b > 0) print a / b; else print ""}')" "%.2f")" \
    "$(fmt "$ev" "%.2f")" "$(fmt "$(ibc_json_num "$out/eval/summary.json" il_eval_success)" "%.2f")")
  l3=$(printf "           replay online sizes %s | the learner waits %s ms an update for its batch" \
    "${sizes:-(unreachable)}" "$(fmt "$wait" "%.2f")")
  if [ "$tty" -eq 1 ]; then
    [ "$drawn" -eq 1 ] && printf '\033[3A'
    printf '\r\033[K%s\n\033[K%s\n\033[K%s\n' "$l1" "$l2" "$l3"
    drawn=1
  elif [ $((el - last_plain)) -ge 15 ]; then
    printf '%s\n%s\n%s\n' "$l1" "$l2" "$l3"
    last_plain=$el
  fi
}

failed=""
while ibc_alive learner; do
  for w in $IBC_PIDS; do
    n=${w%%:*}
    [ "$n" = learner ] && continue
    if ! kill -0 "${w##*:}" 2>/dev/null && [ -z "${dead_seen:-}" ]; then
      echo "$prog: $n exited early (log: $IBC_LOGS/$n.log):" >&2
      tail -n 3 "$IBC_LOGS/$n.log" >&2
      dead_seen=1
    fi
  done
  progress
  sleep 2
done
progress
lrc=0
wait "$(ibc_pid learner)" 2>/dev/null || lrc=$?
if [ "$lrc" -ne 0 ]; then
  failed="the learner exited with code $lrc (log: $IBC_LOGS/learner.log)"
  tail -n 8 "$IBC_LOGS/learner.log" >&2
fi

# ---- 4. stop and summarise ----
echo "== 4/4 stopping actors and evaluator (final evaluation of the last weights), then the shards"
for w in $IBC_PIDS; do
  n=${w%%:*}
  case "$n" in actor-*|eval) kill -TERM "${w##*:}" 2>/dev/null || true ;; esac
done
for w in $IBC_PIDS; do
  n=${w%%:*}
  case "$n" in actor-*|eval) ibc_stop "$n" ;; esac
done
ibc_stop_all
curve=$out/curve.png
"$B/ibrl-plot" -o "$curve" -t "IBRL on $task ($actors actors, $ranks learner ranks): eval success" "$out/eval" \
  >"$IBC_LOGS/plot.log" 2>&1 || echo "$prog: ibrl-plot failed (see $IBC_LOGS/plot.log)" >&2
S=$out/eval/summary.json
bc=$(ibc_json_num "$S" il_eval_success)
fin=$(ibc_json_num "$S" final_eval_success)
best=$(ibc_json_num "$S" best_eval_success)
el=$(($(date +%s) - t_start))
steps=0
for ((i = 0; i < actors; i++)); do
  v=$(ibc_json_num "$out/logs/actor-$i.json" env_steps)
  steps=$((steps + ${v:-0}))
done
lrow=$(last_csv_row "$out/learner/metrics.csv")
echo ""
echo "== summary: $task, $actors actors, $shards shard(s), $ranks learner ranks, preset $preset"
printf "   BC (the IL policy alone):  success %s over %s seeded episodes\n" "$(fmt "$bc" "%.2f")" "$eval_episodes"
printf "   IBRL (final weights):      success %s  (best evaluation %s)\n" "$(fmt "$fin" "%.2f")" "$(fmt "$best" "%.2f")"
printf "   %s env steps by the actors, %s learner updates, %d min %02d s in total\n" "$steps" "$(col "$lrow" 3)" \
  $((el / 60)) $((el % 60))
echo "   run directory: $out  (eval/ metrics.csv summary.json, learner/ checkpoints, logs/)"
[ -f "$curve" ] && echo "   learning curve: $curve"
if [ -n "$failed" ]; then
  echo "$prog: $failed" >&2
  exit 1
fi
exit 0
