#!/bin/bash
# Stop signals on one rank (`flywheel train` without a launcher; src/core/signals.h):
#   background_sigint  a run started in the background of this script (bash starts it with SIGINT
#                      ignored) gets SIGINT: the line "SIGINT: checkpointing at the next step
#                      boundary" comes at once, then the checkpoint and exit 75; the run resumes
#   sigterm_twice      two SIGTERMs 20 ms apart (Slurm's preemption delivers two) are one request: 75
#   second_sigint      SIGINT, then SIGINT again 1.5 s later in the middle of a long step: the run stops
#                      at once with exit 130, and the last committed checkpoint (step 1) verifies
#                      (flywheel-ckpt verify) and resumes
# and under jobs/mpirun.sh (2 ranks), as a terminal's Ctrl-C or a kill reaches it:
#   mpirun_sigint, mpirun_sigterm  every rank checkpoints and the job exits 75 (plain mpirun exits 1)
#   stop_signals.sh FLYWHEEL_BINARY FLYWHEEL_CKPT_BINARY SOURCE_DIR
set -u
flywheel=$1 ckpt=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 cases=0
fail() { echo "FAIL $name: $*"; grep -v "info\]" "$work/$name.err" | tail -8; failures=$((failures + 1)); }
ok() { echo "ok   $name: $*"; }
fast=(--shape "$src/configs/shapes/tiny-dense.ini" --model.n_layers=2 --train.micro_batch=8 --train.seq_len=16
      --train.checkpoint_every=0 --train.threads=1 --train.log_every=1000000 --train.out_dir="$work")
# A step of several seconds, so that a second signal 1.5 s after the first lands inside it.
slow=(--shape "$src/configs/shapes/tiny-dense.ini" --train.micro_batch=64 --train.seq_len=64 --train.grad_accum=6
      --train.checkpoint_every=1 --train.threads=1 --train.out_dir="$work")
start() {  # start NAME ARGS...: a background run into $work/NAME; sets pid
  name=$1
  shift
  cases=$((cases + 1))
  "$flywheel" train "$@" --train.run_name="$name" 2>"$work/$name.err" &
  pid=$!
}
# finish: the exit code of $pid into `code`; a run that ignores the signals is killed after 60 s (code 137),
# with its children (jobs/mpirun.sh's mpirun).
finish() {
  (sleep 60; pkill -KILL -P "$pid"; kill -KILL "$pid") >/dev/null 2>&1 &
  local watchdog=$!
  wait "$pid"
  code=$?
  kill "$watchdog" 2>/dev/null
}
steps_done() { [ -f "$work/$name/metrics.jsonl" ] && wc -l <"$work/$name/metrics.jsonl" || echo 0; }
has_steps() { [ "$(steps_done)" -ge "$1" ]; }
latest_is() { [ "$(cat "$work/$name/latest" 2>/dev/null)" = "$1" ]; }
until_true() {  # until_true SECONDS COMMAND...: COMMAND is run anew each time
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.05; done
}
resumes() { "$flywheel" train "$@" --train.run_name="$name" 2>&1 | grep -q "resumed from $work/$name/$(cat "$work/$name/latest")"; }

start background_sigint "${fast[@]}" --train.steps=1000000
until_true 60 has_steps 3 || fail "no progress"
kill -INT "$pid"
finish
at=$(grep -n "SIGINT: checkpointing at the next step boundary (a second signal stops at once)" "$work/$name.err" | cut -d: -f1)
step=$(sed -n 's/.*SIGINT: checkpointing step \([0-9]*\) and exiting.*/\1/p' "$work/$name.err")
if [ "$code" -ne 75 ]; then fail "exit $code, expected 75"
elif [ -z "$at" ] || [ -z "$step" ] || [ "$at" -gt "$(grep -n "checkpointing step" "$work/$name.err" | cut -d: -f1)" ]; then
  fail "no 'SIGINT: checkpointing at the next step boundary' line before the checkpoint"
