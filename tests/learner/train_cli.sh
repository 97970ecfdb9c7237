#!/bin/sh
# train_cli.sh: end-to-end checks of ibrl-il, ibrl-train and ibrl-plot on nav2d (seconds):
#  - ibrl-il train/eval produce a checkpoint and print a success rate;
#  - a short ibrl-train run writes every run-directory file with the right columns and keys;
#  - the same seed gives an identical metrics.csv (wall_s dropped);
#  - a run stopped at a checkpoint and resumed equals the uninterrupted run;
#  - bad flags, unknown task/method, missing demo or IL files exit 2 with a message naming them;
#  - ibrl-plot overlays runs, and refuses (exit 2, naming the thing) a directory without
#    metrics.csv, a column without values, an unknown or misplaced flag and an unwritable -o.
# Needs IB_BIN_DIR (set by ctest). Exits 1 on the first failed check.
set -u
B=${IB_BIN_DIR:?IB_BIN_DIR is not set}
W=$(mktemp -d /tmp/ib_train_cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "PASS: $*"; }

# expect_exit CODE PATTERN cmd...: the command exits CODE and its stderr matches PATTERN.
expect_exit() {
  want=$1 pat=$2
  shift 2
  "$@" >"$W/out" 2>"$W/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "'$*' exited $got, expected $want: $(cat "$W/err")"
  elif ! grep -q -- "$pat" "$W/err"; then
    fail "'$*' stderr lacks '$pat': $(cat "$W/err")"
  else
    pass "'$*' -> exit $want, '$pat'"
  fi
}

cd "$W" || exit 1
"$B/ibrl-demos" generate --task nav2d --episodes 4 --noise 0.2 --seed 3 --out demos.hdf5 --quiet >/dev/null 2>&1 ||
  { echo "FAIL: ibrl-demos generate"; exit 1; }

# ---- ibrl-il ----
if "$B/ibrl-il" train --demos demos.hdf5 --task nav2d --arch bc --chunk 1 --out il.ckpt --steps 60 --batch 32 \
     --hidden 32 --quiet 2>"$W/err" && [ -f il.ckpt ] && [ -f il.ckpt.meta ]; then
  pass "ibrl-il train"
else
  fail "ibrl-il train: $(cat "$W/err")"
fi
if "$B/ibrl-il" eval --policy il.ckpt --task nav2d --episodes 4 >"$W/out" 2>"$W/err" &&
   grep -q '^success rate [01]\.[0-9]* ([0-4]/4 episodes' "$W/out"; then
  pass "ibrl-il eval: $(cat "$W/out")"
else
  fail "ibrl-il eval: $(cat "$W/out") $(cat "$W/err")"
fi
if "$B/ibrl-il" train --demos demos.hdf5 --task nav2d --arch cvae --chunk 2 --out cvae.ckpt --steps 20 --batch 16 \
     --hidden 16 --quiet 2>"$W/err" && "$B/ibrl-il" eval --policy cvae.ckpt --episodes 2 >"$W/out" 2>&1; then
  pass "ibrl-il cvae chunk 2 train + eval"
else
  fail "ibrl-il cvae: $(cat "$W/err") $(cat "$W/out")"
fi

# Progress lines say what their numbers are: BC prints one window-mean loss and no recon/kl;
# the CVAE prints window means of loss, recon and kl that satisfy loss = recon + w * kl (a
# recon from the last step only, as printed before, breaks the identity).
if "$B/ibrl-il" train --demos demos.hdf5 --task nav2d --arch bc --chunk 1 --out bcp.ckpt --steps 40 --batch 16 \
     --hidden 16 >"$W/out" 2>"$W/err" &&
   grep -q 'step 40/40 | loss [0-9.]* (mean of the last 4 steps)' "$W/err" && ! grep -q 'recon\|kl' "$W/err"; then
  pass "ibrl-il bc progress: window-mean loss only"
else
  fail "ibrl-il bc progress line: $(grep 'step' "$W/err" | tail -n 2)"
fi
if "$B/ibrl-il" train --demos demos.hdf5 --task nav2d --arch cvae --chunk 2 --out cvaep.ckpt --steps 20 --batch 16 \
     --hidden 16 --kl-weight 0.5 >"$W/out" 2>"$W/err" &&
   awk '/mean of the last [0-9]+ steps: loss/ {
          for (i = 1; i < NF; i++) {
            if ($i == "loss") l = $(i + 1); if ($i == "recon") r = $(i + 1);
            if ($i == "kl_weight") w = $(i + 1); if ($i == "kl") k = $(i + 1);
          }
          n++; d = l - (r + w * k); if (d < 0) d = -d; if (d > 2e-5 + 1e-5 * w) bad++
        } END { exit !(n == 10 && bad == 0) }' "$W/err"; then
  pass "ibrl-il cvae progress: loss = recon + kl_weight x kl on every line"
