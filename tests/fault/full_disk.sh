#!/bin/bash
# A full disk during a checkpoint: the save fails cleanly with a message and exit 74, the previous
# checkpoint stays committed and loadable, and after space is freed the next launch resumes from it and
# finishes. Uses a 16 MiB tmpfs of its own (needs root; skipped with code 77 when mounting is refused).
#   full_disk.sh FLYWHEEL_BINARY SOURCE_DIR
set -u
flywheel=$1 src=$2
mnt=$(mktemp -d)
cleanup() { umount "$mnt" 2>/dev/null; rmdir "$mnt"; }
trap cleanup EXIT
mount -t tmpfs -o size=16m tmpfs "$mnt" 2>/dev/null || { echo "cannot mount a tmpfs here: skipped"; exit 77; }
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

run() {
  timeout 120 "$flywheel" train --shape "$src/configs/shapes/tiny-dense.ini" --model.n_layers=2 \
    --train.micro_batch=8 --train.seq_len=16 --train.steps=8 --train.checkpoint_every=4 --train.threads=1 \
    --train.out_dir="$mnt/runs" --train.run_name=r
}
# One checkpoint of this model is ~5.5 MiB: leave room for one, not two.
head -c $((6 * 1024 * 1024)) /dev/zero >"$mnt/filler"

run 2>"$mnt/first.log"
code=$?
[ "$code" -eq 74 ] || fail "expected exit 74 from the failed save, got $code: $(tail -3 "$mnt/first.log")"
grep -q "checkpoint of step 8 failed" "$mnt/first.log" || fail "no clear save error: $(tail -3 "$mnt/first.log")"
grep -q "previous checkpoint is intact" "$mnt/first.log" || fail "the message does not say what survived"
[ "$(cat "$mnt/runs/r/latest")" = "step-00000004" ] || fail "latest does not name the previous step"
[ -f "$mnt/runs/r/step-00000004/state.h5" ] || fail "the previous checkpoint is gone"
[ ! -d "$mnt/runs/r/step-00000008" ] || fail "a half-written step 8 was committed"
echo "save failed cleanly: $(grep -o 'checkpoint of step 8 failed.*' "$mnt/first.log" | head -c 200)"

rm "$mnt/filler"
run 2>"$mnt/second.log" || fail "relaunch after freeing space failed: $(tail -3 "$mnt/second.log")"
grep -q "resumed from .*step-00000004" "$mnt/second.log" || fail "relaunch did not resume from step 4"
[ "$(cat "$mnt/runs/r/latest")" = "step-00000008" ] || fail "relaunch did not commit step 8"
ls "$mnt/runs/r" | grep -q partial && fail "a .partial directory was left behind"
echo "relaunch resumed from step 4 and committed step 8"
echo "1 passed, 0 failed"
