#!/bin/bash
# Golden metrics test: runs the scenarios of run_scenarios.sh with this build and requires every
# loss, reward, k3 and gradient norm to be bit-identical to tests/golden/reference/ (recorded before
# the code was restructured; reference/SOURCE says with what).
#   run_golden.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON SCENARIO...
# Exit 77 (skipped) on a machine whose instruction set differs from the recorded one: -march=native
# code and OpenBLAS kernels round differently on another ISA, so equality is only promised there.
set -u
flywheel=$1 src=$2 python=$3
shift 3
isa=$(sed -n 's/^isa: //p' "$src/tests/golden/reference/SOURCE")
if ! grep -qw "$isa" /proc/cpuinfo; then
  echo "SKIP: the golden metrics were recorded on a CPU with $isa; this one has none, so its rounding differs"
  exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bash "$src/tests/golden/run_scenarios.sh" "$flywheel" "$src" "$out" "$python" "$@" || exit 1
"$python" "$src/tests/golden/compare_metrics.py" compare "$src/tests/golden/reference" "$out" "$@"
