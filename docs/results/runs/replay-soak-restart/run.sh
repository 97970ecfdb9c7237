#!/bin/sh
# The restart soak of docs/results/replay-soak.md (issue #5: "survive restarts without losing
# acknowledged data"; memory "bounded by configuration; flat over a long run"): one ibrl-replay
# shard with the write-ahead log and a checkpoint every 10 s, killed every 60 s (SIGKILL and
# SIGTERM in turn) and started again on the same port and directory, with a shared token and TLS,
# under 4 inserting threads (batches of 32, reopened every 200), 2 sampling threads, Info calls, a
# fresh client every 2 s and a refused bad request every second (one in four with a wrong token),
# for 13 minutes. The online ring (500,000) is larger than the rows the run inserts (600/s x 780 s),
# so nothing is evicted and every acknowledged row can be checked after each restart. Sizes are
# obs 16, action chunk 4 (not the paper's 69/7) so that checkpoints of the never-evicting ring stay
# near 100 MB on the team's shared disk. Rates are capped; it is not a speed benchmark.
# Usage: run.sh [BUILD_DIR [OUT_DIR [FLAG...]]]   (BUILD_DIR default /work/main/build-soak2, built with
# --target ibrl-bench ibrl-replay; OUT_DIR default this folder; FLAGs are added to the soak's, e.g.
# --reconnect-ms 1000 for ../replay-soak-restart-rc1000). PLAIN_RSS=1 plots the plain RSS in the
# zoom (for runs after the store began to touch its per-row arrays at creation: ../replay-soak-restart-fixed).
B=${1:-/work/main/build-soak2}
D=$(cd "${2:-$(dirname "$0")}" && pwd)
[ $# -ge 2 ] && shift 2 || shift $#
{ nice -n 19 "$B/bin/ibrl-bench" soak --seconds 780 --obs-dim 16 --act-dim 4 \
  --online-capacity 500000 --demo-capacity 10000 --durability wal --ckpt-period 10 \
  --writers 4 --samplers 2 --batch 32 --reopen 200 --insert-rate 600 --sample-rate 2000 \
  --churn-every 2 --bad-every 1 --deadline-ms 120000 --progress 30 \
  --restart-every 60 --restart-signal alternate --token soak-restart-token --tls \
  --allowance-mb 64 --slope median --max-slope 1 --max-spread-mb 4 --warmup 0.2 \
  --csv "$D/timeline.csv" --json "$@" 2>&1; echo "ibrl-bench soak exit status $?"; } > "$D/soak.log"
if [ "${PLAIN_RSS:-0}" = 1 ]; then
  ZOOM_TITLE="zoom: VmRSS (left; the store is resident from creation), rows stored (right)"
  ZOOM_Y='$2'
  ZOOM_KEY="VmRSS"
else
  ZOOM_TITLE="zoom: VmRSS less the stored rows' 22 B/row arrays (left), rows stored (right)"
  ZOOM_Y='$2-$8*22/1048576'
  ZOOM_KEY="VmRSS - 22 B x rows"
fi
pred=$(sed -n 's/.* prediction \([0-9.]*\) MB.*/\1/p' "$D/soak.log")
tables=$(sed -n 's/.*; tables \([0-9.]*\) MB by the --help formula.*/\1/p' "$D/soak.log")
gnuplot <<GP
set terminal pngcairo size 1000,800 font ",10"
set output "$D/rss.png"
set datafile separator ","
set multiplot layout 2,1 title "ibrl-replay killed every 60 s (SIGKILL / SIGTERM in turn), WAL + checkpoint every 10 s, token + TLS"
set xlabel "time (min)"
set ylabel "MB"
set grid
set key bottom right
set title "resident memory of each incarnation against the configuration's prediction"
set yrange [0:${pred:-100}*1.15]
plot "$D/timeline.csv" skip 1 using (\$1/60):2 with linespoints pt 7 ps 0.3 title "VmRSS", \
     "" skip 1 using (\$1/60):3 with lines dt 2 title "VmHWM", \
     ${pred:-0} with lines lc rgb "#cc0000" title "prediction: tables + allowance", \
     ${tables:-0} with lines lc rgb "#888888" dt 4 title "tables (--help formula)"
set title "$ZOOM_TITLE"
set autoscale y
set ytics nomirror
set y2tics
set y2label "online rows stored (thousands)"
plot "$D/timeline.csv" skip 1 using (\$1/60):($ZOOM_Y) with points pt 7 ps 0.3 title "$ZOOM_KEY", \
     "" skip 1 using (\$1/60):(\$8/1000) axes x1y2 with lines lc rgb "#bbbbbb" title "online rows (k)"
unset multiplot
GP
tail -n 1 "$D/soak.log" | grep -q "exit status 0"
