#!/usr/bin/env bash
# run-learner.sh: launch the ibrl learner group with mpirun on bare nodes (or on one host).
#
#   deploy/mpi/run-learner.sh [options] -- <ibrl-learner flags>
#
# Every node needs the same ibrl-learner path and OpenMPI version and passwordless ssh from this
# node; ranks started over ssh do not inherit this shell's environment, so the script exports
# what they need with -x: PATH, LD_LIBRARY_PATH, OPENBLAS_NUM_THREADS and every IBRL_LEARNER_*
# variable that is set (e.g. IBRL_LEARNER_TOKEN, so the token never appears on a command line).
# Each rank is bound to --threads cores (--map-by slot:PE=T --bind-to core), the compute threads
# of that rank (ibrl-learner --threads); --no-bind leaves placement to the OS (for oversubscribed test hosts).
# mpirun replaces this script (exec), so SIGTERM reaches the ranks: they agree to stop, write a
# final checkpoint and exit 0. Exit codes: mpirun's; 2 for bad usage or a missing program.
set -euo pipefail
prog=run-learner.sh

usage() {
  cat <<USAGE
usage: $prog [options] -- <ibrl-learner flags>
  -n, --np N          number of ranks [2]
  -H, --hostfile F    OpenMPI hostfile ("node slots=N" lines; deploy/mpi/hostfile.example);
                      default: this host only
  -b, --bin DIR       directory holding ibrl-learner [\$IBRL_BIN_DIR, else /opt/ibrl/bin]
  -t, --threads T     compute threads (and bound cores) per rank, 1..8 [1]
  -i, --iface IF      network interface for MPI traffic between nodes (e.g. eth0)
      --no-bind       do not bind ranks to cores
      --dry-run       print the mpirun command and exit 0
  -h, --help          this text
example:
  IBRL_LEARNER_TOKEN=\$(cat token) $prog -H hostfile -n 8 -t 4 -i eth0 -- \\
    --replay replay-0.example:50051,replay-1.example:50051 --il il.ckpt --preset nav2d --out runs/r1
USAGE
}

die() { echo "$prog: $*" >&2; exit 2; }

np=2
hostfile=""
bindir="${IBRL_BIN_DIR:-/opt/ibrl/bin}"
threads=1
iface=""
bind=1
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) [ $# -ge 2 ] || die "$1 needs a value (see --help)"; np=$2; shift 2 ;;
    -H|--hostfile) [ $# -ge 2 ] || die "$1 needs a value (see --help)"; hostfile=$2; shift 2 ;;
    -b|--bin) [ $# -ge 2 ] || die "$1 needs a value (see --help)"; bindir=$2; shift 2 ;;
    -t|--threads) [ $# -ge 2 ] || die "$1 needs a value (see --help)"; threads=$2; shift 2 ;;
    -i|--iface) [ $# -ge 2 ] || die "$1 needs a value (see --help)"; iface=$2; shift 2 ;;
    --no-bind) bind=0; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (HINT: learner flags go after --; see --help)" ;;
  esac
done
[[ "$np" =~ ^[1-9][0-9]*$ ]] || die "--np '$np' is not a positive integer"
[[ "$threads" =~ ^[1-8]$ ]] || die "--threads '$threads' is not in 1..8 (HINT: the nn library runs 1 to 8 compute threads per rank)"
[ $# -gt 0 ] || die "no ibrl-learner flags after -- (HINT: at least --replay HOST:PORT and --out RUN_DIR)"
learner="$bindir/ibrl-learner"
[ -x "$learner" ] || die "no ibrl-learner at '$learner' (HINT: --bin DIR, or build it: cmake --build <build> --target ibrl-learner)"
command -v mpirun >/dev/null 2>&1 || die "mpirun not found (HINT: apt-get install openmpi-bin)"
if [ -n "$hostfile" ] && [ ! -r "$hostfile" ]; then die "hostfile '$hostfile' is not readable (HINT: see deploy/mpi/hostfile.example)"; fi

export OPENBLAS_NUM_THREADS=$threads
cmd=(mpirun -np "$np" --tag-output)
[ -n "$hostfile" ] && cmd+=(--hostfile "$hostfile")
if [ "$bind" = 1 ]; then
  cmd+=(--map-by "slot:PE=$threads" --bind-to core --report-bindings)
else
  cmd+=(--bind-to none)
fi
if [ -n "$iface" ]; then
  cmd+=(--mca btl "self,vader,tcp" --mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface")
fi
cmd+=(-x PATH -x OPENBLAS_NUM_THREADS)
[ -n "${LD_LIBRARY_PATH:-}" ] && cmd+=(-x LD_LIBRARY_PATH)
while IFS= read -r name; do
  cmd+=(-x "$name")
done < <(env | grep -oE '^IBRL_LEARNER_[A-Z0-9_]+' | sort -u)
cmd+=("$learner" --threads "$threads" "$@")

echo "$prog: ${cmd[*]}" >&2
[ "$dry" = 1 ] && exit 0
exec "${cmd[@]}"
