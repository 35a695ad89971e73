#!/usr/bin/env bash
# Set up (packages), build, and run the whole test suite with CTest.
#   tools/test.sh                  everything
#   tools/test.sh -L unit          only tests with a label (unit, reference, cli, mpi, slurm, fault, gpu)
# Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# Open MPI refuses to run as root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900 "$@"
