#!/bin/bash
# LoRA against full-parameter training on the same shape, same process settings, measured in one run:
# step time (train_step_bench: the real Trainer, best and mean of the timed steps), the weights + grads + AdamW
# state a rank holds, and peak RSS. Shapes: gpt2-124m, and a Qwen3-0.6B-sized dense model (28 layers, hidden
# 1024, 16 x 128 query heads, 8 KV heads, d_ff 3072, vocab 151,936, tied, q/k norms). LoRA: rank 16 on all-linear.
#   bench/lora_bench.sh BUILD_DIR [STEPS]     (a benchmark: never registered with ctest)
set -eu
build=${1:?usage: lora_bench.sh BUILD_DIR [STEPS]}
steps=${2:-3}
src=$(cd "$(dirname "$0")/.." && pwd)
bench="$build/bench/train_step_bench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
qwen3_06b=(--shape "$src/configs/shapes/tiny-dense.ini" --model.vocab_size=151936 --model.d_model=1024
           --model.n_layers=28 --model.n_heads=16 --model.n_kv_heads=8 --model.head_dim=128 --model.d_ff=3072
           --model.qk_norm=true --model.tie_embeddings=true --model.max_seq_len=1024 --rows 4 --seq 256)
lora=(--lora.rank=16 --lora.alpha=32 --lora.targets=all-linear)

measure() {  # measure NAME ARGS...: one train_step_bench run, its JSON in $work/NAME.json
  local name=$1
  shift
  "$bench" --steps "$steps" --warmup 1 --json "$work/$name.json" "$@" >"$work/$name.log" 2>&1 ||
    { echo "$name failed: $(tail -3 "$work/$name.log")"; exit 1; }
  grep -E "^train step|^peak RSS" "$work/$name.log" | sed "s/^/  $name: /"
}
for shape in gpt2 qwen3-0.6b; do
  if [ "$shape" = gpt2 ]; then args=(--shape "$src/configs/shapes/gpt2-124m.ini"); else args=("${qwen3_06b[@]}"); fi
  echo "$shape:"
  measure "$shape-full" "${args[@]}"
  measure "$shape-lora" "${args[@]}" "${lora[@]}"
  /usr/bin/python3 - "$work/$shape-full.json" "$work/$shape-lora.json" <<'PY'
import json, sys
full, lora = (json.load(open(p)) for p in sys.argv[1:3])
f, l = full["step"], lora["step"]
print("  LoRA / full: step time %.2f (mean %.2f s / %.2f s, best %.2f s / %.2f s); weights+grads+Adam %.2f "
      "(%.0f / %.0f MiB; %.2fM of %.1fM parameters trained); peak RSS %.2f (%.0f / %.0f MiB)"
      % (l["mean_s"] / f["mean_s"], l["mean_s"], f["mean_s"], l["min_s"], f["min_s"],
         lora["state_mib"] / full["state_mib"], lora["state_mib"], full["state_mib"], lora["trained_params"] / 1e6,
         lora["params"] / 1e6, lora["peak_rss_mib"] / full["peak_rss_mib"], lora["peak_rss_mib"], full["peak_rss_mib"]))
PY
done