else
  fail "ibrl-il cvae progress lines: $(grep 'step' "$W/err" | tail -n 2)"
fi

# ---- a short ibrl-train run ----
common="--task nav2d --demos demos.hdf5 --il il.ckpt --method ibrl --env-steps 600 --eval-every 200 --eval-episodes 4
 --warmup 2 --hidden 32 --critic-hidden 32 --batch 32 --ckpt-every 150 --quiet"
# shellcheck disable=SC2086
"$B/ibrl-train" $common --seed 5 --out runA 2>"$W/err" || fail "ibrl-train runA: $(cat "$W/err")"
for f in config.json metrics.csv summary.json; do
  [ -s "runA/$f" ] && pass "runA/$f exists" || fail "runA/$f missing"
done
if command -v gnuplot >/dev/null 2>&1; then
  [ -s runA/curve.png ] && pass "runA/curve.png" || fail "runA/curve.png missing although gnuplot exists"
else
  echo "NOTE: gnuplot absent, curve.png not checked"
fi
hdr=$(head -n 1 runA/metrics.csv)
for c in env_steps wall_s updates eval_success train_success il_win_act il_win_bootstrap critic_loss actor_loss; do
  echo ",$hdr," | grep -q ",$c," && pass "column $c" || fail "metrics.csv lacks column $c"
done
rows=$(tail -n +2 runA/metrics.csv | wc -l)
[ "$rows" -eq 4 ] && pass "4 eval rows (0, 200, 400, 600)" || fail "expected 4 rows, got $rows"
tail -n 1 runA/metrics.csv | grep -q '^600,' && pass "last row at 600" || fail "last row: $(tail -n 1 runA/metrics.csv)"
for k in method task env_steps final_eval_success il_eval_success; do
  grep -q "\"$k\":" runA/summary.json && pass "summary $k" || fail "summary.json lacks $k"
done
grep -q '"method": "ibrl"' runA/summary.json || fail "summary method"
grep -q '"env_steps": 600' runA/summary.json || fail "summary env_steps"
for k in task method seed env_steps batch critic_heads demo_ratio actor_dropout nstep chunk; do
  grep -q "\"$k\":" runA/config.json || fail "config.json lacks $k"
done

# ---- config.json describes the IL policy that was loaded, from its checkpoint ----
# A CVAE with a non-default chunk, steps, width, latent and seed, run under a preset whose IL
# training defaults say bc / 3000 steps / 256 wide: config.json must name the checkpoint's values
# (it used to copy the preset's defaults: a CVAE of chunk 4 and 500 steps read "bc", 3000).
if "$B/ibrl-il" train --demos demos.hdf5 --task nav2d --arch cvae --chunk 3 --out cvae3.ckpt --steps 37 --batch 16 \
     --hidden 24 --latent 5 --seed 11 --quiet 2>"$W/err" &&
   "$B/ibrl-train" --preset nav2d-quick --task nav2d --demos demos.hdf5 --il cvae3.ckpt --chunk 3 --env-steps 60 \
     --eval-every 60 --eval-episodes 2 --warmup 1 --hidden 16 --critic-hidden 16 --batch 16 --quiet --out runIL 2>"$W/err"; then
  sed -n '/^  "il_policy": {$/,/^  }$/p' runIL/config.json >ilp.txt
  miss=""
  for kv in '"used": true,' '"arch": "cvae",' '"chunk": 3,' '"hidden": 24,' '"latent": 5,' '"train_steps": 37,' \
            '"train_batch": 16,' '"train_seed": 11,' "\"train_demos\": \"$W/demos.hdf5\""; do
    grep -qxF "    $kv" ilp.txt || miss="$miss $kv"
  done
  if [ -z "$miss" ] && ! grep -q '"il_arch"\|"il_steps"' runIL/config.json; then
    pass "config.json il_policy: the checkpoint's cvae, chunk 3, 37 training steps, seed 11"
  else
    fail "config.json il_policy lacks:$miss (or has preset il_* fields): $(cat ilp.txt)"
  fi
else
  fail "cvae3 IL policy + ibrl-train runIL: $(cat "$W/err")"
fi

