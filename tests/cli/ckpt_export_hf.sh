#!/bin/bash
# flywheel-ckpt export --format hf on runs of `flywheel train` (Llama-3 with llama3 RoPE; Qwen3 with
# q/k norms, biases, explicit head_dim and tied embeddings; Qwen3-MoE with a dense layer), checked by
# an independent reader (tests/safetensors/hf_export_check.py): config.json keys, tensor names and
# shapes as HF's modeling code builds them, values against the --format safetensors export (fp32 and
# bf16), the loss of a float64 forward configured from config.json against `flywheel eval`; sharding;
# a run imported from Hugging Face (RUN/hf: keys kept, tokenizer and generation config copied); bad
# input; failed and interrupted exports leaving nothing behind.
#   ckpt_export_hf.sh FLYWHEEL FLYWHEEL_CKPT MAKE_TEST_CHECKPOINT SOURCE_DIR PYTHON
set -u
flywheel=$1 ckpt=$2 make_ckpt=$3 src=$4 python=$5
shapes="$src/configs/shapes"
check="$src/tests/safetensors/hf_export_check.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$src/tests/cli/check_cases.sh"

# ---- runs of `flywheel train`: 2 layers, 3 steps, one checkpoint -----------------------------------
train() {  # train NAME SHAPE overrides...
  local run_name=$1 shape=$2
  shift 2
  "$flywheel" train --shape "$shapes/$shape" --model.n_layers=2 --train.steps=3 --train.checkpoint_every=3 \
    --train.threads=2 --train.out_dir="$work" --train.run_name="$run_name" "$@" >"$work/train-$run_name.log" 2>&1 ||
    { echo "FAIL training $run_name: $(tail -3 "$work/train-$run_name.log")"; exit 1; }
}
train llama tiny-dense.ini --model.rope_scaling=llama3 --model.rope_factor=8 --model.rope_original_max_positions=16 \
  --model.rope_theta=500000
train qwen3 tiny-dense.ini --model.qk_norm=true --model.attention_bias=true --model.head_dim=48 \
  --model.tie_embeddings=true --model.norm_eps=1e-6
train moe tiny-moe.ini --model.qk_norm=true --model.moe_shared_expert=false --model.d_model=64 --model.d_ff=96 \
  --model.moe_d_ff=48 --model.moe_decoder_sparse_step=2 --model.moe_normalize_topk=false
write_held_out "$work/held_out.jsonl"

# ---- each architecture: fp32 and bf16 against the safetensors export, loss against flywheel eval ---
for r in llama qwen3 moe; do
  run "safetensors export of $r" 0 "$ckpt" export "$work/$r" --format safetensors --out "$work/$r.safetensors" \
    --no-progress
  run "hf export of $r" 0 "$ckpt" export "$work/$r" --format hf --out "$work/$r-hf" --no-progress &&
    { out_has "exported step 3 .* to $work/$r-hf"; out_has "model.safetensors"
      out_has "tokenizer: none written: .*byte tokenizer"; }
  py "layout of $r (fp32)" "$check" layout "$work/$r-hf" "$work/$r.safetensors" fp32
  run "hf export of $r in bf16" 0 "$ckpt" export "$work/$r" --format hf --dtype bf16 --out "$work/$r-hf-bf16" \
    --no-progress && out_has "BF16"
  py "layout of $r (bf16)" "$check" layout "$work/$r-hf-bf16" "$work/$r.safetensors" bf16
  "$flywheel" eval --run "$work/$r" --data "$work/held_out.jsonl" --json "$work/$r-eval.jsonl" >/dev/null \
    2>"$work/$r-eval.log" || { name="eval $r"; fail "$(tail -3 "$work/$r-eval.log")"; }
  py "loss of $r's export" "$check" loss "$work/$r-hf" "$work/$r-eval.jsonl" "$work/held_out.jsonl"
done
py "what each config.json says" - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
c = {r: json.load(open(os.path.join(w, r + "-hf", "config.json"))) for r in ("llama", "qwen3", "moe")}
assert c["llama"]["architectures"] == ["LlamaForCausalLM"] and c["llama"]["rope_scaling"] == {
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16}, c["llama"]
assert c["llama"]["rope_theta"] == 500000 and c["llama"]["tie_word_embeddings"] is False
q = c["qwen3"]
assert q["architectures"] == ["Qwen3ForCausalLM"] and q["head_dim"] == 48 and q["attention_bias"] is True
assert q["tie_word_embeddings"] is True and q["rms_norm_eps"] == 1e-6 and q["rope_scaling"] is None
m = c["moe"]
assert m["architectures"] == ["Qwen3MoeForCausalLM"] and m["num_experts"] == 8 and m["num_experts_per_tok"] == 2
assert m["moe_intermediate_size"] == 48 and m["intermediate_size"] == 96 and m["decoder_sparse_step"] == 2
assert m["norm_topk_prob"] is False and m["mlp_only_layers"] == [] and m["router_aux_loss_coef"] == 0.01
for r, x in c.items():  # Flywheel's own models: the byte tokenizer's ids
    assert (x["bos_token_id"], x["eos_token_id"], x["pad_token_id"]) == (256, 257, 258), r
    g = json.load(open(os.path.join(w, r + "-hf", "generation_config.json")))
    assert g == {"_from_model_config": True, "bos_token_id": 256, "eos_token_id": 257, "pad_token_id": 258}, g
    assert sorted(os.listdir(os.path.join(w, r + "-hf"))) == ["config.json", "generation_config.json",
                                                             "model.safetensors"], r
