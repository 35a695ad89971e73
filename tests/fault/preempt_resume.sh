#!/bin/bash
# Preemption and bit-for-bit resume, on a 2-rank FSDP mesh under mpirun:
#   A: 12 steps straight.
#   B: the same run, sent SIGUSR1 (what `sbatch --signal=B:USR1@..` delivers) after a few steps: it must
#      checkpoint at the next step boundary and exit with 75; relaunched unchanged it resumes and
#      finishes. B's loss curve and final weights and AdamW moments must equal A's bit for bit.
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

run preempted 2>"$work/first.log" &
launcher=$!
for _ in $(seq 1 600); do  # wait (up to 60 s) until 3 steps are done
  [ -f "$work/preempted/metrics.jsonl" ] && [ "$(wc -l <"$work/preempted/metrics.jsonl")" -ge 3 ] && break
  sleep 0.1
done
# Signal mpirun (under the subshell and `timeout`); it forwards SIGUSR1 to the ranks.
pkill -USR1 -f "^mpirun .*--train.out_dir=$work --train.run_name=preempted"
wait "$launcher"
code=$?
[ "$code" -eq 75 ] || fail "preempted launch exited with $code, expected 75: $(tail -5 "$work/first.log")"
grep -q "SIGUSR1: checkpointing step" "$work/first.log" || fail "no preemption message: $(tail -5 "$work/first.log")"
stopped=$(cat "$work/preempted/latest")
echo "first launch stopped with $stopped"
[ "$stopped" != "step-00000012" ] || fail "the signal arrived too late to test a resume"

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
