#!/bin/sh
# The replay soak of docs/results/replay-soak.md (issue #5): one ibrl-replay shard at the paper's
# state sizes (obs 69, action chunk 7), a 50,000-row online ring (so it wraps many times), a 10,000-row
# demo table, the write-ahead log and a checkpoint every 10 s, under 4 inserting threads (batches of
# 256, writers reopened every 200 batches), 2 sampling threads (rc_sample / rc_sampler, half demo),
# Info calls, a fresh client every 2 s and a refused bad request every second, for 25 minutes.
# Rates are capped (20k inserted and 40k sampled rows/s) so the run leaves the shared machine's cores and disk
# to the team; it is not a speed benchmark. The deadline is 120 s so a stalled checkpoint (see the
# doc) is recorded as a stall rather than a failed call.
# Usage: run.sh [BUILD_DIR]   (default /work/main/build-soak, built with --target ibrl-bench ibrl-replay)
# A longer run reuses this recipe through the environment (defaults = this run): SOAK_SECONDS, SOAK_OUT
# (the folder for soak.log, timeline.csv and rss.png), SOAK_EXTRA (more flags), SOAK_TITLE (the plot's title).
B=${1:-/work/main/build-soak}
D=${SOAK_OUT:-$(cd "$(dirname "$0")" && pwd)}
{ nice -n 19 "$B/bin/ibrl-bench" soak --seconds ${SOAK_SECONDS:-1500} ${SOAK_EXTRA:-} --obs-dim 69 --act-dim 7 \
  --online-capacity 50000 --demo-capacity 10000 --durability wal --ckpt-period 10 \
  --writers 4 --samplers 2 --batch 256 --reopen 200 --insert-rate 20000 --sample-rate 40000 \
  --churn-every 2 --bad-every 1 --deadline-ms 120000 --progress 30 \
  --allowance-mb 64 --max-slope 1 --max-spread 5 --warmup 0.2 \
  --csv "$D/timeline.csv" --json 2>&1; echo "ibrl-bench soak exit status $?"; } | tee "$D/soak.log"
warm=$(sed -n 's/^soak: warm-up ends at \([0-9.]*\) s.*/\1/p' "$D/soak.log")
pred=$(sed -n 's/.* prediction \([0-9.]*\) MB.*/\1/p' "$D/soak.log")
tables=$(sed -n 's/.*; tables \([0-9.]*\) MB by the --help formula.*/\1/p' "$D/soak.log")
gnuplot <<GP
set terminal pngcairo size 1000,800 font ",10"
set output "$D/rss.png"
set datafile separator ","
set multiplot layout 2,1 title "${SOAK_TITLE:-ibrl-replay under the soak (obs 69, act 7, online 50k, demo 10k, WAL + checkpoint every 10 s, 4 writers, 2 samplers)}"
set xlabel "time (min)"
set ylabel "MB"
set grid
set key bottom right
set arrow 1 from ${warm:-0}/60.0, graph 0 to ${warm:-0}/60.0, graph 1 nohead dt 3 lc rgb "#cc0000"
set title "resident memory against the configuration's prediction"
set yrange [0:${pred:-100}*1.15]
plot "$D/timeline.csv" skip 1 using (\$1/60):2 with lines lw 2 title "VmRSS", \
     "" skip 1 using (\$1/60):3 with lines dt 2 title "VmHWM", \
     ${pred:-0} with lines lc rgb "#cc0000" title "prediction: tables + allowance", \
     ${tables:-0} with lines lc rgb "#888888" dt 4 title "tables (--help formula)"
set title "zoom: VmRSS (left) and inserted rows/s (right); dotted red line = end of warm-up"
set autoscale y
set ytics nomirror
set y2tics
set y2label "rows/s (thousands)"
plot "$D/timeline.csv" skip 1 using (\$1/60):2 with lines lw 2 title "VmRSS", \
     "" skip 1 using (\$1/60):(\$6/1000) axes x1y2 with lines lc rgb "#bbbbbb" title "inserts/s (k)"
unset multiplot
GP
tail -n 1 "$D/soak.log" | grep -q "exit status 0"
