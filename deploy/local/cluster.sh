# shellcheck shell=bash disable=SC2034
# cluster.sh: shell functions that start and stop the ibrl processes on one host (sourced by
# deploy/local/run.sh and the e2e tests; not run directly).
#
# Every process started here is recorded in IBC_PIDS ("name:pid" words) and its output goes to
# $IBC_LOGS/<name>.log. ibc_stop_all sends SIGTERM to each (newest first), waits up to
# IBC_STOP_WAIT seconds for all of them, then SIGKILLs what is left; it is safe to call twice
# (run.sh calls it from its EXIT/INT/TERM trap). Nothing is stopped by name: only these pids.
#
# Needs: IBC_BIN (the build's bin directory), IBC_LOGS (a writable directory).
# Settings: IBC_STOP_WAIT (default 20 s), IBC_PORT_WAIT (default 60 s).

IBC_PIDS=""
IBC_STOP_WAIT=${IBC_STOP_WAIT:-20}
IBC_PORT_WAIT=${IBC_PORT_WAIT:-60}

# The single-host MPI settings of shared/docs/deploy.md 7.3: root allowed, more ranks than cores,
# no ssh (isolated launcher), shared memory only. Harmless for a normal user.
ibc_mpi_env() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_plm=isolated
  export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
  # More processes than cores: a rank waiting in a collective yields its core instead of
  # spinning on it (the other rank, the actors and the shards need it).
  export OMPI_MCA_mpi_yield_when_idle=1
  export OPENBLAS_NUM_THREADS=1
}

ibc_die() {
  echo "cluster: $*" >&2
  return 1
}

# ibc_start NAME CMD...: starts CMD in the background, output to $IBC_LOGS/NAME.log.
ibc_start() {
  local name=$1
  shift
  "$@" >"$IBC_LOGS/$name.log" 2>&1 </dev/null &
  IBC_PIDS="$IBC_PIDS $name:$!"
}

# ibc_pid NAME: the pid of a started process.
ibc_pid() {
  local w
  for w in $IBC_PIDS; do
    if [ "${w%%:*}" = "$1" ]; then echo "${w##*:}"; fi
  done | tail -n 1
}

ibc_alive() {
  local p
  p=$(ibc_pid "$1")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null
}

# ibc_replay NAME SHARD_INDEX ARGS...: starts a shard on a free loopback port (or on IBC_PORT)
# and sets IBC_ADDR to its "host:port" once it listens (ARGS: --obs-dim, --act-dim, limiter,
# checkpoint flags). Not for $(...): the pid must be recorded in this shell.
ibc_replay() {
  local name=$1 idx=$2
  shift 2
  ibc_start "$name" "$IBC_BIN/ibrl-replay" --port "${IBC_PORT:-0}" --shard-index "$idx" "$@"
  ibc_wait_listen "$name"
}

# ibc_wait_listen NAME: waits for the "listening on HOST:PORT" line and sets IBC_ADDR to it.
ibc_wait_listen() {
  local name=$1 t=0 addr=""
  IBC_ADDR=""
  while [ "$t" -lt $((IBC_PORT_WAIT * 10)) ]; do
    addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$IBC_LOGS/$name.log" 2>/dev/null | tail -n 1 | awk '{print $3}' || true)
    if [ -n "$addr" ]; then
      IBC_ADDR=$addr
      return 0
    fi
    if ! ibc_alive "$name"; then
      tail -n 5 "$IBC_LOGS/$name.log" >&2
      ibc_die "$name exited before listening (log: $IBC_LOGS/$name.log)"
      return 1
    fi
    sleep 0.1
    t=$((t + 1))
  done
  ibc_die "$name did not listen within ${IBC_PORT_WAIT} s (log: $IBC_LOGS/$name.log)"
}

# ibc_stop NAME [SIGNAL]: signals one process and waits for it (bounded).
ibc_stop() {
  local p t=0
  p=$(ibc_pid "$1")
  [ -n "$p" ] || return 0
  kill -"${2:-TERM}" "$p" 2>/dev/null || return 0
  while kill -0 "$p" 2>/dev/null && [ "$t" -lt $((IBC_STOP_WAIT * 10)) ]; do
    sleep 0.1
    t=$((t + 1))
  done
  if kill -0 "$p" 2>/dev/null; then
    echo "cluster: $1 (pid $p) ignored SIGTERM for ${IBC_STOP_WAIT} s; killing it" >&2
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}

# ibc_stop_all: SIGTERM to every started process (newest first), bounded wait, then SIGKILL.
ibc_stop_all() {
  local w p rev="" t=0 left
  for w in $IBC_PIDS; do rev="$w $rev"; done
  for w in $rev; do
    p=${w##*:}
    kill -TERM "$p" 2>/dev/null || true
  done
  while [ "$t" -lt $((IBC_STOP_WAIT * 10)) ]; do
    left=0
    for w in $rev; do
      if kill -0 "${w##*:}" 2>/dev/null; then left=1; fi
    done
    [ "$left" -eq 0 ] && break
    sleep 0.1
    t=$((t + 1))
  done
  for w in $rev; do
    p=${w##*:}
    if kill -0 "$p" 2>/dev/null; then
      echo "cluster: ${w%%:*} (pid $p) still running after ${IBC_STOP_WAIT} s; killing it" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  IBC_PIDS=""
}

# ibc_json_num FILE KEY: the first numeric value of "KEY": in a one-line JSON file (no jq needed).
ibc_json_num() {
  sed -n "s/.*\"$2\": *\(-\{0,1\}[0-9.eE+-]*\).*/\1/p" "$1" 2>/dev/null | head -n 1 || true
}
