#!/usr/bin/env bash
# render.sh [--check]: renders every overlay of deploy/k8s/overlays with `kubectl kustomize`
# into deploy/k8s/rendered/<overlay>.yaml (committed, so validation works without kubectl).
# --check writes nothing and fails if a committed render differs from a fresh one (an overlay
# edited without re-rendering). Exit codes: 0 ok, 1 stale render or kustomize error, 2 usage,
# 77 kubectl not installed (nothing rendered; the committed renders stay as they are).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
  *) echo "render.sh: unknown flag '$1' (HINT: render.sh [--check])" >&2; exit 2 ;;
esac
if ! command -v kubectl >/dev/null 2>&1; then
  echo "render.sh: kubectl not found: render skipped (HINT: kubectl >= 1.27 with kustomize v5; the committed deploy/k8s/rendered/*.yaml are still validated)"
  exit 77
fi
out="$root/deploy/k8s/rendered"
mkdir -p "$out"
rc=0
for dir in "$root"/deploy/k8s/overlays/*/; do
  o=$(basename "$dir")
  tmp=$(mktemp)
  if ! kubectl kustomize "$dir" >"$tmp" 2>"$tmp.err"; then
    echo "FAIL render $o: $(cat "$tmp.err")"
    rc=1
  elif [ "$check" = 1 ]; then
    if diff -u "$out/$o.yaml" "$tmp" >"$tmp.diff" 2>&1; then echo "ok   $o: committed render is current ($(grep -c '^kind:' "$tmp") objects)"
    else
      echo "FAIL $o: deploy/k8s/rendered/$o.yaml differs from a fresh render (HINT: deploy/validate/render.sh):"
      head -30 "$tmp.diff"
      rc=1
    fi
  else
    cp "$tmp" "$out/$o.yaml"
    echo "rendered $o: $(grep -c '^kind:' "$tmp") objects -> deploy/k8s/rendered/$o.yaml"
  fi
  rm -f "$tmp" "$tmp.err" "$tmp.diff"
done
exit $rc
