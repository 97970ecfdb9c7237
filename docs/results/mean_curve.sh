#!/bin/sh
# mean_curve.sh: mean eval success over seeds, with +-1 standard error bars, one line per method.
#   sh mean_curve.sh OUT.png TITLE RUN_DIR_PREFIX...   e.g. ... runs/nav2d/ibrl runs/nav2d/rlpd runs/nav2d/bc
# Every PREFIX-sK/metrics.csv is one seed; rows are matched by env_steps (runs of one preset
# evaluate at the same steps). A step is plotted only where every seed of the method has a row,
# so a method's line ends at its shortest run. A bc run's policy never changes (rows at 0 and at
# its budget only), so bc is drawn as a flat line at its mean over seeds across the whole x range.
# The per-seed curves are in ibrl-plot's figure; this one is for reading the trend.
set -eu
[ $# -ge 3 ] || { echo "usage: sh mean_curve.sh OUT.png TITLE RUN_DIR_PREFIX..." >&2; exit 2; }
out=$1 title=$2
shift 2
command -v gnuplot >/dev/null 2>&1 || { echo "mean_curve.sh: gnuplot not found (HINT: apt-get install gnuplot-nox)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plot="" i=0
for p in "$@"; do
  i=$((i + 1))
  name=$(basename "$p")
  set -- "$p"-s*/metrics.csv
  [ -f "$1" ] || { echo "mean_curve.sh: no $p-s*/metrics.csv (HINT: pass run directory prefixes)" >&2; exit 2; }
  n=$#
  case $name in
    bc)
      awk -F, 'FNR > 1 {last[FILENAME] = $5} END {for (f in last) {s += last[f]; k++}; printf "%.4f %d\n", s / k, k}' "$@" >"$tmp/$i.flat"
      read -r v k <"$tmp/$i.flat"
      [ -n "$plot" ] && plot="$plot, "
      plot="$plot$v with lines dt 2 lw 2 title \"$name (mean of $k seeds)\""
      ;;
    *)
      awk -F, -v n="$n" 'FNR > 1 {c[$1]++; s[$1] += $5; q[$1] += $5 * $5}
        END {for (x in c) if (c[x] == n) {m = s[x] / n; v = n > 1 ? (q[x] - s[x] * s[x] / n) / (n - 1) : 0; if (v < 0) v = 0
             printf "%d %.4f %.4f\n", x, m, sqrt(v / n)}}' "$@" | sort -n >"$tmp/$i.dat"
      [ -n "$plot" ] && plot="$plot, "
      plot="$plot\"$tmp/$i.dat\" using 1:2:3 with yerrorlines lw 2 title \"$name (mean +- s.e., $n seeds)\""
      ;;
  esac
done
gnuplot <<GP || { echo "mean_curve.sh: gnuplot failed" >&2; exit 1; }
set terminal pngcairo size 1000,600 noenhanced
set output "$out"
set key top left
set grid
set xlabel "env steps"
set ylabel "eval success"
set yrange [0:1]
set title "$title"
plot $plot
GP
echo "mean_curve.sh: wrote $out"
