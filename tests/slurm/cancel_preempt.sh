#!/bin/bash
# Preemption and cancellation end differently (a one-node loopback cluster, tools/slurm-local.sh):
# jobs/slurm/train.sbatch, submitted from a directory outside the repository with a repository-relative
# shape and no FLYWHEEL_BIN / FLYWHEEL_ROOT, finds the binary, the shape and checkpoints/ from the
# script's own location (a copy of the repository's job scripts with a build/flywheel link in it);
#   preempted (a job in the `urgent` partition needs the node): the ranks get SIGTERM, checkpoint and
#     exit 75; the job does not requeue itself, Slurm does (PreemptMode=REQUEUE); it resumes;
#   then cancelled (plain scancel): the ranks checkpoint and exit 75, and the job ends, CANCELLED,
#     without coming back.
# Also tools/slurm-local.sh: `status` uses $SLURM_CONF's cluster, explains a missing SLURM_CONF, and
# `stop` keeps the logs.
#   cancel_preempt.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON
set -u
flywheel=$1 src=$2 python=$3
work=$(mktemp -d) log=
fail() { echo "FAIL: $*"; echo "--- job log"; tail -25 "$log" 2>/dev/null; echo "0 passed, 1 failed"; exit 1; }
. "$src/tests/slurm/cluster.sh"
trap 'stop_cluster "$src"; rm -rf "$work"' EXIT
start_cluster "$src" "$python" || fail "could not start the local Slurm cluster"
# tools/slurm-local.sh: `status` without DIR finds the cluster of $SLURM_CONF; without SLURM_CONF it
# says that Slurm commands in this shell miss the cluster, and why.
bash "$src/tools/slurm-local.sh" status >"$work/status" 2>&1 || fail "status: $(cat "$work/status")"
grep -q "cluster in $work/cluster (from SLURM_CONF)" "$work/status" || fail "status did not use SLURM_CONF's cluster"
env -u SLURM_CONF bash "$src/tools/slurm-local.sh" status "$work/cluster" >"$work/status" 2>&1
grep -q "DNS SRV lookup failed.*export SLURM_CONF=$work/cluster/slurm.conf" "$work/status" ||
  fail "status does not explain a missing SLURM_CONF: $(cat "$work/status")"

repo="$work/repo"
mkdir -p "$repo/jobs" "$repo/build" "$work/elsewhere"
cp -r "$src/jobs/slurm" "$repo/jobs/"
ln -s "$src/configs" "$repo/configs"
ln -s "$(readlink -f "$flywheel")" "$repo/build/flywheel"
job=$(cd "$work/elsewhere" && env -u FLYWHEEL_BIN -u FLYWHEEL_ROOT FLYWHEEL_RUN_NAME=r \
      sbatch --parsable -n 2 --oversubscribe "$repo/jobs/slurm/train.sbatch" configs/shapes/tiny-dense.ini \
      --mesh.fsdp=2 --model.n_layers=2 --train.micro_batch=8 --train.seq_len=16 --train.steps=1000000 \
      --train.checkpoint_every=0 --train.threads=1 --train.log_every=1000000)
[ -n "$job" ] || fail "sbatch failed"
log="$work/elsewhere/flywheel-train-$job.log"
run="$repo/checkpoints/r"
progress() {  # progress LINES SECONDS: until metrics.jsonl has LINES lines
  local deadline=$((SECONDS + $2))
  until [ -f "$run/metrics.jsonl" ] && [ "$(wc -l <"$run/metrics.jsonl")" -ge "$1" ]; do
    [ $SECONDS -lt $deadline ] || fail "job $job made no progress (wanted $1 steps in $run)"
    [ -n "$(squeue -h -j "$job" -o %T)" ] || fail "job $job ended before $1 steps"
    sleep 0.2
  done
}
progress 3 120
grep -q "binary $repo/build/flywheel" "$log" || fail "the job did not find build/flywheel from the script's location"
echo "job $job runs from $work/elsewhere with the repository's binary, shape and checkpoints/"

urgent=$(sbatch --parsable -p urgent --exclusive -n 1 -o /dev/null --wrap "sleep 1")
[ -n "$urgent" ] || fail "sbatch of the urgent job failed"
wait_state "$job" PENDING 60
scontrol update JobId="$job" StartTime=now  # a requeued job waits ~2 min for its BeginTime otherwise
grep -q "checkpointed after a signal: not requeueing" "$log" || fail "no 'not requeueing' message after preemption"
wait_state "$job" RUNNING 60
progress "$(($(wc -l <"$run/metrics.jsonl") + 3))" 120
grep -q "restart 1" "$log" || fail "the preempted job did not run again (restart 1)"
grep -q "resumed from $run/step-" "$log" || fail "the requeued job did not resume"
[ "$(grep -c "requeueing job" "$log")" -eq 0 ] || fail "the script requeued the job itself after a SIGTERM"
echo "preempted: checkpointed, requeued by Slurm (not by the script), resumed"

saved=$(cat "$run/latest")
scancel "$job"
wait_state "$job" "" 90
sleep 3
[ -z "$(squeue -h -j "$job" -o %T)" ] || fail "job $job came back after scancel"
state=$(scontrol show job "$job" | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p')
[ "$state" = CANCELLED ] || fail "job $job ended $state, expected CANCELLED"
[ "$(cat "$run/latest")" != "$saved" ] || fail "no checkpoint was written at the cancel"
[ "$(grep -c "checkpointed after a signal: not requeueing" "$log")" -eq 2 ] ||
  fail "the cancel was not 'not requeueing'"
echo "cancelled: checkpointed ($(cat "$run/latest")) and ended CANCELLED, not requeued"

job=
stop_cluster "$src"
[ -s "$work/cluster/log/slurmctld.log" ] && [ ! -e "$work/cluster/slurm.conf" ] ||
  fail "tools/slurm-local.sh stop did not keep the Slurm logs (or left the cluster)"
echo "1 passed, 0 failed"
