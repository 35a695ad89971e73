#!/bin/bash
# `flywheel train --model.from_hf=DIR` end to end, with models written by the independent Python
# writer (make_hf_model.py):
#  1. bad input: every defect is exit 1, a message naming the thing, and no run directory left;
#  2. the same model imported on 1 rank and on fsdp2 (each rank reads about half the weights), a
#     sharded Llama on 1 rank and on pp2, give the same first loss (it depends only on the imported weights and the batch), the run
#     directory keeps config.json and generation_config.json under hf/, and shape.ini records the
#     config's values; a Qwen3-MoE model on ep2 matches its 1-rank loss too.
#  3. import -> export -> import is bit-identical in fp32: a run imports a BF16 model and takes one
#     step at lr 1e-30 (an update far below fp32 resolution, so its checkpoint holds the imported
#     weights: lr must be > 0), `flywheel-ckpt export --format hf --dtype fp32` writes E1, whose tensors
#     equal the original's widened to fp32; a run imported from E1 exports E2: same bytes, same config.
#   import_cli.sh FLYWHEEL FLYWHEEL_CKPT PYTHON SOURCE_DIR
set -u
flywheel=$1
ckpt=$2
python=$3
src=$4
here=$src/tests/hf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
cases=0
shape=$here/import.ini
mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
export OMP_NUM_THREADS=1

make_model() {  # make_model DIR ARGS...
  local dir=$1
  shift
  "$python" "$here/make_hf_model.py" --out "$dir" "$@" || { echo "FAIL make_hf_model.py $*"; exit 1; }
}

fail() { echo "FAIL $*"; failures=$((failures + 1)); }

expect_error() {  # expect_error NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  cases=$((cases + 1))
  local out="$work/out-$cases"
  "$flywheel" train --shape "$shape" --train.out_dir="$out" "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [ "$rc" -ne 1 ]; then fail "$name: exit code $rc, expected 1"; cat "$work/stderr"; return; fi
  if ! grep -qE -- "$pattern" "$work/stderr"; then
    fail "$name: message does not match /$pattern/:"; cat "$work/stderr"; return
  fi
  if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then fail "$name: left output behind:"; ls -R "$out"; return; fi
  echo "ok   $name: $(head -c 300 "$work/stderr")"
}

m=$work/models
make_model "$m/good" --arch qwen3 --tied
make_model "$m/mistral" --arch qwen3 --config-set 'architectures=["MistralForCausalLM"]' --config-set 'model_type="mistral"'
make_model "$m/missing" --arch qwen3 --drop model.layers.1.self_attn.k_norm.weight
make_model "$m/extra" --arch llama --extra model.layers.0.self_attn.rotary_emb.inv_freq
make_model "$m/shape" --arch qwen3 --reshape model.layers.0.mlp.up_proj.weight=40x32
make_model "$m/dtype" --arch qwen3 --retype model.norm.weight=I32
make_model "$m/truncated" --arch qwen3 --truncate 64
make_model "$m/sliding" --arch qwen3 --config-set use_sliding_window=true
make_model "$m/yarn" --arch llama --config-set 'rope_scaling={"rope_type":"yarn","factor":4.0}'
make_model "$m/no-weights" --arch qwen3 && rm "$m/no-weights/model.safetensors"
mkdir -p "$m/empty"
printf '{"architectures": ["Qwen3ForCausalLM"], "hidden_size": 32,' >"$m/empty/config.json"

expect_error "unknown architecture" "config.json.*MistralForCausalLM" --model.from_hf="$m/mistral"
expect_error "missing tensor" "1 tensor\(s\) the architecture needs are missing: model.layers.1.self_attn.k_norm.weight" \
  --model.from_hf="$m/missing"
expect_error "extra tensor" "does not have: model.layers.0.self_attn.rotary_emb.inv_freq" --model.from_hf="$m/extra"
expect_error "wrong shape" "model.layers.0.mlp.up_proj.weight has shape \[40, 32\].*needs \[48, 32\]" \
  --model.from_hf="$m/shape"
expect_error "wrong dtype" "model.norm.weight has dtype I32" --model.from_hf="$m/dtype"
expect_error "truncated safetensors" "model.safetensors" --model.from_hf="$m/truncated"
expect_error "sliding-window attention" "use_sliding_window" --model.from_hf="$m/sliding"
expect_error "unknown rope_scaling type" "rope_type.*yarn" --model.from_hf="$m/yarn"
expect_error "no weights" "neither model.safetensors.index.json nor model.safetensors" --model.from_hf="$m/no-weights"
expect_error "malformed config.json" "empty/config.json: not valid JSON" --model.from_hf="$m/empty"
expect_error "not a directory" "model.from_hf = '.*/nope': not a directory" --model.from_hf="$m/nope"
expect_error "no config.json" "no config.json" --model.from_hf="$work"
expect_error "shape contradicts config" "model.d_model = 64 contradicts .*config.json: hidden_size gives 32" \
  --model.from_hf="$m/good" --model.d_model=64
expect_error "tied contradicts" "model.tie_embeddings = false contradicts .*tie_word_embeddings gives true" \
  --model.from_hf="$m/good" --model.tie_embeddings=false
expect_error "max_seq_len beyond the config" "model.max_seq_len = 1024 is longer than .*max_position_embeddings = 512" \
  --model.from_hf="$m/good" --model.max_seq_len=1024
