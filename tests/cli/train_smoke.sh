#!/bin/bash
# `flywheel train` end to end on the tiny shapes: progress lines, metrics.jsonl with one JSON line per
# step, the shape recorded in the run directory, and --help on every command.
#   train_smoke.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON
set -eu
flywheel=$1 src=$2 python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$flywheel" --help | grep -q "train --shape"
"$flywheel" train --help | grep -q "model.n_layers"
"$flywheel" train --help | grep -q "data.source"

for shape in tiny-dense tiny-moe; do
  "$flywheel" train --shape "$src/configs/shapes/$shape.ini" --train.steps=6 --train.out_dir="$work" \
    --train.run_name="$shape" 2>"$work/$shape.log"
  grep -E "step 6/6 \| loss [0-9.]+ \| lr [0-9.e+-]+ \| gnorm [0-9.]+ \| [0-9.]+k? tok/s \| ETA" "$work/$shape.log"
  # The run records the resolved shape: the file with the command-line overrides written in.
  grep -qx "steps = 6" "$work/$shape/shape.ini"
  grep -qx "run_name = $shape" "$work/$shape/shape.ini"
  "$python" - "$work/$shape/metrics.jsonl" <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["step"] for l in lines] == [1, 2, 3, 4, 5, 6], lines
for l in lines:
    for key in ("loss", "lr", "grad_norm", "tokens_per_second", "elapsed_seconds"):
        assert math.isfinite(l[key]), (key, l)
assert lines[-1]["loss"] < lines[0]["loss"], "loss did not fall in 6 steps"
print("metrics ok:", sys.argv[1], "loss", lines[0]["loss"], "->", lines[-1]["loss"])
PY
done

# Same shape, same seed: a second run reproduces the first bit for bit (loss curve and grad norms).
"$flywheel" train --shape "$src/configs/shapes/tiny-moe.ini" --train.steps=6 --train.out_dir="$work" \
  --train.run_name=again 2>/dev/null
"$python" - "$work/tiny-moe/metrics.jsonl" "$work/again/metrics.jsonl" <<'PY'
import json, sys
a, b = ([(l["loss"], l["grad_norm"]) for l in map(json.loads, open(p))] for p in sys.argv[1:3])
assert a == b, f"runs differ:\n{a}\n{b}"
print("rerun bit-identical:", len(a), "steps")
PY
echo "train smoke: 1 passed, 0 failed"
