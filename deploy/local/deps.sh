#!/usr/bin/env bash
# Installs the Debian packages ibrl needs, only those missing (no apt-get when all are present).
#   usage: deploy/local/deps.sh [--with-dev] [--with-torch] [-h|--help]
#   (no flag)     build + run: compiler, cmake, OpenBLAS, Open MPI, gRPC, nanopb, MuJoCo, HDF5, gnuplot
#   --with-dev    adds the test suite's python3 grpcio, grpc-tools, numpy, h5py, yaml (+ nodejs/npm if no npm)
#   --with-torch  adds python3-torch (reference vectors, PyTorch speed peer; no test needs it)
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config
  libopenblas-dev
  libopenmpi-dev openmpi-bin
  libgrpc-dev
  nanopb libnanopb-dev protobuf-compiler python3-protobuf
  libmujoco-dev
  libhdf5-dev
  gnuplot-nox)
DEV_PKGS=(python3-grpcio python3-grpc-tools python3-numpy python3-h5py python3-yaml)
# node + npm run the offline deploy validators (tests/deploy, deploy/validate). Asked for only
# when npm is missing: a nodejs from elsewhere (NodeSource) bundles npm and conflicts with Debian's.
NODE_PKGS=(nodejs npm)
# torch is only for regenerating reference vectors and the PyTorch speed peer; tests never need it.
TORCH_PKGS=(python3-torch)

want=("${BUILD_PKGS[@]}")
for a in "$@"; do
  case "$a" in
    --with-dev) want+=("${DEV_PKGS[@]}"); command -v npm >/dev/null 2>&1 || want+=("${NODE_PKGS[@]}") ;;
    --with-torch) want+=("${TORCH_PKGS[@]}") ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "deps.sh: unknown flag '$a' (HINT: --with-dev, --with-torch)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