expect_error "init_from with from_hf" "a run starts from one set of weights" --model.from_hf="$m/good" \
  --train.init_from="$work"

# The first loss of a run depends only on the imported weights and the first batch: equal on every mesh.
first_loss() { "$python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["loss"])' "$1"; }
same_loss() {  # same_loss NAME A B: relative difference below 1e-5 (reduction order differs across meshes)
  "$python" -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-5 * abs(a))' \
    "$2" "$3" && echo "ok   $1: first loss $2 vs $3" || fail "$1: first loss $2 vs $3"
}
run_mesh() {  # run_mesh NAME RANKS MODEL ARGS...
  local name=$1 ranks=$2 model=$3
  shift 3
  "${mpirun[@]}" -n "$ranks" "$flywheel" train --shape "$shape" --model.from_hf="$model" --train.out_dir="$work/runs" \
    --train.run_name="$name" --train.steps=1 "$@" >"$work/$name.log" 2>&1 || { fail "$name: exit $?"; cat "$work/$name.log"; }
}

run_mesh one 1 "$m/good"
run_mesh fsdp2 2 "$m/good" --mesh.fsdp=2
one=$(first_loss "$work/runs/one/metrics.jsonl")
same_loss "fsdp2 import" "$one" "$(first_loss "$work/runs/fsdp2/metrics.jsonl")"
# Pipeline stages read only their own layers (a tied embedding cannot span stages: Llama untied).
make_model "$m/llama" --arch llama --shard-bytes 30000
run_mesh llama-one 1 "$m/llama"
run_mesh llama-pp2 2 "$m/llama" --mesh.pp=2
same_loss "pp2 import (sharded files)" "$(first_loss "$work/runs/llama-one/metrics.jsonl")" \
  "$(first_loss "$work/runs/llama-pp2/metrics.jsonl")"
grep -q "imported 24 tensors from .*model.safetensors (BF16" "$work/one.log" && grep -q "this rank read .* (100% of" \
  "$work/one.log" || fail "1-rank import log line: $(grep imported "$work/one.log")"
# fsdp2: rank 0 holds the first half of every tensor's rows (odd row counts give it one row less).
grep -qE "this rank read .* \((4[5-9]|50)% of the weights" "$work/fsdp2.log" || fail "fsdp2 bytes read: $(grep imported "$work/fsdp2.log")"
for f in config.json generation_config.json; do
  cmp -s "$m/good/$f" "$work/runs/one/hf/$f" || fail "run directory hf/$f is not the model's $f"
done
grep -q "^d_model = 32$" "$work/runs/one/shape.ini" && grep -q "^qk_norm = true$" "$work/runs/one/shape.ini" ||
  fail "shape.ini does not record the config's values: $(cat "$work/runs/one/shape.ini")"

make_model "$m/moe" --arch qwen3_moe --layers 2 --experts 4 --top-k 2
run_mesh moe-one 1 "$m/moe"
run_mesh moe-ep2 2 "$m/moe" --mesh.fsdp=2 --mesh.ep=2
same_loss "qwen3-moe ep2 import" "$(first_loss "$work/runs/moe-one/metrics.jsonl")" \
  "$(first_loss "$work/runs/moe-ep2/metrics.jsonl")"

# Round trip (3.): Qwen3 with biases, untied, sharded input files.
make_model "$m/trip" --arch qwen3 --bias --shard-bytes 40000
unchanged=(--train.lr=1e-30 --train.min_lr=0 --train.weight_decay=0)
run_mesh trip-0 1 "$m/trip" "${unchanged[@]}"
"$ckpt" export "$work/runs/trip-0" --format hf --dtype fp32 --out "$work/e1" --no-progress >/dev/null ||
  fail "export of the imported run"
run_mesh trip-1 2 "$work/e1" --mesh.fsdp=2 "${unchanged[@]}"
"$ckpt" export "$work/runs/trip-1" --format hf --dtype fp32 --out "$work/e2" --no-progress >/dev/null ||
  fail "export of the run imported from the export"
for f in config.json generation_config.json; do
  cmp -s "$work/e1/$f" "$work/e2/$f" && echo "ok   round trip: e1/$f == e2/$f" || fail "round trip: e1/$f != e2/$f"
done
same_tensors() {  # same_tensors WHAT DIR_A DIR_B: the same names, and values equal bit for bit in fp32
  "$python" -c '
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from check_import import read_model
a, b = read_model(sys.argv[2]), read_model(sys.argv[3])
assert set(a) == set(b), sorted(set(a) ^ set(b))
bits = lambda x: np.ascontiguousarray(x, np.float32).view(np.uint32)
bad = [n for n in a if not np.array_equal(bits(a[n]), bits(b[n]))]
assert not bad, bad[:5]
print(len(a), "tensors")' "$here" "$2" "$3" >"$work/same.out" 2>&1 && echo "ok   round trip: $1, $(cat "$work/same.out")" ||
    { fail "round trip: $1"; cat "$work/same.out"; }
}
same_tensors "e1 holds the original BF16 tensors widened exactly" "$m/trip" "$work/e1"
# The files differ in __metadata__ only (the step's mesh: fsdp1 vs fsdp2).
same_tensors "e2 == e1" "$work/e1" "$work/e2"

echo "$cases bad-input cases and the mesh checks, $failures failure(s)"
[ "$failures" -eq 0 ]
