#!/bin/bash
# Preemption and bit-for-bit resume, on a 2-rank FSDP mesh under mpirun:
#   A: 12 steps straight.
#   B: the same run; at the boundary before step 7, rank 1 alone receives SIGUSR1 (what `sbatch
#      --signal=B:USR1@..` delivers; injected with FLYWHEEL_FAULT_POINT so it lands after exactly 6
#      steps). Both ranks must agree, checkpoint step 6 and exit with 75; relaunched unchanged, B
#      resumes and finishes: 6 + restart + 6. B's loss curve and final weights and AdamW moments must
#      equal A's bit for bit. (tests/slurm/preempt_requeue.sh sends a real signal through Slurm.)
#   preempt_resume.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON
set -u
flywheel=$1 src=$2 python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # run NAME: the same 12-step run into $work/NAME
  timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" train \
    --shape "$src/configs/shapes/tiny-dense.ini" --mesh.fsdp=2 --model.n_layers=2 --train.micro_batch=8 \
    --train.seq_len=16 --train.steps=12 --train.checkpoint_every=0 --train.threads=1 \
    --train.out_dir="$work" --train.run_name="$1"
}
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

run straight 2>"$work/straight.log" || fail "uninterrupted run failed: $(tail -3 "$work/straight.log")"

FLYWHEEL_FAULT_POINT=train.step:1:6:USR1 run preempted 2>"$work/first.log"
code=$?
[ "$code" -eq 75 ] || fail "preempted launch exited with $code, expected 75: $(tail -5 "$work/first.log")"
grep -q "SIGUSR1: checkpointing step 6" "$work/first.log" || fail "no preemption message: $(tail -5 "$work/first.log")"
[ "$(cat "$work/preempted/latest")" = "step-00000006" ] || fail "expected the checkpoint of step 6"
echo "first launch stopped after 6 steps with a checkpoint"

run preempted 2>"$work/second.log" || fail "resumed launch failed: $(tail -5 "$work/second.log")"
grep -q "resumed from" "$work/second.log" || fail "second launch did not resume"

"$python" - "$work/straight" "$work/preempted" <<'PY' || fail "resumed run differs from the uninterrupted run"
import json, sys
import h5py, numpy as np
a, b = sys.argv[1:3]
curve = lambda d: [(l["step"], l["loss"], l["grad_norm"]) for l in map(json.loads, open(d + "/metrics.jsonl"))]
assert curve(a) == curve(b), f"loss curves differ:\n{curve(a)}\n{curve(b)}"
fa, fb = (h5py.File(d + "/step-00000012/model.h5", "r") for d in (a, b))
count = 0
for group in ("weight", "adam_m", "adam_v"):
    for name in fa[group]:
        x, y = fa[group][name][()], fb[group][name][()]
        assert x.tobytes() == y.tobytes(), f"{group}/{name} differs: max |diff| {np.abs(x - y).max()}"
        count += 1
print(f"loss curve ({len(curve(a))} steps) and {count} tensors (weights, Adam m, v) bit-identical")
PY
echo "1 passed, 0 failed"
