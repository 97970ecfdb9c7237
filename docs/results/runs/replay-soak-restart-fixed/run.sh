#!/bin/sh
# The restart soak of ../replay-soak-restart/run.sh again, after the fixes of findings 5 and 6 in
# docs/results/replay-soak.md (the store's per-row arrays resident from creation; a 5 s connect
# timeout): the clients keep their defaults and the zoom plots the plain RSS. Made as
#   run.sh /work/main/build            (22 Nov 2026, 11:30-11:43 UTC)
exec env PLAIN_RSS=1 sh "$(dirname "$0")/../replay-soak-restart/run.sh" "${1:-/work/main/build}" "$(dirname "$0")"
