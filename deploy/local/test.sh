#!/usr/bin/env bash
# The ibrl test command (README, .ci/run): installs what is missing, builds with -Werror, runs
# every CTest suite, then the unit and nn suites again under AddressSanitizer + UBSan.
#   IB_TEST_LABELS=regex  run only the suites whose label matches (e.g. "unit|nn")
#   IB_SKIP_ASAN=1        skip the sanitizer pass (quicker local runs)
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=$(nproc 2>/dev/null || echo 2)

deploy/local/deps.sh --with-dev

echo "== build (RelWithDebInfo, -Werror) =="
cmake -S . -B build -DIB_WERROR=ON >/dev/null
cmake --build build -j"$jobs"

echo "== tests =="
label_args=()
if [ -n "${IB_TEST_LABELS:-}" ]; then label_args=(-L "$IB_TEST_LABELS"); fi
ctest --test-dir build --output-on-failure -j2 "${label_args[@]}"

if [ -z "${IB_SKIP_ASAN:-}" ]; then
  echo "== unit + nn tests under AddressSanitizer + UBSan =="
  cmake -S . -B build-asan -DIB_WERROR=ON -DIB_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j2 -L 'unit|nn'
fi
