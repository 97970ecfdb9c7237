#!/bin/sh
# The two-hour replay soak of docs/results/replay-soak.md: the 25-minute recipe of ../replay-soak/run.sh
# (same shard, rings, rates, checkpoints, bad requests and bounds) run for 7,200 s, with a shared token
# (every client sends it; one bad request in four is an Insert with a wrong token, which must be refused
# UNAUTHENTICATED).
# Usage: run.sh [BUILD_DIR]   (default /work/main/build-soak, built with --target ibrl-bench ibrl-replay)
D=$(cd "$(dirname "$0")" && pwd)
SOAK_SECONDS=7200 SOAK_OUT="$D" SOAK_EXTRA="--token soak-2h-token" \
SOAK_TITLE="ibrl-replay under a 2 h soak (obs 69, act 7, online 50k, demo 10k, WAL + checkpoint every 10 s, token, 4 writers, 2 samplers)" \
  exec sh "$D/../replay-soak/run.sh" "$@"