elif [ "$(cat "$work/$name/latest")" != "$(printf step-%08d "$step")" ]; then fail "latest is not step $step"
elif ! resumes "${fast[@]}" --train.steps="$step"; then fail "the run does not resume from step $step"
else ok "SIGINT (ignored on entry) checkpointed step $step, exit 75, resumed"; fi

start sigterm_twice "${fast[@]}" --train.steps=1000000
until_true 60 has_steps 3 || fail "no progress"
kill -TERM "$pid"
sleep 0.02
kill -TERM "$pid"
finish
if [ "$code" -ne 75 ]; then fail "exit $code, expected 75"
elif ! grep -q "SIGTERM again within 1 s: the same stop request" "$work/$name.err"; then fail "no 'again within 1 s' line"
elif [ ! -f "$work/$name/latest" ]; then fail "no checkpoint"
else ok "two SIGTERMs 20 ms apart: one request, checkpointed $(cat "$work/$name/latest"), exit 75"; fi

start second_sigint "${slow[@]}" --train.steps=3
until_true 120 latest_is step-00000001 || fail "no checkpoint of step 1"
kill -INT "$pid"
sleep 1.5
if ! kill -0 "$pid" 2>/dev/null; then
  wait "$pid"
  fail "step 2 ended within 1.5 s of the first SIGINT: the test needs a longer step"
else
  t0=$(date +%s%N)
  kill -INT "$pid"
  finish
  ms=$((($(date +%s%N) - t0) / 1000000))
  if [ "$code" -ne 130 ]; then fail "exit $code, expected 130"
  elif [ "$ms" -gt 1000 ]; then fail "took $ms ms to stop after the second SIGINT"
  elif ! grep -q "SIGINT again: stopping at once; the last committed checkpoint is intact (exit 130)" "$work/$name.err"; then
    fail "no 'stopping at once' line"
  elif [ "$(cat "$work/$name/latest")" != step-00000001 ]; then fail "latest is $(cat "$work/$name/latest"), not step 1"
  elif ! "$ckpt" verify "$work/$name" --no-progress >"$work/$name.verify" 2>&1; then
    fail "step 1 does not verify: $(tail -3 "$work/$name.verify")"
  elif ! resumes "${slow[@]}" --train.steps=1; then fail "the run does not resume from step 1"
  else ok "a second SIGINT stopped the run in $ms ms, exit 130; step 1 intact and resumed"; fi
fi

# Open MPI's mpirun takes SIGINT and SIGTERM as "abort the job" (exit 1); jobs/mpirun.sh makes them a
# checkpoint request that mpirun forwards (SIGUSR1). 2 ranks, 2 runs: about 10 s.
for signal in INT TERM; do
  name=mpirun_sig${signal,,}
  cases=$((cases + 1))
  bash "$src/jobs/mpirun.sh" --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" train "${fast[@]}" \
    --mesh.fsdp=2 --train.steps=1000000 --train.run_name="$name" >"$work/$name.err" 2>&1 &
  pid=$!
  until_true 60 has_steps 3 || fail "no progress"
  kill -"$signal" "$pid"
  finish
  if [ "$code" -ne 75 ]; then fail "job exit $code, expected 75"
  elif [ "$(grep -c "checkpointing step [0-9]* and exiting" "$work/$name.err")" -ne 2 ]; then
    fail "not every rank checkpointed"
  elif ! grep -q "exit 75: the ranks checkpointed" "$work/$name.err"; then fail "no exit-75 line from jobs/mpirun.sh"
  elif ! "$ckpt" verify "$work/$name" --no-progress >"$work/$name.verify" 2>&1; then
    fail "the checkpoint does not verify: $(tail -3 "$work/$name.verify")"
  else ok "SIG$signal to jobs/mpirun.sh: both ranks checkpointed $(cat "$work/$name/latest"), job exit 75"; fi
done

echo "$((cases - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
