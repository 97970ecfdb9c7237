#!/bin/bash
# summary.sh OUT: per version (old, new), the per-round figures of run.sh's files and their medians:
# the in-process gather (us per 256-row batch, the median of each file's three repetitions, demo
# fraction 0) and, for sampling, ibrl's ratios to raw and to proto, its rows/s and the shard's CPU
# per row.
OUT=$1
med() { sort -g | awk '{a[NR]=$1} END{if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
for v in old new; do
  for g in 300k 1.8m; do
    ls "$OUT"/gather-$g-$v-*.txt >/dev/null 2>&1 || continue
    vals=$(for f in "$OUT"/gather-$g-$v-*.txt; do
      grep '^gather.*demo_fraction 0.00' "$f" | grep -o 'median [0-9.]*' | awk '{print $2}' | med
    done)
    echo "$v gather $g: $(echo $vals) -> median $(echo "$vals" | med) us"
  done
  for s in sample sample1; do
    ls "$OUT"/$s-$v-*.txt >/dev/null 2>&1 || continue
    for t in 1 4; do
      rows=$(for f in "$OUT"/$s-$v-*.txt; do awk -v t=$t '$1=="sample" && $2==t && $3+0>1000 {print $3; exit}' "$f"; done)
      ratio=$(for f in "$OUT"/$s-$v-*.txt; do awk -v t=$t '$1=="sample" && $2==t && $3+0>1000 {sub("%","",$9); print $9; exit}' "$f"; done)
      prat=$(for f in "$OUT"/$s-$v-*.txt; do awk -v t=$t '$1=="sample" && $2==t && $3+0>1000 {sub("%","",$13); print $13; exit}' "$f"; done)
      cpu=$(for f in "$OUT"/$s-$v-*.txt; do awk -v t=$t '$1=="sample" && $2==t && $3+0<1000 {print $5; exit}' "$f"; done)
      echo "$v $s ${t}c: full/raw % $(echo $ratio) -> median $(echo "$ratio" | med); full/proto % $(echo $prat) -> median $(echo "$prat" | med); rows/s median $(echo "$rows" | med); shard us/row $(echo $cpu) -> median $(echo "$cpu" | med)"
    done
  done
done
