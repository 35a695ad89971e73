#!/bin/bash
# A `latest` that names an older step than newer committed steps (src/train/resume_guard.cpp), and
# flywheel-ckpt rollback, the explicit way to choose:
#   1. run r commits steps 4, 8, 12; `latest` is rewritten to step 4. A resume refuses (exit 1)
#      naming the steps and both rollback commands, and changes no file of the run directory.
#   2. `rollback --step 4` moves steps 8 and 12 (and a copy of metrics.jsonl) into rolled-back-<time>/;
#      the resume then trains from step 4 again, and the steps it re-saves equal the moved ones.
#   3. `latest` rewritten to step 8: refused again; `rollback --step 12` only rewrites `latest`, and
#      the run resumes from step 12.
#   4. rollback is refused while a job holds the run directory, and on bad input.
#   latest_rollback.sh FLYWHEEL_BINARY FLYWHEEL_CKPT_BINARY SOURCE_DIR
set -u
flywheel=$1 ckpt=$2 src=$3
work=$(mktemp -d)
job=
trap '[ -n "$job" ] && kill -9 "$job" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
r="$work/runs/r"
args=(--shape "$src/configs/shapes/tiny-dense.ini" --model.n_layers=2 --train.seq_len=16 --train.micro_batch=8
      --train.threads=1 --train.keep_last=0 --train.out_dir="$work/runs" --train.run_name=r)
train() {  # train STEPS LOG: checkpoints every 4 steps
  timeout 120 "$flywheel" train "${args[@]}" --train.checkpoint_every=4 --train.steps="$1" 2>"$work/$2"
}
listing() { (cd "$r" && find . -type f ! -name .lock | sort | xargs md5sum); }

# ---- 1. refused, nothing touched ------------------------------------------------------------------
train 12 first.log || fail "first run failed: $(tail -3 "$work/first.log")"
echo step-00000004 >"$r/latest"
listing >"$work/before"
train 16 refused.log
code=$?
[ "$code" -eq 1 ] || fail "a resume with latest = step 4 before steps 8, 12 exited $code, expected 1: $(tail -3 "$work/refused.log")"
grep -q "latest. names step 4, but step(s) 8, 12 are committed after it" "$work/refused.log" ||
  fail "the refusal does not name the steps: $(tail -1 "$work/refused.log")"
grep -q "flywheel-ckpt rollback $r --step 12 .*flywheel-ckpt rollback $r --step 4" "$work/refused.log" ||
  fail "the refusal does not give both rollback commands: $(tail -1 "$work/refused.log")"
listing | cmp -s - "$work/before" || fail "the refused resume changed the run directory: $(listing | diff - "$work/before")"
echo "ok   latest older than steps 8, 12: the resume was refused, naming them, and changed nothing"

# ---- 2. roll back on purpose --------------------------------------------------------------------------
"$ckpt" rollback "$r" --step 4 --no-progress >"$work/rollback.out" 2>&1 || fail "rollback --step 4 failed: $(cat "$work/rollback.out")"
aside=$(ls -d "$r"/rolled-back-* 2>/dev/null)
[ -n "$aside" ] && [ -d "$aside/step-00000008" ] && [ -d "$aside/step-00000012" ] ||
  fail "steps 8 and 12 were not moved into rolled-back-<time>/: $(ls "$r")"
[ ! -e "$r/step-00000008" ] && [ "$(cat "$r/latest")" = step-00000004 ] || fail "rollback left $(ls "$r"), latest $(cat "$r/latest")"
[ "$(wc -l <"$aside/metrics.jsonl")" -eq 12 ] || fail "rolled-back metrics.jsonl does not hold the 12 steps"
train 12 again.log || fail "the resume after the rollback failed: $(tail -3 "$work/again.log")"
grep -q "resumed from .*step-00000004" "$work/again.log" || fail "the resume after the rollback did not start from step 4"
"$ckpt" diff "$aside:12" "$r:12" --moments --fail-above 0 --no-progress >"$work/diff.out" 2>&1 ||
  fail "the re-trained step 12 differs from the rolled-back one: $(tail -3 "$work/diff.out")"
echo "ok   rollback --step 4 moved steps 8, 12 aside; the resume re-trained them bit for bit"

# ---- 3. continue from the newest ------------------------------------------------------------------------
echo step-00000008 >"$r/latest"
train 16 refused2.log
[ $? -eq 1 ] || fail "a resume with latest = step 8 before step 12 was not refused"
"$ckpt" rollback "$r" --step 12 --no-progress >"$work/newest.out" 2>&1 || fail "rollback --step 12 failed: $(cat "$work/newest.out")"
grep -q "latest: step-00000012 (was step-00000008)" "$work/newest.out" || fail "rollback --step 12 said: $(cat "$work/newest.out")"
[ "$(ls -d "$r"/rolled-back-* | wc -l)" -eq 1 ] || fail "rollback to the newest step moved something aside"
train 16 newest.log || fail "the resume from the newest step failed: $(tail -3 "$work/newest.log")"
grep -q "resumed from .*step-00000012" "$work/newest.log" || fail "the resume did not start from step 12"
echo "ok   rollback --step 12 (the newest) only rewrote latest; the run resumed from step 12"

# ---- 4. refused while a job holds the run, and on bad input --------------------------------------------
"$flywheel" train "${args[@]}" --train.checkpoint_every=0 --train.steps=1000000 2>"$work/live.log" &
job=$!
for _ in $(seq 1 300); do grep -q "resumed from" "$work/live.log" && break; sleep 0.1; done
grep -q "resumed from" "$work/live.log" || fail "the live job did not resume: $(tail -3 "$work/live.log")"
"$ckpt" rollback "$r" --step 4 --no-progress >"$work/live.out" 2>&1
code=$?
kill -9 "$job"
wait "$job" 2>/dev/null
job=
[ "$code" -eq 1 ] && grep -q "run directory $r is in use by a job: pid" "$work/live.out" ||
  fail "rollback during a live job exited $code: $(cat "$work/live.out")"
[ -d "$r/step-00000012" ] || fail "the refused rollback moved a step"
"$ckpt" rollback "$r" >"$work/usage.out" 2>&1
[ $? -eq 2 ] && grep -q "missing --step N" "$work/usage.out" || fail "rollback without --step: $(cat "$work/usage.out")"
"$ckpt" rollback "$r" --step 6 >"$work/bad.out" 2>&1
[ $? -eq 1 ] && grep -q "step 6 is not a committed checkpoint in .*committed steps: 4, 8, 12, 16" "$work/bad.out" ||
  fail "rollback to an uncommitted step: $(cat "$work/bad.out")"
echo "ok   rollback refused while a job holds the run directory, and for a missing or uncommitted step"
echo "4 passed, 0 failed"
