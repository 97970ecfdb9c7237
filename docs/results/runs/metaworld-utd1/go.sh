#!/bin/sh
cd /work/evid5/mwfinal
while [ ! -f /work/evid5/mw/pilot/DONE ]; do sleep 15; done
X=$(python3 decide.py 2>decision.txt)
echo "EXTRA=$X" >> decision.txt
BUILD=/work/evid5 OUT=/work/evid5/mwfinal SEEDS="1 2 3 4 5" JOBS=2 EXTRA="$X" sh /work/main/docs/results/run_metaworld.sh > run.log 2>&1
echo done > ALLDONE
