#!/bin/bash
# flywheel eval: a tiny SFT run on 1-digit addition checkpointed at steps 30 and 60, evaluated on the
# task's held-out stream and on a held-out JSONL. The later step must answer more held-out problems
# right and have a lower loss; the JSON lines and the text lines must agree; bad requests (a step that
# is not committed, a missing run, a non-positive count) fail naming what was wrong.
#   eval.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON
set -u
flywheel=$1 src=$2 python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$flywheel" train --shape "$src/configs/shapes/tiny-dense.ini" --train.steps=60 --train.checkpoint_every=30 \
  --data.task_max_digits=1 --train.threads=2 --train.out_dir="$work" --train.run_name=r >"$work/train.log" 2>&1 ||
  fail "training failed: $(tail -3 "$work/train.log")"
"$python" - "$work/held_out.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for a in range(10):
        f.write(json.dumps({"prompt": f"{a}+{a}=", "completion": str(2 * a)}) + "\n")
PY

"$flywheel" eval --run "$work/r" --data "$work/held_out.jsonl" --examples 100 --json "$work/eval.jsonl" \
  2>"$work/eval.log" || fail "eval failed: $(tail -3 "$work/eval.log")"
grep -qE "^step 60 \| addition accuracy [0-9.]+ \([0-9]+ / 100 held-out\) \| .*held_out.jsonl loss [0-9.]+ over 25 tokens" \
  "$work/eval.log" || fail "no text line for step 60: $(cat "$work/eval.log")"
"$python" - "$work/eval.jsonl" <<'PY' || fail "the evaluation does not show the learning"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == [30, 60], rows
for r in rows:
    assert r["task"] == "addition" and r["examples"] == 100 and r["accuracy"] == r["correct"] / 100, r
    assert r["loss_tokens"] == 25, r  # one or two answer digits + EOS per example
early, late = rows
assert late["accuracy"] > early["accuracy"] and late["loss"] < early["loss"], rows
print(f"eval: accuracy {early['accuracy']:.2f} -> {late['accuracy']:.2f}, loss {early['loss']:.3f} -> {late['loss']:.3f}")
PY

expect_error() {  # expect_error TEXT ARGS...: eval fails and says TEXT
  local text=$1
  shift
  if "$flywheel" eval "$@" >"$work/bad.log" 2>&1; then fail "eval $* succeeded"; fi
  grep -q -- "$text" "$work/bad.log" || fail "eval $*: no '$text' in: $(tail -2 "$work/bad.log")"
}
expect_error "step 45 is not a committed checkpoint" --run "$work/r" --step 45
expect_error "shape file '$work/none/shape.ini' does not exist" --run "$work/none"
expect_error "examples = 0: needs a positive number" --run "$work/r" --examples 0
expect_error "unknown task" --run "$work/r" --task nothing
echo "eval: ok"
