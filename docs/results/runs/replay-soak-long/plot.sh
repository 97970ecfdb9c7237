#!/bin/sh
# Plots a two-shard soak's timeline (timeline.csv of `ibrl-bench soak --shards 2 --csv`): each
# shard's resident memory over the run (restarts show as drops), and the inserted rows/s.
# Usage: plot.sh DIR   (DIR holds timeline.csv and soak.log; writes DIR/rss.png)
#        TITLE='...' plot.sh DIR   sets the plot's title (default: the 24-hour recipe's)
set -eu
D=${1:?usage: plot.sh DIR}
DEFAULT_TITLE="ibrl-replay, 2 shards (obs 69, act 7, online 50k, demo 10k each, WAL + checkpoint every 10 s, \
shards restarted in turn)"
TITLE=${TITLE:-$DEFAULT_TITLE}
[ -f "$D/timeline.csv" ] || { echo "plot.sh: no $D/timeline.csv" >&2; exit 2; }
# The rates per second jump with each 256-row batch: plot them as means over each minute.
R=$(mktemp)
trap 'rm -f "$R"' EXIT
awk -F, 'NR > 1 { m = int($1 / 60); ins[m] += $6; smp[m] += $7; n[m]++; if (m > last) last = m }
         END { for (m = 0; m <= last; m++) if (n[m]) printf "%d,%.1f,%.1f\n", m, ins[m] / n[m], smp[m] / n[m] }' \
  "$D/timeline.csv" >"$R"
gnuplot <<GP
set terminal pngcairo size 1000,800 font ",10"
set output "$D/rss.png"
set datafile separator ","
set multiplot layout 2,1 title "$TITLE"
set xlabel "time (min)"
set grid
set key bottom right
set title "resident memory of each shard (a restart starts a fresh process)"
set ylabel "MB"
set yrange [0:*]
plot "$D/timeline.csv" skip 1 using (\$1/60):2 with lines lw 2 title "shard 0 VmRSS", \
     "" skip 1 using (\$1/60):16 with lines lw 2 title "shard 1 VmRSS"
set title "rows inserted and sampled per second (both shards; mean of each minute)"
set ylabel "rows/s (thousands)"
plot "$R" using 1:(\$2/1000) with lines lw 2 title "inserted", \
     "" using 1:(\$3/1000) with lines lw 2 title "sampled"
unset multiplot
GP
echo "wrote $D/rss.png"
