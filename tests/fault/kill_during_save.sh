#!/bin/bash
# Hard failure in the middle of a checkpoint: rank 1 of 2 dies by SIGKILL right after writing its
# shard of step 8 (FLYWHEEL_FAULT_POINT, src/core/fault_point.h), before anything is committed.
# The job must end (no hang) with a non-zero code, leaving step 4 committed and step-8 only as
# .partial; the next launch resumes from step 4, removes the partial directory and finishes.
#   kill_during_save.sh FLYWHEEL_BINARY SOURCE_DIR
set -u
flywheel=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
run() {
  timeout 90 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" train \
    --shape "$src/configs/shapes/tiny-dense.ini" --mesh.fsdp=2 --model.n_layers=2 --train.micro_batch=8 \
    --train.seq_len=16 --train.steps=12 --train.checkpoint_every=4 --train.threads=1 \
    --train.out_dir="$work" --train.run_name=r
}
start=$(date +%s)
FLYWHEEL_FAULT_POINT=checkpoint.shard_written:1:8 run 2>"$work/first.log"
code=$?
elapsed=$(($(date +%s) - start))
[ "$code" -ne 0 ] && [ "$code" -ne 124 ] || fail "the job did not fail cleanly (exit $code)"
grep -q "fault point checkpoint.shard_written: SIGKILL to rank 1 at step 8" "$work/first.log" || fail "the fault did not fire"
[ "$elapsed" -le 60 ] || fail "the job took ${elapsed}s to end"
[ "$(cat "$work/r/latest")" = "step-00000004" ] || fail "latest should still name step 4"
[ -d "$work/r/step-00000008.partial" ] || fail "expected the interrupted save to leave step-00000008.partial"
[ ! -d "$work/r/step-00000008" ] || fail "step 8 was committed although a rank died while saving it"
echo "job ended in ${elapsed}s with exit $code; step 4 committed, step 8 left partial"

run 2>"$work/second.log" || fail "relaunch failed: $(tail -3 "$work/second.log")"
grep -q "resumed from .*step-00000004" "$work/second.log" || fail "relaunch did not resume from step 4"
[ ! -d "$work/r/step-00000008.partial" ] || fail "the partial directory was not removed"
[ "$(cat "$work/r/latest")" = "step-00000012" ] || fail "the relaunch did not finish"
echo "relaunch resumed from step 4, removed the partial directory and finished"
echo "1 passed, 0 failed"