# ---- determinism ----
# shellcheck disable=SC2086
"$B/ibrl-train" $common --seed 5 --out runB 2>"$W/err" || fail "ibrl-train runB: $(cat "$W/err")"
cut -d, -f1,3- runA/metrics.csv >a.csv
cut -d, -f1,3- runB/metrics.csv >b.csv
if cmp -s a.csv b.csv; then pass "same seed -> identical metrics.csv"; else fail "same seed differs: $(diff a.csv b.csv | head -5)"; fi
# a different seed must change something (else the comparison above proves nothing)
# shellcheck disable=SC2086
"$B/ibrl-train" $common --seed 6 --out runD 2>"$W/err" || fail "ibrl-train runD: $(cat "$W/err")"
cut -d, -f1,3- runD/metrics.csv >d.csv
if cmp -s a.csv d.csv; then fail "seed 6 gives the same metrics as seed 5"; else pass "another seed differs"; fi

# ---- --matmul: bf16x3 (AMX) is deterministic too, differs from fp32, and config.json says which ran ----
grep -q '"matmul": "fp32"' runA/config.json && pass "config.json matmul fp32" || fail "config.json lacks matmul fp32"
grep -q '"blas_core": "[A-Za-z]' runA/config.json && pass "config.json names the OpenBLAS kernel" || fail "config.json lacks blas_core"
expect_exit 2 "unknown matmul precision 'fp16'" "$B/ibrl-train" --matmul fp16
# shellcheck disable=SC2086
if "$B/ibrl-train" $common --seed 5 --matmul bf16x3 --out runM1 2>"$W/err"; then
  # shellcheck disable=SC2086
  "$B/ibrl-train" $common --seed 5 --matmul bf16x3 --out runM2 2>"$W/err" || fail "ibrl-train runM2: $(cat "$W/err")"
  cut -d, -f1,3- runM1/metrics.csv >m1.csv
  cut -d, -f1,3- runM2/metrics.csv >m2.csv
  if cmp -s m1.csv m2.csv; then pass "bf16x3: same seed -> identical metrics.csv"; else fail "bf16x3 same seed differs: $(diff m1.csv m2.csv | head -5)"; fi
  if cmp -s a.csv m1.csv; then fail "bf16x3 gives exactly the fp32 metrics: the flag had no effect"; else pass "bf16x3 differs from fp32"; fi
  grep -q '"matmul": "bf16x3"' runM1/config.json && pass "config.json matmul bf16x3" || fail "config.json lacks matmul bf16x3"
else
  # a machine without AMX-BF16 must refuse with a message and a hint
  grep -q "HINT" "$W/err" && pass "no AMX: --matmul bf16x3 refused with a hint" || fail "bf16x3 run failed: $(cat "$W/err")"
fi

# ---- resume equivalence ----
# shellcheck disable=SC2086
"$B/ibrl-train" $common --seed 5 --stop-after 250 --out runC 2>"$W/err" || fail "runC (stop): $(cat "$W/err")"
grep -q "continue with --resume" "$W/err" && pass "runC stopped at a checkpoint" || fail "runC did not stop: $(cat "$W/err")"
[ -f runC/summary.json ] && fail "a stopped run wrote summary.json"
# from another directory: the run names its demos and IL policy by absolute path
(cd / && "$B/ibrl-train" --resume "$W/runC" --quiet) 2>"$W/err" || fail "resume runC from /: $(cat "$W/err")"
cut -d, -f1,3- runC/metrics.csv >c.csv
if cmp -s a.csv c.csv; then pass "stop + resume == uninterrupted"; else fail "resume differs: $(diff a.csv c.csv | head -5)"; fi
sed 's/"wall_s".*//' runA/summary.json >sa.json
sed 's/"wall_s".*//' runC/summary.json >sc.json
cmp -s sa.json sc.json && pass "resumed summary equal" || fail "summaries differ: $(diff sa.json sc.json)"

