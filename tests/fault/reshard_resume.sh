#!/bin/bash
# A checkpoint written by one mesh resumes on another: a run on pp2 x fsdp2 (4 ranks) is preempted
# (SIGUSR1 -> checkpoint, exit 75) and relaunched on a single rank, which loads the 4-rank shards into
# whole tensors and trains on. Its losses after the resume and its final weights must match an
# uninterrupted pp2 x fsdp2 run within the mesh tolerances of tests/mpi/mesh_parity.cpp (loss 1e-5
# relative, weights 2e-5 absolute): the meshes sum gradients in different orders, nothing more.
# Any further arguments are shape overrides for every launch (fault.reshard_resume_lora: LoRA adapters on a frozen
# base, whose checkpoint holds moments for the adapters only).
#   reshard_resume.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON [--section.key=value ...]
set -u
flywheel=$1 src=$2 python=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
common=(--shape "$src/configs/shapes/tiny-moe.ini" --model.n_layers=2 --train.micro_batch=8 --train.seq_len=16
        --train.grad_accum=2 --train.steps=12 --train.checkpoint_every=0 --train.threads=1 --train.out_dir="$work" "$@")
mesh4() {
  timeout 150 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 4 "$flywheel" train "${common[@]}" \
    --mesh.pp=2 --mesh.fsdp=2 --mesh.ep=2 --train.run_name="$1"
}

mesh4 straight 2>"$work/straight.log" || fail "uninterrupted 4-rank run failed: $(tail -3 "$work/straight.log")"

mesh4 moved 2>"$work/first.log" &
for _ in $(seq 1 900); do
  [ -f "$work/moved/metrics.jsonl" ] && [ "$(wc -l <"$work/moved/metrics.jsonl")" -ge 3 ] && break
  sleep 0.1
done
pkill -USR1 -f "^mpirun .*--train.run_name=moved"
wait $!
code=$?
[ "$code" -eq 75 ] || fail "preempted 4-rank launch exited with $code, expected 75: $(tail -3 "$work/first.log")"
stopped=$(cat "$work/moved/latest")
[ "$stopped" != "step-00000012" ] || fail "the signal arrived too late"

timeout 150 "$flywheel" train "${common[@]}" --train.run_name=moved 2>"$work/second.log" ||
  fail "1-rank relaunch failed: $(tail -3 "$work/second.log")"
grep -q "resumed from .*written by 4 ranks" "$work/second.log" || fail "the 1-rank launch did not resume the 4-rank checkpoint"
echo "4-rank run stopped at $stopped; resumed and finished on 1 rank"

"$python" - "$work/straight" "$work/moved" "${stopped#step-}" <<'PY' || fail "the resumed run diverged"
import json, sys
import h5py, numpy as np
a, b, stopped = sys.argv[1], sys.argv[2], int(sys.argv[3])
la, lb = ({l["step"]: l["loss"] for l in map(json.loads, open(d + "/metrics.jsonl"))} for d in (a, b))
assert sorted(la) == sorted(lb) == list(range(1, 13)), "missing steps"
worst_loss = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la if s > stopped)
fa, fb = (h5py.File(d + "/step-00000012/model.h5", "r") for d in (a, b))
worst_w = max(float(np.abs(fa["weight"][n][()] - fb["weight"][n][()]).max()) for n in fa["weight"])
print(f"after the resume: worst loss difference {worst_loss:.3g} (tol 1e-5), worst weight difference {worst_w:.3g} (tol 2e-5)")
assert worst_loss <= 1e-5 and worst_w <= 2e-5
PY
echo "1 passed, 0 failed"