print("ok   architectures, rope, MoE keys and byte-tokenizer ids as trained")
PY

# ---- sharded: 40000-byte shards of the MoE model ----------------------------------------------------
run "sharded export" 0 "$ckpt" export "$work/moe" --format hf --max-shard-size 40KB --out "$work/moe-sharded" \
  --no-progress && out_has "[0-9]+ shards \+ model.safetensors.index.json"
py "sharded layout" "$check" layout "$work/moe-sharded" "$work/moe.safetensors" fp32 40000
run "sharded export in KiB, bf16" 0 "$ckpt" export "$work/llama" --format hf --max-shard-size 64KiB --dtype bf16 \
  --out "$work/llama-sharded" --no-progress
py "sharded bf16 layout" "$check" layout "$work/llama-sharded" "$work/llama.safetensors" bf16 65536

# ---- a run imported from Hugging Face: RUN/hf holds the source model's files -------------------------
cp -r "$work/llama" "$work/imported"
mkdir "$work/imported/hf"
"$python" - "$work/imported/hf" <<'PY'
import json, os, sys
d = sys.argv[1]
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 259, "hidden_size": 128,
           "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 384,
           "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
           "high_freq_factor": 4.0, "original_max_position_embeddings": 16}, "bos_token_id": 1, "eos_token_id": [2, 3],
           "initializer_range": 0.02, "pretraining_tp": 1, "transformers_version": "4.51.0", "torch_dtype": "bfloat16"},
          open(os.path.join(d, "config.json"), "w"))
open(os.path.join(d, "generation_config.json"), "w").write(
    '{"bos_token_id": 1, "do_sample": true, "temperature": 0.6}\n')
open(os.path.join(d, "tokenizer.json"), "w").write('{"model": {"type": "BPE"}}\n')
open(os.path.join(d, "tokenizer_config.json"), "w").write('{"eos_token": "<eot>"}\n')
PY
run "export of an imported run" 0 "$ckpt" export "$work/imported" --format hf --out "$work/imported-hf" --no-progress &&
  { out_has "as LlamaForCausalLM"; out_has "config.json: keys of .*imported/hf/config.json"
    out_has "tokenizer: copied tokenizer.json, tokenizer_config.json"; out_has "generation_config.json: copied"; }
py "the import's files and keys" - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
out, src = os.path.join(w, "imported-hf"), os.path.join(w, "imported", "hf")
for f in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
    assert open(os.path.join(out, f), "rb").read() == open(os.path.join(src, f), "rb").read(), f
c = json.load(open(os.path.join(out, "config.json")))
# Kept: the ids and keys that are not architecture; rewritten from the checkpoint: n_layers (trained with 2).
assert c["bos_token_id"] == 1 and c["eos_token_id"] == [2, 3] and c["pretraining_tp"] == 1, c
assert c["num_hidden_layers"] == 2 and c["torch_dtype"] == "float32" and "transformers_version" not in c, c
assert "pad_token_id" not in c
print("ok   copied byte for byte; bos/eos/pretraining_tp kept; layers and dtype from the checkpoint")
PY
py "layout of the imported run's export" "$check" layout "$work/imported-hf" "$work/llama.safetensors" fp32

# ---- what HF cannot express, bad options, occupied directories: clear errors, nothing written ------
"$make_ckpt" --shape "$shapes/tiny-moe.ini" --out "$work/shared" --steps 2 --model.n_layers=2 --model.d_model=64 \
  --model.d_ff=96 --model.moe_d_ff=48 --model.qk_norm=true >/dev/null || { echo "FAIL make_test_checkpoint"; exit 1; }
run "a shared expert" 1 "$ckpt" export "$work/shared" --format hf --out "$work/x" --no-progress &&
  err_has "model.moe_shared_expert = true has no Hugging Face architecture"
cp -r "$work/qwen3" "$work/qwen3-as-llama" && mkdir "$work/qwen3-as-llama/hf" &&
  cp "$work/imported/hf/config.json" "$work/qwen3-as-llama/hf/"
