#!/bin/bash
# DPO end to end (`flywheel train` with train.objective = dpo):
#   1. SFT 10 steps on addition (run "sft").
#   2. DPO from that run's weights (train.init_from) on 2 ranks (fsdp2): pairs whose chosen answer is
#      the right sum and whose rejected one is off by one. At the first step policy = reference, so
#      the loss is exactly ln 2 (to float rounding); over the last 5 of 30 steps the mean loss is
#      below 0.55 (from 0.693) and the implicit reward ranks the chosen side first for at least 80% of the pairs.
#   3. The same DPO run preempted after 12 steps and relaunched: it reloads its saved reference and
#      ends bit-identical to run 2.
#   4. LoRA DPO (rank 16, all-linear) on the SFT run as the frozen base: the reference is the base itself
#      (adapters off; no reference copy saved), the first loss is ln 2 (B = 0: policy = base), and the
#      adapters alone learn the preferences (mean loss of the last 5 of 60 steps < 0.55, accuracy >= 0.8).
#   dpo.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON
set -u
flywheel=$1 src=$2 python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
common=(--shape "$src/configs/shapes/tiny-dense.ini" --model.n_layers=2 --train.seq_len=16 --train.threads=1
        --train.out_dir="$work" --data.task_max_digits=1)

"$python" - "$work/pairs.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for a in range(4):
        for b in range(4):
            f.write(json.dumps({"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 1)}) + "\n")
PY

timeout 120 mpirun --allow-run-as-root -n 1 "$flywheel" train "${common[@]}" --train.steps=10 --train.micro_batch=16 \
  --train.run_name=sft >"$work/sft.log" 2>&1 || fail "SFT run failed: $(tail -3 "$work/sft.log")"

dpo() {  # dpo NAME: DPO from the SFT run on 2 ranks
  timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" train "${common[@]}" \
    --mesh.fsdp=2 --train.objective=dpo --data.source="jsonl:$work/pairs.jsonl" --train.init_from="$work/sft" \
    --train.steps=30 --train.micro_batch=8 --train.lr=3e-3 --train.warmup_steps=2 --train.checkpoint_every=0 \
    --rl.dpo_beta=0.5 --train.run_name="$1" >>"$work/$1.log" 2>&1
}
dpo straight || fail "DPO run failed: $(tail -5 "$work/straight.log")"
grep -q "starting from the weights of $work/sft" "$work/straight.log" || fail "init_from not applied"

"$python" - "$work/straight/metrics.jsonl" <<'PY' || fail "DPO did not learn the preferences"
import json, math, sys
m = [json.loads(l) for l in open(sys.argv[1])]
first, tail = m[0], m[-5:]   # the last 5 steps see 20 of the 16 pairs: every pair at least once
assert abs(first["loss"] - math.log(2)) < 1e-6, f"first loss {first['loss']} != ln 2 (policy should equal reference)"
assert first["reward_margin"] == 0.0, first
loss = sum(r["loss"] for r in tail) / 5
accuracy = sum(r["accuracy"] for r in tail) / 5
assert loss < 0.55 and accuracy >= 0.8, (loss, accuracy, tail[-1])
print(f"DPO: loss {first['loss']:.6f} -> {loss:.4f} (mean of the last 5 steps), accuracy {accuracy:.2f}")
PY

FLYWHEEL_FAULT_POINT=train.step:0:12:USR1 dpo preempted
code=$?
[ "$code" -eq 75 ] || fail "preempted DPO run exited $code, expected 75: $(tail -3 "$work/preempted.log")"
dpo preempted || fail "relaunched DPO run failed: $(tail -3 "$work/preempted.log")"
"$python" - "$work/straight" "$work/preempted" <<'PY' || fail "resumed DPO run differs from the uninterrupted one"
import json, sys
import h5py, numpy as np
a, b = sys.argv[1:3]
curve = lambda d: [(r["step"], r["loss"], r["accuracy"]) for r in map(json.loads, open(d + "/metrics.jsonl"))]
assert curve(a) == curve(b), "curves differ"
fa, fb = (h5py.File(d + "/step-00000030/model.h5", "r") for d in (a, b))
for name in fa["weight"]:
    assert np.array_equal(fa["weight"][name][()], fb["weight"][name][()]), name
print("resumed DPO run equals the uninterrupted one")
PY
timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" train "${common[@]}" \
  --mesh.fsdp=2 --train.objective=dpo --data.source="jsonl:$work/pairs.jsonl" --train.init_from="$work/sft" \
  --train.steps=60 --train.micro_batch=8 --train.lr=5e-3 --train.warmup_steps=2 --train.checkpoint_every=0 \
  --rl.dpo_beta=0.5 --lora.rank=16 --lora.alpha=32 --train.run_name=lora >"$work/lora.log" 2>&1 ||
  fail "LoRA DPO run failed: $(tail -5 "$work/lora.log")"
grep -q "starting from the weights of $work/sft step 10 as the frozen base (new adapters)" "$work/lora.log" ||
  fail "LoRA init_from did not load the base: $(grep info "$work/lora.log" | head -3)"
grep -q "reference: the base (adapters off)" "$work/lora.log" || fail "LoRA DPO does not name its reference"
[ ! -e "$work/lora/reference" ] || fail "LoRA DPO saved a reference copy; its reference is the base"
"$python" - "$work/lora/metrics.jsonl" <<'PY' || fail "LoRA DPO did not learn the preferences"
import json, math, sys
m = [json.loads(l) for l in open(sys.argv[1])]
first, tail = m[0], m[-5:]
assert abs(first["loss"] - math.log(2)) < 1e-6, f"first loss {first['loss']} != ln 2 (B = 0: policy = base = reference)"
loss = sum(r["loss"] for r in tail) / 5
accuracy = sum(r["accuracy"] for r in tail) / 5
assert loss < 0.55 and accuracy >= 0.8, (loss, accuracy, tail[-1])
print(f"LoRA DPO: loss {first['loss']:.6f} -> {loss:.4f} (mean of the last 5 steps), accuracy {accuracy:.2f}")
PY
echo "PASS"
