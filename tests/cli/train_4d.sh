#!/bin/bash
# `flywheel train` on the 4D mesh (configs/shapes/tiny-moe-4d.ini: pp 2 x fsdp 2 x cp 2, ep 2; 8
# ranks): the run completes, metrics.jsonl has one line per step with finite values, and the loss falls.
# Exactness against one rank is mesh_parity's job (mpi.mesh_parity.moe.pp2_fsdp2_cp2_ep2); this is
# the user's command line end to end.
#   train_4d.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON [STEPS]
set -eu
flywheel=$1 src=$2 python=$3 steps=${4:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

start=$(date +%s)
mpirun --allow-run-as-root --oversubscribe --bind-to none -n 8 -x OMP_NUM_THREADS=1 \
  "$flywheel" train --shape "$src/configs/shapes/tiny-moe-4d.ini" --train.steps="$steps" \
  --train.out_dir="$work" --train.run_name=4d 2>"$work/stderr" || { tail -30 "$work/stderr"; exit 1; }
echo "8 ranks, $steps steps: $(($(date +%s) - start)) s"
grep -m1 "discovery:" "$work/stderr" || true
grep -E "step $steps/$steps \| loss" "$work/stderr"
"$python" - "$work/4d/metrics.jsonl" "$steps" <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
steps = int(sys.argv[2])
assert [l["step"] for l in lines] == list(range(1, steps + 1)), [l["step"] for l in lines]
for l in lines:
    for key in ("loss", "ce_loss", "aux_loss", "lr", "grad_norm", "tokens_per_second"):
        assert math.isfinite(l[key]), (key, l)
losses = [l["loss"] for l in lines]
assert losses[-1] < losses[0], f"loss did not fall: {losses}"
print("metrics ok: loss", " ".join(f"{x:.4f}" for x in losses))
PY
echo "train 4d: 1 passed, 0 failed"