run "an imported architecture the model no longer fits" 1 "$ckpt" export "$work/qwen3-as-llama" --format hf \
  --out "$work/x" --no-progress && err_has "model.qk_norm = true cannot be exported as LlamaForCausalLM"
for size in 0 5XB 1.5 -3 GB 1..5GB 99999999999999999999999TB; do
  run "--max-shard-size $size" 2 "$ckpt" export "$work/llama" --format hf --out "$work/x" --max-shard-size "$size" &&
    err_has "--max-shard-size $size is not a size \(allowed: a positive number of bytes .*KiB, MiB, GiB, TiB"
done
run "--max-shard-size with safetensors" 2 "$ckpt" export "$work/llama" --format safetensors --out "$work/x.st" \
  --max-shard-size 5GB && err_has "--max-shard-size applies to --format hf only"
run "--dtype fp16" 2 "$ckpt" export "$work/llama" --format hf --out "$work/x" --dtype fp16 &&
  err_has "--dtype fp16 is not supported \(allowed: fp32, bf16\)"
run "--format gguf" 2 "$ckpt" export "$work/llama" --format gguf --out "$work/x" &&
  err_has "--format gguf is not supported \(allowed: safetensors, hf, peft\)"
run "existing non-empty directory" 1 "$ckpt" export "$work/llama" --format hf --out "$work/llama-hf" --no-progress &&
  err_has "llama-hf exists and is not empty; pass --force to replace it"
mkdir "$work/not-a-model" && echo keep >"$work/not-a-model/notes.txt"
run "--force on a directory without config.json" 1 "$ckpt" export "$work/llama" --format hf --out "$work/not-a-model" \
  --force --no-progress && err_has "refusing to replace .*not-a-model: it has no config.json"
[ -f "$work/not-a-model/notes.txt" ] || { name="--force refusal"; fail "not-a-model/notes.txt is gone"; }
run "--out is the run directory" 1 "$ckpt" export "$work/imported" --format hf --out "$work/imported/hf" --force &&
  err_has "which the export reads"
echo x >"$work/a-file"
run "--out is a file" 1 "$ckpt" export "$work/llama" --format hf --out "$work/a-file" && err_has "is not a directory"
run "--out in a missing directory" 1 "$ckpt" export "$work/llama" --format hf --out "$work/nowhere/m" &&
  err_has "directory .*nowhere does not exist"
mkdir "$work/empty-out"
run "an existing empty directory is used" 0 "$ckpt" export "$work/llama" --format hf --out "$work/empty-out" \
  --no-progress
run "--force replaces a model directory" 0 "$ckpt" export "$work/qwen3" --format hf --out "$work/llama-hf" --force \
  --no-progress && { grep -q Qwen3ForCausalLM "$work/llama-hf/config.json" || fail "config.json was not replaced"; }
absent "$work/x"

# A write that fails halfway (a 100 KiB file size limit; SIGXFSZ ignored, so write(2) fails with EFBIG).
run "export that fails mid-write" 1 bash -c "trap '' XFSZ; ulimit -f 100; exec '$ckpt' export '$work/qwen3' \
  --format hf --out '$work/big' --no-progress" && err_has "writing .*big.tmp-[0-9]+/model.safetensors.tmp failed"
# Interrupted: a FIFO for tokenizer.json holds the export in open(2), after the weights are written.
cp -r "$work/imported" "$work/blocked" && rm "$work/blocked/hf/tokenizer.json" &&
  mkfifo "$work/blocked/hf/tokenizer.json"
for signal in TERM INT HUP; do
  cases=$((cases + 1)) name="export interrupted by SIG$signal"
  set -m
  "$ckpt" export "$work/blocked" --format hf --out "$work/sig" --no-progress >/dev/null 2>"$work/stderr" &
  pid=$!
  set +m
  for _ in $(seq 50); do [ -e "$work/sig.tmp-$pid/config.json" ] && break; sleep 0.1; done
  [ -e "$work/sig.tmp-$pid/model.safetensors" ] || echo "     (note: the weights were not written yet)"
  kill -$signal "$pid"
  timeout 10 tail --pid="$pid" -f /dev/null
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  code=$?
  if [ "$code" -ne $((128 + $(kill -l "$signal"))) ]; then fail "exit code $code, expected death by SIG$signal"
  elif ls -d "$work"/sig* >/dev/null 2>&1; then fail "left $(ls -d "$work"/sig*)"
  else echo "ok   $name"; fi
done 2>/dev/null
leftovers=$(ls -d "$work"/*.tmp-* "$work/big" 2>/dev/null)
[ -z "$leftovers" ] || { name="failed exports"; cases=$((cases + 1)); fail "left $leftovers behind"; }

run "export --help" 0 "$ckpt" export --help && { out_has "--format FMT +output format \(allowed: safetensors, hf, peft\)"
  out_has "--max-shard-size SIZE"; out_has "--force"; }

finish
