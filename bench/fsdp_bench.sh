#!/bin/bash
# FSDP on 2 cores: does splitting one global batch over 2 ranks cost more than 1 rank with 2 threads,
# and how much of the fsdp2 step is communication?
#
#   bench/fsdp_bench.sh [FLYWHEEL_BINARY (build/flywheel)] [STEPS (6)]
#
# Model: tiny-dense scaled up to d_model 512, 8 layers, d_ff 1536, 8 heads (4 KV), seq 256; global
# batch 8 rows x 256 tokens, grad_accum 1. Three runs of STEPS steps each, same seed and data:
#   single: 1 rank x 2 threads, micro_batch 8.
#   fsdp2:  mpirun -n 2, 1 thread per rank, --mesh.fsdp=2, micro_batch 8 (4 rows per rank).
#   halves: two independent single-rank runs started together, 1 thread each, micro_batch 4: the
#           compute of fsdp2 (each core does half the batch, and all the weights) with no communication.
# Step time = median of metrics.jsonl's step_seconds over steps 2..STEPS (step 1 warms caches and
# the allocator); for fsdp2 that is rank 0's time, which includes waiting in collectives; for halves the
# mean of the two runs' medians.
#
# Reported:
#   ratio     = fsdp2 / single       (> 1: FSDP is slower than threads on this box)
#   comm frac = (fsdp2 - halves) / fsdp2
# The comm fraction is an estimate by subtraction, not a timer around the collectives (the MPI backend
# has none): it charges to "communication" everything fsdp2 does beyond two independent halves:
# all-gather / reduce-scatter time including the copies into and out of the gathered buffers, the
# synchronisation waits (load imbalance between the ranks shows up here), and the optimizer on a
# half-size shard is *credited* against it (halves each update all the weights), so it can even come
# out slightly negative when communication is nearly free. Both fsdp2 and halves run two processes
# on the two cores, so memory-bandwidth contention cancels to first order.
# Nothing is asserted: this prints. The machine should be otherwise idle; the load average is printed
# with the results because other work on a 2-core box moves these numbers by tens of percent.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
flywheel=${1:-$src/build/flywheel}
steps=${2:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

model=(--shape "$src/configs/shapes/tiny-dense.ini" --model.d_model=512 --model.n_layers=8 --model.d_ff=1536
       --model.n_heads=8 --model.n_kv_heads=4 --model.max_seq_len=256 --train.seq_len=256 --train.grad_accum=1
       --train.steps="$steps" --train.checkpoint_every=0 --train.out_dir="$work")

load() { cut -d' ' -f1 /proc/loadavg; }
echo "cores: $(nproc); 1-min load average before each phase (should be ~0 plus leftovers of our previous phase):"
echo "single: 1 rank x 2 threads ... (load $(load))"
"$flywheel" train "${model[@]}" --train.micro_batch=8 --train.threads=2 --train.run_name=single 2>"$work/single.log"
echo "fsdp2: 2 ranks x 1 thread ... (load $(load))"
mpirun --allow-run-as-root --bind-to none -n 2 "$flywheel" train "${model[@]}" --train.micro_batch=8 \
  --train.threads=1 --mesh.fsdp=2 --train.run_name=fsdp2 2>"$work/fsdp2.log"
echo "halves: 2 independent ranks x 1 thread, half the batch each ... (load $(load))"
"$flywheel" train "${model[@]}" --train.micro_batch=4 --train.threads=1 --train.run_name=half0 2>"$work/half0.log" &
first=$!
"$flywheel" train "${model[@]}" --train.micro_batch=4 --train.threads=1 --train.run_name=half1 2>"$work/half1.log"
wait "$first"
echo "done (load $(load))"

python3 - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def step_time(run):
    seconds = [json.loads(l)["step_seconds"] for l in open(f"{work}/{run}/metrics.jsonl")]
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
single, fsdp2 = step_time("single"), step_time("fsdp2")
halves = (step_time("half0") + step_time("half1")) / 2
def spread(run):
    seconds = [json.loads(l)["step_seconds"] for l in open(f"{work}/{run}/metrics.jsonl")][1:]
    return f"{min(seconds):.2f}..{max(seconds):.2f}"
print(f"step time (median of steps 2..):  single {single:.3f} s   fsdp2 {fsdp2:.3f} s   halves {halves:.3f} s")
print(f"  min..max per step:              single {spread('single')}   fsdp2 {spread('fsdp2')}   "
      f"halves {spread('half0')} / {spread('half1')}")
print(f"ratio fsdp2 / single:            {fsdp2 / single:.3f}")
print(f"comm fraction of the fsdp2 step: {(fsdp2 - halves) / fsdp2:.3f}   (fsdp2 - halves) / fsdp2, see header")
PY
