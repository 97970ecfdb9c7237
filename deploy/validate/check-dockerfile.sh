#!/usr/bin/env bash
# check-dockerfile.sh DOCKERFILE TOOLS_DIR [SOURCE_DIR [BIN_DIR]]: static checks of the image
# recipe, offline (no Docker engine needed). TOOLS_DIR is where setup.sh installed the npm linters.
#  1. dockerfile-utils lint and dockerfilelint (syntax, instructions, apt hygiene, ports);
#  2. what neither linter catches (shared/docs/deploy.md section 6): the final USER is not root,
#     ENTRYPOINT/CMD are exec form, ENTRYPOINT runs tini, every COPY --from names an earlier
#     stage, every FROM is a tagged debian:bookworm image;
#  3. the image holds every binary: each ibrl-* program that SOURCE_DIR's CMake files define
#     (outside tests/, plus ibrl-bench) is a build target and is copied to /opt/ibrl/bin;
#  4. every package an apt-get install line names resolves on this Debian (apt-get -s);
#  5. with BIN_DIR (binaries built on this Debian): every shared library an ibrl binary needs
#     comes from a package the runtime stage installs (or from the base image's libc6).
# Prints "FAIL <check>: <why>" per problem and "N passed, N failed"; exit 1 on any failure.
set -uo pipefail
if [ $# -lt 2 ] || [ "$1" = "--help" ]; then
  echo "usage: $0 DOCKERFILE TOOLS_DIR [SOURCE_DIR [BIN_DIR]]" >&2
  [ "${1:-}" = "--help" ] && exit 0
  exit 2
fi
df=$1
tools=$2
src=${3:-$(cd "$(dirname "$0")/../.." && pwd)}
bindir=${4:-}
[ -f "$df" ] || { echo "check-dockerfile: no file '$df' HINT: deploy/docker/Dockerfile" >&2; exit 2; }
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# Logical lines: continuations joined, comments dropped.
logical=$(sed -e '/^[[:space:]]*#/d' "$df" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')

# 1. linters
bin="$tools/node_modules/.bin"
if [ ! -x "$bin/dockerfile-utils" ] || [ ! -x "$bin/dockerfilelint" ]; then
  echo "check-dockerfile: linters missing in $tools HINT: deploy/validate/setup.sh $tools" >&2
  exit 2
fi
# Findings are flattened to one line each, so every FAIL line names its check.
flat() { printf '%s' "$1" | grep -v '^[[:space:]]*$' | head -20 | tr '\n' ' '; }
if out=$("$bin/dockerfile-utils" lint "$df" 2>&1); then
  if [ -n "$(printf '%s' "$out" | tr -d '[:space:]')" ]; then bad "dockerfile-utils lint: $(flat "$out")"; else ok "dockerfile-utils lint"; fi
else
  bad "dockerfile-utils lint: $(flat "$out")"
fi
if out=$("$bin/dockerfilelint" "$df" 2>&1); then ok "dockerfilelint"; else bad "dockerfilelint: $(flat "$out")"; fi

# 2. what the linters miss
last_user=$(printf '%s\n' "$logical" | awk 'toupper($1)=="USER"{u=$2} END{print u}')
case "$last_user" in
  "" ) bad "final USER: none (the image would run as root) HINT: USER 10001:10001" ;;
  root|root:*|0|0:*) bad "final USER is root ($last_user)" ;;
  *) ok "final USER $last_user" ;;
esac
for ins in ENTRYPOINT CMD; do
  line=$(printf '%s\n' "$logical" | awk -v i="$ins" 'toupper($1)==i{l=$0} END{print l}')
  if [ -z "$line" ]; then bad "$ins missing"
  elif grep -Eq "^${ins}[[:space:]]+\[.*\][[:space:]]*$" <<<"$line"; then ok "$ins exec form"
  else bad "$ins is shell form: $line HINT: $ins [\"prog\", \"arg\"]"; fi
done
if grep -Eq '^ENTRYPOINT[[:space:]]+\[[[:space:]]*"(/usr/bin/)?tini"' <<<"$logical"; then ok "ENTRYPOINT runs tini"
else bad "ENTRYPOINT does not run tini HINT: ENTRYPOINT [\"/usr/bin/tini\", \"--\"]"; fi
stages=" "
while read -r kw rest; do
  case "${kw^^}" in
    FROM)
      image=$(printf '%s' "$rest" | awk '{print $1}')
      if grep -Eq '^debian:bookworm(-slim)?$' <<<"$image"; then ok "FROM $image"
      else bad "FROM $image is not debian:bookworm(-slim)"; fi
      name=$(printf '%s' "$rest" | awk 'toupper($2)=="AS"{print $3}')
      [ -n "$name" ] && stages="$stages$name "
      ;;
    COPY)
      from=$(printf '%s' "$rest" | grep -o -- '--from=[^[:space:]]*' | cut -d= -f2)
      if [ -n "$from" ]; then
        if [[ "$stages" == *" $from "* ]]; then ok "COPY --from=$from names a stage"
        else bad "COPY --from=$from names no earlier stage (stages:$stages)"; fi
      fi
      ;;
  esac
