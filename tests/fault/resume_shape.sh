#!/bin/bash
# A resume whose shape differs from the run's (src/train/resume_guard.cpp, src/train/shape_change.cpp):
#   1. run r finishes 8 steps. Resubmitted with another train.lr it is refused (exit 1), the message
#      naming the key with its old and new value, and no file of the run directory changes.
#   2. resubmitted unchanged, it says there is nothing to train.
#   3. resubmitted with train.steps = 12 it trains on, says how that stretches the learning-rate
#      schedule, and shape.ini records steps = 12.
#   4. resubmitted on another mesh (2 ranks, fsdp 2) it trains on, logs the [mesh] change, and
#      shape.ini records fsdp = 2.
#   5. without shape.ini, a changed key is still refused, by the shape text in the checkpoint's state.h5.
#   resume_shape.sh FLYWHEEL_BINARY SOURCE_DIR
set -u
flywheel=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
r="$work/runs/r"
args=(--shape "$src/configs/shapes/tiny-dense.ini" --model.n_layers=2 --train.seq_len=16 --train.micro_batch=8
      --train.threads=1 --train.checkpoint_every=4 --train.out_dir="$work/runs" --train.run_name=r)
train() {  # train LOG ARGS...: one rank
  local log=$1
  shift
  timeout 120 "$flywheel" train "${args[@]}" "$@" 2>"$work/$log"
}
listing() { (cd "$r" && find . -type f ! -name .lock | sort | xargs md5sum); }
metrics_lines() { wc -l <"$r/metrics.jsonl"; }

train first.log --train.steps=8 || fail "first run failed: $(tail -3 "$work/first.log")"

# ---- 1. a changed learning rate is refused ----------------------------------------------------------
listing >"$work/before"
train lr.log --train.steps=8 --train.lr=1e-3
code=$?
[ "$code" -eq 1 ] || fail "a resume with another train.lr exited $code, expected 1: $(tail -3 "$work/lr.log")"
grep -q "cannot resume run directory $r: the shape differs from the one the run was trained with ($r/shape.ini)" \
  "$work/lr.log" || fail "the refusal does not say what differs from what: $(tail -5 "$work/lr.log")"
grep -qx "  train.lr: 3e-3 -> 1e-3" "$work/lr.log" || fail "the refusal does not list train.lr: $(tail -5 "$work/lr.log")"
grep -q "A resume may change only: every \[mesh\] key, train.steps," "$work/lr.log" || fail "the refusal does not say what is allowed"
listing | cmp -s - "$work/before" || fail "the refused resume changed the run directory: $(listing | diff - "$work/before")"
echo "ok   a resume with train.lr 3e-3 -> 1e-3 was refused, naming the key, and changed nothing"

# ---- 2. a finished run resubmitted unchanged ------------------------------------------------------------
train same.log --train.steps=8 || fail "the unchanged resubmission failed: $(tail -3 "$work/same.log")"
grep -q "already holds all train.steps = 8 steps: nothing to train" "$work/same.log" ||
  fail "the unchanged resubmission did not say there is nothing to train: $(tail -3 "$work/same.log")"
echo "ok   the finished run resubmitted unchanged says there is nothing to train"

# ---- 3. raising train.steps --------------------------------------------------------------------------
train steps.log --train.steps=12 || fail "the resume with train.steps = 12 failed: $(tail -3 "$work/steps.log")"
grep -q "resuming with train.steps: 8 -> 12: the learning-rate schedule (warmup 20 steps, then cosine down to train.steps) stretches to the new length: step 9 runs at lr " \
  "$work/steps.log" || fail "no word on the stretched schedule: $(grep warn "$work/steps.log")"
grep -qx "steps = 12" "$r/shape.ini" || fail "shape.ini does not record steps = 12: $(grep steps "$r/shape.ini")"
[ "$(metrics_lines)" -eq 12 ] || fail "metrics.jsonl has $(metrics_lines) lines after 12 steps"
echo "ok   train.steps 8 -> 12: the stretched schedule was logged and shape.ini records it"

# ---- 4. another mesh -----------------------------------------------------------------------------------
timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" train "${args[@]}" \
  --train.steps=16 --mesh.fsdp=2 2>"$work/mesh.log" || fail "the resume on fsdp 2 failed: $(tail -3 "$work/mesh.log")"
grep -q "resuming with mesh.fsdp: 1 -> 2 (a resume may change it; shape.ini records the new shape)" "$work/mesh.log" ||
  fail "the mesh change was not logged: $(grep warn "$work/mesh.log")"
grep -qx "fsdp = 2" "$r/shape.ini" || fail "shape.ini does not record fsdp = 2: $(grep fsdp "$r/shape.ini")"
[ "$(metrics_lines)" -eq 16 ] || fail "metrics.jsonl has $(metrics_lines) lines after 16 steps"
echo "ok   the resume on fsdp 2 trained on; shape.ini records the new mesh"

# ---- 5. the checkpoint's own shape text ------------------------------------------------------------------
rm "$r/shape.ini"
listing >"$work/before"
train decay.log --train.steps=16 --train.weight_decay=0.5
[ $? -eq 1 ] || fail "a resume with another train.weight_decay (no shape.ini) was not refused: $(tail -3 "$work/decay.log")"
grep -q "the shape differs from the one the run was trained with ($r/step-00000016/state.h5)" "$work/decay.log" &&
  grep -qx "  train.weight_decay: 0.0 -> 0.5" "$work/decay.log" || fail "the refusal by state.h5: $(tail -4 "$work/decay.log")"
listing | cmp -s - "$work/before" || fail "the refused resume changed the run directory: $(listing | diff - "$work/before")"
echo "ok   without shape.ini, the checkpoint's shape text refused train.weight_decay 0.0 -> 0.5"
echo "5 passed, 0 failed"
