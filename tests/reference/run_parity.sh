#!/bin/sh
# run_parity.sh DUMP_MODEL PYTHON OUT_DIR [dump_model args...]: dump the C++ model, then check it
# against the float64 PyTorch reference (exit status of torch_reference.py).
set -e
dump_model=$1 python=$2 out=$3
shift 3
rm -rf "$out"
"$dump_model" --out "$out" "$@"
exec "$python" "$(dirname "$0")/torch_reference.py" "$out" --rtol 1e-5