done <<<"$logical"

# 3. every binary is built and copied
progs=$(cd "$src" && grep -rhoE --include=CMakeLists.txt 'add_(executable|custom_target)\((ibrl-[a-z-]+)' \
          --exclude-dir=tests --exclude-dir='build*' . | sed -E 's/.*\(//' | sort -u)
progs="$progs ibrl-bench"
for p in $progs; do
  run_lines=$(printf '%s\n' "$logical" | grep -E '^RUN ')
  if grep -Eq -- "--target[^&]*[[:space:]]$p([[:space:]]|$)" <<<"$run_lines" &&
     grep -Eq "/build/bin/$p([[:space:]]|$)" <<<"$run_lines"; then ok "image builds and copies $p"
  else bad "$p (a program of the CMake tree) is not built with --target and copied from /build/bin"; fi
done

# 4. every apt package exists here (this machine is Debian bookworm, like the image)
if command -v apt-get >/dev/null 2>&1; then
  n=0
  while IFS= read -r pkgs; do
    n=$((n + 1))
    # apt names what it cannot find ("Unable to locate package X"); any other failure may be
    # transient (another process updating the lists), so it is retried before it counts.
    for attempt in 1 2 3; do
      # shellcheck disable=SC2086
      out=$(apt-get install -s --no-install-recommends $pkgs 2>&1); apt_rc=$?
      [ $apt_rc -eq 0 ] && break
      grep -q "Unable to locate package" <<<"$out" && break
      sleep 5
    done
    unknown=$(printf '%s\n' "$out" | sed -n 's/^E: Unable to locate package //p' | tr '\n' ' ')
    if [ -n "$unknown" ]; then bad "apt packages unknown to this Debian: ${unknown% }"
    elif [ $apt_rc -ne 0 ]; then bad "apt-get -s install failed for stage $n (after $attempt tries): $(printf '%s' "$out" | grep '^E: ' | head -3 | tr '\n' ' ')"
    else ok "apt-get -s resolves stage $n packages: $pkgs"; fi
  done < <(printf '%s\n' "$logical" | grep -E '^RUN ' | grep -oE 'apt-get install[^&;|]*' |
           sed -E 's/apt-get install//; s/(^|[[:space:]])-[^[:space:]]*//g; s/^[[:space:]]+//; s/[[:space:]]+$//; s/[[:space:]]+/ /g')
  [ "$n" -gt 0 ] || bad "no apt-get install line found"
else
  echo "note: apt-get not available: package existence not checked"
fi

# 5. the runtime stage has every shared library the binaries link
if [ -n "$bindir" ]; then
  runtime_pkgs=$(printf '%s\n' "$logical" | grep -E '^RUN ' | grep -oE 'apt-get install[^&;|]*' | tail -1 |
                 sed -E 's/apt-get install//; s/(^|[[:space:]])-[^[:space:]]*//g')
  base_pkgs="libc6 libgcc-s1 libstdc++6 zlib1g"   # in every debian:bookworm-slim
  for b in "$bindir"/ibrl-*; do
    [ -f "$b" ] && head -c 4 "$b" | grep -q 'ELF' || continue
    for lib in $(readelf -d "$b" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
      pkg=""
      if [ -n "$path" ]; then
        real=$(readlink -f "$path")
        # dpkg knows the path it installed; with merged /usr that may be /lib/... or /usr/lib/...
        for q in "$real" "$path" "${real#/usr}" "/usr${real}"; do
          pkg=$(dpkg -S "$q" 2>/dev/null | head -1 | cut -d: -f1)
          [ -n "$pkg" ] && break
        done
      fi
      if [ -z "$pkg" ]; then bad "$(basename "$b") needs $lib, which no Debian package on this host provides"
      elif [[ " $runtime_pkgs $base_pkgs " == *" $pkg "* ]]; then ok "$(basename "$b"): $lib from $pkg"
      else bad "$(basename "$b") needs $lib from $pkg, which the runtime stage does not install"; fi
    done
  done
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
