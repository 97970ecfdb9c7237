#!/usr/bin/env bash
# setup.sh TOOLS_DIR: installs the offline validators (package.json, pinned by package-lock.json)
# into TOOLS_DIR (normally <build>/deploy-tools) and copies the validation scripts next to
# node_modules, so the source tree stays clean. Idempotent and cached: npm runs only when the
# lock file changed since the last install (stamp in node_modules). Concurrent callers (ctest -j)
# serialise on a lock file. Fails with a clear message if node/npm are missing or the npm
# registry cannot be reached. Exit codes: 0 ready, 1 install failed, 2 bad usage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  echo "usage: $0 TOOLS_DIR   (installs the pinned npm validators into TOOLS_DIR)" >&2
  [ $# -eq 1 ] && exit 0
  exit 2
fi
dir=$1
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup: '$tool' not found HINT: install Debian's nodejs and npm (deploy/local/deps.sh --with-dev does)" >&2
    exit 1
  fi
done
mkdir -p "$dir"
exec 9>"$dir/.setup.lock"
flock -w 600 9 || { echo "setup: timed out waiting for $dir/.setup.lock" >&2; exit 1; }

cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$dir/"
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
stamp="$dir/node_modules/.ibrl-lock-sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: npm ci into $dir (pinned: $(node -e 'const p=require(process.argv[1]);console.log(Object.entries(p.devDependencies).map(([k,v])=>k+"@"+v).join(" "))' "$here/package.json"))"
log="$dir/npm-ci.log"
if ! timeout 600 npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  registry=$(npm config get registry 2>/dev/null || echo "?")
  if ! timeout 30 npm ping >/dev/null 2>&1; then
    echo "setup: FAILED: the npm registry ($registry) is unreachable, so the offline validators cannot be installed." >&2
    echo "setup: HINT: run once with network access (the install is cached in $dir), or set npm's registry to a mirror." >&2
  else
    echo "setup: FAILED: npm ci failed (log: $log):" >&2
    tail -20 "$log" >&2
  fi
  exit 1
fi
echo "$want" >"$stamp"
echo "setup: validators ready in $dir"
