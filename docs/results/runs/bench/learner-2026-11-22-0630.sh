#!/bin/sh
# alternating rounds: auto (= bf16x3 here) and fp32, each under quiet.sh
cd /work/evid5/speed
for r in 1 2 3 4 5; do
  for m in auto fp32; do
    [ $m = fp32 ] && [ $r -gt 3 ] && continue
    echo "== round $r matmul $m $(date -u +%H:%M:%S)" >> log.txt
    /tmp/quiet.sh /work/evid5/bin2/ibrl-bench learner --preset paper-state --steps 8 --threads 1,2 --matmul $m >> log.txt 2>&1
  done
done
echo DONE >> log.txt
