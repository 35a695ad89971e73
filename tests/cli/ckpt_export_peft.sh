#!/bin/bash
# flywheel-ckpt export of LoRA runs (`flywheel train --lora.rank=...`), checked by an independent reader
# (tests/safetensors/hf_export_check.py peft): --format peft writes adapter_config.json + adapter_model.safetensors
# as PEFT saves them (target_modules a list of module names, or a regular expression where only one says it
# exactly); --format hf --merge writes the base with every adapter folded in (W + s B A), a plain model whose
# float64 forward gives `flywheel eval`'s loss; so does the base with the PEFT adapter applied unmerged. Runs: a
# Qwen3-like dense model with rsLoRA on all-linear, and a Qwen3-MoE-like one with adapters on q and the experts
# only, and LoRA on q_proj, v_proj of a Qwen3 imported from Hugging Face files (its checkpoints name the base by
# checksum: with other weights in its place, resume, eval and merge refuse). Then bad input: each format on the wrong kind of run, --merge where it does not apply, --force on a
# directory that is not an adapter's.
#   ckpt_export_peft.sh FLYWHEEL FLYWHEEL_CKPT SOURCE_DIR PYTHON
set -u
flywheel=$1 ckpt=$2 src=$3 python=$4
shapes="$src/configs/shapes"
check="$src/tests/safetensors/hf_export_check.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/cli/check_cases.sh"

train() {  # train NAME SHAPE overrides...: 2 layers, 4 steps at a learning rate that moves the adapters
  local run_name=$1 shape=$2
  shift 2
  "$flywheel" train --shape "$shapes/$shape" --model.n_layers=2 --train.steps=4 --train.checkpoint_every=4 \
    --train.lr=1e-2 --train.threads=2 --train.out_dir="$work" --train.run_name="$run_name" "$@" \
    >"$work/train-$run_name.log" 2>&1 || { echo "FAIL training $run_name: $(tail -3 "$work/train-$run_name.log")"; exit 1; }
}
train dense tiny-dense.ini --model.qk_norm=true --model.attention_bias=true --model.tie_embeddings=true \
  --lora.rank=4 --lora.alpha=8 --lora.use_rslora=true
train moe tiny-moe.ini --model.qk_norm=true --model.moe_shared_expert=false --model.d_model=64 --model.d_ff=96 \
  --model.moe_d_ff=48 --model.moe_decoder_sparse_step=2 --lora.rank=2 --lora.alpha=4 --lora.targets=q,experts
train full tiny-dense.ini
# A Hugging Face base (the independent writer's random Qwen3, BF16): LoRA on the imported model; the adapter names
# the base directory, the merged export keeps the import's config.json keys.
"$python" "$src/tests/hf/make_hf_model.py" --arch qwen3 --tied --out "$work/qwen3-base" >/dev/null ||
  { echo "FAIL make_hf_model.py"; exit 1; }
"$flywheel" train --shape "$src/tests/hf/import.ini" --model.from_hf="$work/qwen3-base" --train.steps=4 \
  --train.checkpoint_every=4 --train.lr=1e-2 --train.threads=2 --train.out_dir="$work" --train.run_name=imported \
  --lora.rank=4 --lora.alpha=8 --lora.targets=q_proj,v_proj >"$work/train-imported.log" 2>&1 ||
  { echo "FAIL training imported: $(tail -3 "$work/train-imported.log")"; exit 1; }
write_held_out "$work/held_out.jsonl"

for r in dense moe imported; do
  run "safetensors export of $r" 0 "$ckpt" export "$work/$r" --format safetensors --out "$work/$r.safetensors" \
    --no-progress
  run "peft export of $r" 0 "$ckpt" export "$work/$r" --format peft --out "$work/$r-peft" --no-progress &&
    { out_has "exported the LoRA adapter of step 4"; out_has "adapter_model.safetensors: [0-9]+ tensors"; }
  run "merged hf export of $r" 0 "$ckpt" export "$work/$r" --format hf --merge --out "$work/$r-merged" \
    --no-progress && out_has "LoRA adapters merged"
  "$flywheel" eval --run "$work/$r" --data "$work/held_out.jsonl" --json "$work/$r-eval.jsonl" >/dev/null \
    2>"$work/$r-eval.log" || { name="eval $r"; fail "$(tail -3 "$work/$r-eval.log")"; }
  py "adapter and merge of $r" "$check" peft "$work/$r-peft" "$work/$r-merged" "$work/$r.safetensors" \
    "$work/$r-eval.jsonl" "$work/held_out.jsonl"
  py "loss of $r's merged export" "$check" loss "$work/$r-merged" "$work/$r-eval.jsonl" "$work/held_out.jsonl"
