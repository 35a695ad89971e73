#!/bin/sh
# import_parity.sh DUMP_MODEL PYTHON WORK [make_hf_model.py args...]: writes a random Hugging Face model
# with the independent Python writer, imports it with dump_model --model.from_hf (the trainer's import
# code), then checks the forward and every gradient against the float64 HF-convention reference and
# the imported weights and config against the files, bit for bit.
set -e
dump_model=$1 python=$2 work=$3
shift 3
here=$(dirname "$0")
rm -rf "$work"
mkdir -p "$work"
"$python" "$here/make_hf_model.py" --out "$work/hf" "$@"
"$dump_model" --shape "$here/import.ini" --out "$work/dump" --model.from_hf="$work/hf" --rows 2 --seq 12
"$python" "$here/../reference/torch_reference.py" "$work/dump" --rtol 1e-5
exec "$python" "$here/check_import.py" "$work/hf" "$work/dump"
