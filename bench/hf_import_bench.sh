#!/bin/bash
# Hugging Face import at Qwen3-0.6B's exact dimensions (28 layers, hidden 1024, 16 x 128 heads, 8 KV
# heads, vocab 151,936, tied; BF16, about 1.2 GB), against dd reading the same file in the same run:
#   1. dd's read rate and `flywheel train --model.from_hf`'s import rate on one rank, interleaved in five
#      rounds (this VM's read rate moves between runs), page cache warm
#      (and cold, with --cold: drop_caches before each read; needs root);
#   2. bytes read per rank on an fsdp2 mesh (from the import's log line);
#   3. one training step of that model on this machine: seconds and peak RSS against `flywheel plan`'s
#      per-rank prediction.
#   bench/hf_import_bench.sh BUILD_DIR [WORK_DIR] [--cold]
# The random model is written once into WORK_DIR (default /tmp/flywheel-hf-bench) by
# tests/hf/make_hf_model.py and reused.
set -eu
build=$1
work=${2:-/tmp/flywheel-hf-bench}
cold=${3:-}
src=$(cd "$(dirname "$0")/.." && pwd)
model=$work/qwen3-0.6b
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ ! -f "$model/model.safetensors" ]; then
  echo "writing a random Qwen3-0.6B-sized model to $model ..."
  /usr/bin/python3 "$src/tests/hf/make_hf_model.py" --arch qwen3 --preset qwen3-0.6b --std 0.02 --out "$model"
fi
file=$model/model.safetensors
bytes=$(stat -c %s "$file")
drop() { if [ "$cold" = "--cold" ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi; }
shape=$work/bench.ini
printf '[model]\nmax_seq_len = 128\n[train]\nsteps = 1\nseq_len = 64\nmicro_batch = 2\ncheckpoint_every = 0\n' >"$shape"
printf '[data]\nsource = task:addition\ntokenizer = byte\n' >>"$shape"

cat "$file" >/dev/null  # warm (or not: drop() below)
dd_rate() {  # GB/s of one dd read of the file
  drop
  local start s
  start=$(date +%s.%N)
  dd if="$file" of=/dev/null bs=8M status=none
  s=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$bytes / $s / 1000000000" | bc -l | xargs printf '%.2f'
}

run_train() {  # run_train NAME RANKS ARGS...: the log in $work/NAME.log, /usr/bin/time -v in NAME.time
  local name=$1 ranks=$2
  shift 2
  rm -rf "$work/runs/$name"
  drop
  /usr/bin/time -v mpirun --oversubscribe --bind-to none -n "$ranks" "$build/flywheel" train --shape "$shape" \
    --model.from_hf="$model" --train.out_dir="$work/runs" --train.run_name="$name" --train.resume=never "$@" \
    >"$work/$name.log" 2>"$work/$name.time"
}
import_rate() { grep -h "imported" "$work/$1.log" "$work/$1.time" | head -1 | sed -E 's/.*weights, ([0-9.]+) GB\/s.*/\1/'; }

# dd and the import interleaved, five rounds: this machine's read rate moves between runs.
echo "file: $file, $bytes bytes"
for round in 1 2 3 4 5; do
  d=$(dd_rate)
  run_train "one-$round" 1 --train.threads=2
  i=$(import_rate "one-$round")
  echo "round $round: dd $d GB/s, import $i GB/s, import/dd $(echo "$i / $d" | bc -l | xargs printf '%.2f')"
done
echo "import:  $(grep -h "imported" "$work/one-1.log" "$work/one-1.time" | head -1)"
cp "$work/one-1.log" "$work/one.log"
cp "$work/one-1.time" "$work/one.time"
mkdir -p "$work/runs/one" && cp "$work/runs/one-1/metrics.jsonl" "$work/runs/one/metrics.jsonl"
echo "one step on 1 rank: $(grep -h 'step 1/1' "$work/one.log" "$work/one.time" | head -1)"
echo "step seconds: $(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["step_seconds"])' "$work/runs/one/metrics.jsonl")"
echo "peak RSS (1 rank, KiB): $(grep 'Maximum resident' "$work/one.time" | awk '{print $NF}')"
"$build/flywheel" plan --shape "$shape" --model.from_hf="$model" 2>&1 | grep -iE "per rank|per-rank|peak|total" | head -8

run_train fsdp2 2 --mesh.fsdp=2 --train.threads=1
echo "fsdp2:   $(grep -h "imported" "$work/fsdp2.log" "$work/fsdp2.time" | head -1)"
echo "peak RSS (fsdp2, the larger rank... /usr/bin/time reports mpirun's largest child, KiB): $(grep 'Maximum resident' "$work/fsdp2.time" | awk '{print $NF}')"