done
py "target_modules: a list for all-linear, a regular expression for q + experts" - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
dense = json.load(open(os.path.join(w, "dense-peft", "adapter_config.json")))
moe = json.load(open(os.path.join(w, "moe-peft", "adapter_config.json")))
assert dense["target_modules"] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"], dense
assert dense["use_rslora"] is True and dense["r"] == 4 and dense["lora_alpha"] == 8, dense
assert isinstance(moe["target_modules"], str), moe  # gate_proj would also select layer 0's dense MLP
imported = json.load(open(os.path.join(w, "imported-peft", "adapter_config.json")))
assert imported["target_modules"] == ["q_proj", "v_proj"], imported
assert imported["base_model_name_or_path"] == os.path.join(w, "qwen3-base"), imported
merged = json.load(open(os.path.join(w, "imported-merged", "config.json")))
assert merged["architectures"] == ["Qwen3ForCausalLM"] and (merged["bos_token_id"], merged["eos_token_id"]) == (1, 2), merged
print("ok   target_modules: %s | %s | %s; the imported run's adapter names its base %s"
      % (dense["target_modules"], moe["target_modules"], imported["target_modules"],
         imported["base_model_name_or_path"]))
PY

# ---- bad input --------------------------------------------------------------------------------------
run "peft of a full-parameter run" 1 "$ckpt" export "$work/full" --format peft --out "$work/x" --no-progress &&
  { err_has "--format peft: step 4 has no LoRA adapters"; absent "$work/x"; }
run "hf of a LoRA run without --merge" 1 "$ckpt" export "$work/dense" --format hf --out "$work/x" --no-progress &&
  { err_has "step 4 is a LoRA run \(rank 4 on all-linear\): --format hf --merge writes the merged model"; absent "$work/x"; }
run "--merge of a full-parameter run" 1 "$ckpt" export "$work/full" --format hf --merge --out "$work/x" \
  --no-progress && { err_has "--merge: step 4 has no LoRA adapters to merge"; absent "$work/x"; }
run "--merge with peft" 2 "$ckpt" export "$work/dense" --format peft --merge --out "$work/x" &&
  err_has "--merge applies to --format hf only"
run "--force over a model directory" 1 "$ckpt" export "$work/dense" --format peft --force \
  --out "$work/dense-merged" --no-progress && err_has "it has no adapter_config.json"
run "--force over an adapter" 0 "$ckpt" export "$work/dense" --format peft --force --out "$work/dense-peft" \
  --no-progress

# The checkpoints name their base by checksum: replaced by other weights, the base is refused everywhere it is
# rebuilt (a resume, flywheel eval, an export that needs it), while the adapter alone still exports.
"$python" "$src/tests/hf/make_hf_model.py" --arch qwen3 --tied --seed 5 --out "$work/qwen3-base" >/dev/null ||
  { echo "FAIL make_hf_model.py"; exit 1; }
another="holds adapters for another base: it records base checksum [0-9a-f]{16} \\(model.from_hf = $work/qwen3-base\\)"
run "resume on another base" 1 "$flywheel" train --shape "$src/tests/hf/import.ini" --model.from_hf="$work/qwen3-base" \
  --train.steps=6 --train.checkpoint_every=4 --train.lr=1e-2 --train.threads=2 --train.out_dir="$work" \
  --train.run_name=imported --lora.rank=4 --lora.alpha=8 --lora.targets=q_proj,v_proj && err_has "$another"
run "eval on another base" 1 "$flywheel" eval --run "$work/imported" --data "$work/held_out.jsonl" &&
  err_has "$another"
run "merge on another base" 1 "$ckpt" export "$work/imported" --format hf --merge --out "$work/x" --no-progress &&
  { err_has "$another"; absent "$work/x"; }
run "the adapter alone still exports" 0 "$ckpt" export "$work/imported" --format peft --force \
  --out "$work/imported-peft" --no-progress
run "init_from a LoRA run" 1 "$flywheel" train --shape "$shapes/tiny-dense.ini" --train.init_from="$work/dense" \
  --train.steps=8 --train.out_dir="$work" --train.run_name=from-lora --lora.rank=4 &&
  err_has "train.init_from = '$work/dense' is a LoRA run: its checkpoints hold adapters, not a base to start from"
finish
