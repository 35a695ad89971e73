#!/bin/bash
# Peak RSS of a serving replica and of trainer rank 0 (trainer + publisher) in a short flywheel run
# at gpt2-124m: 2 GRPO steps of 2 prompts x 2 samples, 4 decode slots of 64 positions, one trainer
# rank and one replica, each under /usr/bin/time. The replica also logs its weight bytes per
# parameter ("replica 0 up: bf16 weights (235.7 MiB = 2.00 bytes/parameter)").
#   bench/replica_memory.sh [FLYWHEEL_BINARY] [fp32|bf16 ...]     (default: build/flywheel, both dtypes)
# fp32 runs exact mode (invariant kernels); bf16 the fast mode (OpenBLAS training kernels).
set -u
cd "$(dirname "$0")/.."
flywheel=${1:-build/flywheel}
shift || true
dtypes=("$@")
[ ${#dtypes[@]} -gt 0 ] || dtypes=(fp32 bf16)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for dtype in "${dtypes[@]}"; do
  kernels=invariant
  [ "$dtype" = bf16 ] && kernels=blas
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_CORETYPE=Haswell \
    mpirun --oversubscribe --bind-to none -x OPENBLAS_CORETYPE -n 2 bash -c \
    "/usr/bin/time -f \"$dtype rank \$OMPI_COMM_WORLD_RANK peak RSS %M KiB\" $flywheel run \
      --shape configs/shapes/gpt2-124m.ini --mesh.serve=1 --train.objective=grpo --model.forward_kernels=$kernels \
      --rl.serve_dtype=$dtype --train.steps=2 --rl.sft_steps=0 --rl.prompts_per_step=2 --rl.group_size=2 \
      --train.micro_batch=4 --train.seq_len=32 --rl.max_new_tokens=6 --model.max_seq_len=64 --rl.max_batch=4 \
      --train.threads=1 --train.checkpoint_every=0 --train.out_dir=$work --train.run_name=$dtype" >"$work/$dtype.log" 2>&1 ||
    { echo "FAIL: the $dtype run failed:"; tail -5 "$work/$dtype.log"; exit 1; }
  grep -E "peak RSS|replica 0 up" "$work/$dtype.log" | sed 's/^\[[^]]*\] //'
done
