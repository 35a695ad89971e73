#!/usr/bin/env bash
# Install the Debian packages Flywheel needs (idempotent), then configure and build.
#   tools/setup.sh            install + configure + build (preset: default)
#   tools/setup.sh --deps     install only
#   FLYWHEEL_PRESET=debug tools/setup.sh
# Runs as root (apt-get) or with sudo available. Nothing is downloaded except Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev libpmix-dev        # MPI runtime + PMIx discovery
  libhdf5-openmpi-dev hdf5-tools                # parallel HDF5 (openmpi build) + h5dump
  libopenblas-dev libopenblas-openmp-dev        # sgemm (OpenMP build: shares the thread pool with our loops)
  libzstd-dev libxxhash-dev nlohmann-json3-dev  # compression, hashing, JSON
  libboost-program-options-dev libcxxopts-dev   # shape files / CLI
  libgtest-dev googletest                       # tests
  python3-torch python3-numpy python3-h5py      # reference implementation for parity tests
  python3-matplotlib                            # tools/plot_metrics.py (PNG of a run's metrics)
  slurm-wlm munge                               # the local Slurm cluster of tools/slurm-local.sh and its tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} missing package(s): ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} packages present"
fi

[ "${1:-}" = "--deps" ] && exit 0

preset="${FLYWHEEL_PRESET:-default}"
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
