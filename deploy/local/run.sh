#!/usr/bin/env bash
# The ibrl main job on one host: demos -> IL policy -> replay shards + actors + MPI learner group.
# Installs what is missing and builds first.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/local/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
echo "ibrl main job: not yet available (it lands with the distributed-system issue)." >&2
echo "The test suite runs with: bash deploy/local/test.sh" >&2
exit 3
