#!/bin/sh
# The sharded restart soak of docs/results/replay-soak.md ("Several shards and a wrapping ring"):
# the 13-minute restart soak of ../replay-soak-restart/run.sh (WAL, a checkpoint every 10 s, a
# restart every 60 s with SIGKILL and SIGTERM in turn, token, TLS, 4 writers capped at 600 rows/s in
# all, 2 samplers, a fresh client every 2 s, a bad request every second), run through that script
# with its flags overridden (the soak takes the last value of a flag), against two shards whose
# online rings of 40,000 rows each wrap about 6 times (300 rows/s a shard x 780 s). Writers go to
# shard actor % 2 and samples span both shards; a restart stops shard 0, then shard 1, ..., so each
# shard is restarted every 120 s (6 times) while the other serves. The loss check then rests on the
# shards' insert counts and the actors' highest seqs (tests/bench/bench_soak.c, top). That script's
# plot shows one shard only, so rss.png is drawn again here with both (timeline.csv: the one-shard
# columns are shard 0's, the columns suffixed _s1 shard 1's).
# Usage: run.sh [BUILD_DIR [OUT_DIR]]   (BUILD_DIR default /work/main/build-soak3, built with
# --target ibrl-bench ibrl-replay; OUT_DIR default this folder); PLOT_ONLY=1 only redraws rss.png
# from OUT_DIR's timeline.csv and soak.log. Made on 22 Nov 2026, 12:27-12:40 UTC, with copies of
# build-soak3's two binaries (so that no rebuild could change the binary a restart execs):
#   cp build-soak3/bin/ibrl-bench build-soak3/bin/ibrl-replay /tmp/soak3/bld/bin/
#   setsid nohup sh run.sh /tmp/soak3/bld
B=${1:-/work/main/build-soak3}
D=$(cd "${2:-$(dirname "$0")}" && pwd)
st=0
if [ "${PLOT_ONLY:-0}" != 1 ]; then
  PLAIN_RSS=1 sh "$(dirname "$0")/../replay-soak-restart/run.sh" "$B" "$D" --shards 2 --online-capacity 40000
  st=$?
fi
pred=$(sed -n 's/.* prediction \([0-9.]*\) MB.*/\1/p' "$D/soak.log")
gnuplot <<GP
set terminal pngcairo size 1000,800 font ",10"
set output "$D/rss.png"
set datafile separator ","
set multiplot layout 2,1 title "2 shards, one restarted every 60 s in turn (SIGKILL/SIGTERM), WAL + ckpt every 10 s, token + TLS, rings of 40,000"
set xlabel "time (min)"
set ylabel "MB"
set grid
set key bottom right
set title "resident memory of each shard against the configuration's prediction (per shard)"
set yrange [0:${pred:-100}*1.15]
plot "$D/timeline.csv" skip 1 using (\$1/60):2 with linespoints pt 7 ps 0.3 title "shard 0 VmRSS", \
     "" skip 1 using (\$1/60):16 with linespoints pt 7 ps 0.3 title "shard 1 VmRSS", \
     ${pred:-0} with lines lc rgb "#cc0000" title "prediction: tables + allowance"
set title "zoom: VmRSS of each shard (left; the store is resident from creation), times each ring wrapped (right)"
set autoscale y
set ytics nomirror
set y2tics
set y2label "online rows inserted / capacity"
plot "$D/timeline.csv" skip 1 using (\$1/60):2 with points pt 7 ps 0.3 title "shard 0 VmRSS", \
     "" skip 1 using (\$1/60):16 with points pt 6 ps 0.3 title "shard 1 VmRSS", \
     "" skip 1 using (\$1/60):(\$9/40000) axes x1y2 with lines lc rgb "#bbbbbb" title "shard 0 wraps", \
     "" skip 1 using (\$1/60):(\$21/40000) axes x1y2 with lines lc rgb "#888888" dt 2 title "shard 1 wraps"
unset multiplot
GP
exit $st