# ---- --eval-mode: il scores the IL policy alone at every evaluation ----
# shellcheck disable=SC2086
"$B/ibrl-train" $common --seed 5 --env-steps 400 --eval-mode il --out runE 2>"$W/err" || fail "runE: $(cat "$W/err")"
il_alone=$(sed -n 's/^  "il_eval_success": \(.*\),$/\1/p' runE/summary.json)
bad=$(awk -F, -v il="$il_alone" 'NR > 1 && $5 != "nan" && ($5 + 0 != il + 0) {n++} END {print n + 0}' runE/metrics.csv)
rows=$(awk -F, 'NR > 1 && $5 != "nan"' runE/metrics.csv | wc -l)
# and no evaluation ran the IBRL selection (il_win_eval, column 9, is a number in ibrl mode: runA)
sel=$(awk -F, 'NR > 2 && $9 != "nan" {n++} END {print n + 0}' runE/metrics.csv)
sel_a=$(awk -F, 'NR > 2 && $9 != "nan" {n++} END {print n + 0}' runA/metrics.csv)
if [ -n "$il_alone" ] && [ "$bad" -eq 0 ] && [ "$rows" -ge 2 ] && [ "$sel" -eq 0 ] && [ "$sel_a" -ge 2 ] &&
   grep -q '"eval_mode": "il"' runE/config.json; then
  pass "--eval-mode il: $rows evaluations all equal the IL policy alone ($il_alone)"
else
  fail "--eval-mode il: $bad of $rows evaluations differ from the IL policy alone ($il_alone); $sel used the IBRL selection (runA: $sel_a)"
fi
grep -q '"eval_mode": "ibrl"' runA/config.json && grep -q '"n_min": 2' runA/config.json &&
  grep -q '"boot_proposal": 1' runA/config.json && pass "config.json: resolved eval mode and agent settings" ||
  fail "config.json lacks eval_mode/n_min/boot_proposal"
expect_exit 2 "method rlpd does not hold one" "$B/ibrl-train" --task nav2d --demos demos.hdf5 --method rlpd --eval-mode il --out e6
expect_exit 2 "method bc has none" "$B/ibrl-train" --task nav2d --il il.ckpt --method bc --eval-mode rl --out e7
expect_exit 2 "eval mode 'explore' is not auto" "$B/ibrl-train" --eval-mode explore

# ---- the other methods and the SAC backbone run end to end ----
small="--task nav2d --demos demos.hdf5 --env-steps 300 --eval-every 150 --eval-episodes 2 --warmup 1 --hidden 16
 --critic-hidden 16 --batch 16 --quiet"
for v in "rlpd" "rft --rft-pretrain 20" "bc --il il.ckpt" "ibrl-neither --il il.ckpt" "ibrl --il il.ckpt --backbone sac --soft"; do
  name=$(echo "$v" | tr -c 'a-z\n' '_')
  # shellcheck disable=SC2086
  if "$B/ibrl-train" $small --method $v --out "m_$name" 2>"$W/err" && grep -q '"final_eval_success": [0-9]' "m_$name/summary.json"; then
    pass "method $v"
  else
    fail "method $v: $(cat "$W/err")"
  fi
done
grep -q '"demo_ratio": 0.5,' m_rlpd/config.json && pass "rlpd demo ratio 0.5" || fail "rlpd demo ratio not 0.5"
grep -q '^  "il_policy": null$' m_rlpd/config.json && pass "rlpd without --il: il_policy null" ||
  fail "rlpd config.json il_policy: $(grep -A2 il_policy m_rlpd/config.json)"

# ---- errors: exit 2 with a message naming the thing ----
# the message names the flag (its wording, 'unknown flag' or 'unknown option', is cli.c's)
expect_exit 2 "'--bogus'" "$B/ibrl-train" --bogus
expect_exit 2 "unknown task 'nav3d'" "$B/ibrl-train" --task nav3d --demos demos.hdf5 --il il.ckpt --out e1
[ -e e1 ] && fail "a failed setup left run directory e1"
expect_exit 2 "missing.hdf5" "$B/ibrl-train" --task nav2d --demos missing.hdf5 --il il.ckpt --out e2
expect_exit 2 "nope.ckpt" "$B/ibrl-train" --task nav2d --demos demos.hdf5 --il nope.ckpt --out e3
expect_exit 2 "needs an IL policy" "$B/ibrl-train" --task nav2d --demos demos.hdf5 --method ibrl --out e4
expect_exit 2 "unknown method 'ppo'" "$B/ibrl-train" --method ppo
expect_exit 2 "--env-steps 'ten'" "$B/ibrl-train" --env-steps ten
expect_exit 2 "demo-ratio" "$B/ibrl-train" --demo-ratio 2
expect_exit 2 "unknown preset" "$B/ibrl-train" --preset warp
expect_exit 2 "already holds a run" "$B/ibrl-train" $common --seed 5 --out runA
expect_exit 2 "only --env-steps" "$B/ibrl-train" --resume runA --batch 8
expect_exit 2 "config.bin" "$B/ibrl-train" --resume nowhere
expect_exit 2 "chunk" "$B/ibrl-train" --task nav2d --demos demos.hdf5 --il il.ckpt --chunk 2 --out e5
expect_exit 2 "arch 'gpt'" "$B/ibrl-il" train --demos demos.hdf5 --arch gpt --out x.ckpt
expect_exit 2 "missing.hdf5" "$B/ibrl-il" train --demos missing.hdf5 --out x.ckpt
expect_exit 2 "nope.ckpt" "$B/ibrl-il" eval --policy nope.ckpt --task nav2d
expect_exit 2 "unknown task" "$B/ibrl-il" eval --policy il.ckpt --task nav3d
expect_exit 2 "unknown command" "$B/ibrl-il" fly
# A replay larger than the machine's memory is a usage error before the run directory appears
# (it used to abort in the allocator: "out of memory allocating N bytes", SIGABRT, exit 134).
expect_exit 2 "--replay 1000000000: the replay tables need .* GiB, this machine has .*HINT: lower --replay" \
  "$B/ibrl-train" --task nav2d --demos demos.hdf5 --il il.ckpt --replay 1000000000 --out e8
[ -e e8 ] && fail "a refused --replay left run directory e8"
# A truncated IL checkpoint says what probably happened and what to do (it had no HINT).
head -c 100 il.ckpt >trunc.ckpt && cp il.ckpt.meta trunc.ckpt.meta
expect_exit 2 "100 bytes, the header implies .*(truncated) (HINT: the file was cut short" "$B/ibrl-il" eval \
  --policy trunc.ckpt --task nav2d --episodes 1
expect_exit 2 "HINT: .*retrain an IL policy with ibrl-il train" "$B/ibrl-train" --task nav2d --demos demos.hdf5 \
  --il trunc.ckpt --out e9
"$B/ibrl-train" --help >/dev/null && "$B/ibrl-il" train --help >/dev/null && pass "--help exits 0" || fail "--help"
# The learner benchmark's PyTorch peer: an explicit --torch-script that is not there is an
# error before any timing (it used to print a note and exit 0).
if [ -x "$B/ibrl-bench" ]; then
  expect_exit 2 "nonexist.py" "$B/ibrl-bench" learner --torch-script "$W/nonexist.py" --steps 1
else
  echo "SKIP: ibrl-bench not built"
fi

# ---- ibrl-plot ----
if command -v gnuplot >/dev/null 2>&1; then
  "$B/ibrl-plot" -o over.png runA runD >/dev/null 2>"$W/err" && [ -s over.png ] && pass "ibrl-plot overlay" ||
    fail "ibrl-plot: $(cat "$W/err")"
fi
expect_exit 2 "metrics.csv not found" "$B/ibrl-plot" -o x.png runA nowhere
expect_exit 2 "no column 'reward'" "$B/ibrl-plot" -y reward runA
# Flags are named when refused (getopts said "Illegal option --" and "bad flag"), and one after
# the run directories is refused instead of being read as a directory ("-y/metrics.csv").
expect_exit 2 "unknown option '--bogus'" "$B/ibrl-plot" --bogus runA
expect_exit 2 "option '-y' after the run directories" "$B/ibrl-plot" runA -y critic_loss
# An -o whose folder is missing is refused before gnuplot runs: gnuplot used to fail with
# "cannot open file; output not changed" and then write the PNG to stdout, exit 1.
expect_exit 2 "folder 'nodir' does not exist" "$B/ibrl-plot" -o nodir/x.png runA
[ ! -s "$W/out" ] && pass "ibrl-plot: nothing on stdout for a refused -o" ||
  fail "ibrl-plot wrote $(wc -c <"$W/out") bytes to stdout"
# A column without a value (an ibrl-learner run directory: its eval_success is all nan, the
# evaluations are in the evaluator's --out) is named, not left to gnuplot ("x range is invalid").
mkdir -p runL
printf 'env_steps,wall_s,updates,episodes,eval_success,critic_loss\n%s\n%s\n' 100,1,200,0,nan,0.5 200,2,400,0,nan,0.25 \
  >runL/metrics.csv
expect_exit 2 "no values in column 'eval_success'" "$B/ibrl-plot" -o l.png runL
if command -v gnuplot >/dev/null 2>&1; then
  "$B/ibrl-plot" -o l.png -y critic_loss runL >/dev/null 2>"$W/err" && [ -s l.png ] && pass "ibrl-plot -y critic_loss" ||
    fail "ibrl-plot -y critic_loss: $(cat "$W/err")"
fi

echo "$fails failed"
[ "$fails" -eq 0 ]
