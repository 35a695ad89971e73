#!/bin/bash
# Slurm preemption end to end on a one-node loopback cluster (tools/slurm-local.sh):
# jobs/slurm/train.sbatch runs 2 ranks under srun --mpi=pmix; mid-run the batch script gets SIGUSR1
# (as `--signal=B:USR1@120` delivers before the time limit), forwards it, the ranks checkpoint and
# exit 75, the script requeues the job; the requeued job resumes and finishes. Its final weights,
# AdamW moments and loss curve must equal an uninterrupted mpirun run's, bit for bit. 200 steps, so the
# signal (sent after 3 steps) lands well before the end even on a fast machine.
# MODE run does the same with jobs/slurm/flywheel.sbatch: one trainer and one serving replica in one
# job step (`flywheel run`, 4 SFT + 56 GRPO steps); the requeued job republishes a full snapshot for the
# restarted replica and ends bit-identical to the uninterrupted mpirun run (weights, loss, rewards).
#   preempt_requeue.sh FLYWHEEL_BINARY SOURCE_DIR PYTHON [train|run]
set -u
flywheel=$1 src=$2 python=$3 mode=${4:-train}
work=$(mktemp -d)
fail() { echo "FAIL: $*"; echo "--- job log"; cat "$work"/job-*.log 2>/dev/null | tail -20; echo "0 passed, 1 failed"; exit 1; }
. "$src/tests/slurm/cluster.sh"
trap 'stop_cluster "$src"; rm -rf "$work"' EXIT

start_cluster "$src" "$python" || fail "could not start the local Slurm cluster"
if [ "$mode" = run ]; then
  steps=60 script=flywheel.sbatch
  args=(--shape "$src/configs/shapes/tiny-rl.ini" --train.steps=$steps --rl.sft_steps=4 --rl.prompts_per_step=4
        --rl.group_size=4 --train.micro_batch=16 --train.grad_accum=1 --train.checkpoint_every=0 --train.threads=1
        --train.out_dir="$work/runs")
else
  steps=200 script=train.sbatch
  args=(--shape "$src/configs/shapes/tiny-dense.ini" --mesh.fsdp=2 --model.n_layers=2 --train.micro_batch=8
        --train.seq_len=16 --train.steps=$steps --train.checkpoint_every=0 --train.threads=1 --train.out_dir="$work/runs")
fi
final=$(printf "step-%08d" "$steps")

timeout 240 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" "$mode" "${args[@]}" \
  --train.run_name=straight 2>"$work/straight.log" || fail "uninterrupted run failed: $(tail -3 "$work/straight.log")"

job=$(cd "$work" && FLYWHEEL_BIN="$flywheel" FLYWHEEL_RUN_NAME=slurm sbatch --parsable -n 2 --oversubscribe \
      --output="$work/job-%j.log" "$src/jobs/slurm/$script" "${args[1]}" "${args[@]:2}")
[ -n "$job" ] || fail "sbatch failed"
echo "submitted job $job"
metrics="$work/runs/slurm/metrics.jsonl"
deadline=$((SECONDS + 120))
until [ -f "$metrics" ] && [ "$(wc -l <"$metrics")" -ge 3 ]; do
  [ $SECONDS -lt $deadline ] || fail "job $job made no progress"
  sleep 0.2
done
scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 failed"

# The script requeues the job; a requeued job waits for its BeginTime, so start it now once pending.
requeued=0
deadline=$((SECONDS + 150))
while [ $SECONDS -lt $deadline ]; do
  state=$(squeue -h -j "$job" -o %T 2>/dev/null)
  if [ "$state" = "PENDING" ] && [ $requeued -eq 0 ]; then
    scontrol update JobId="$job" StartTime=now && requeued=1 && echo "job $job requeued; starting it"
  fi
  [ -z "$state" ] && [ -f "$work/runs/slurm/$final/state.h5" ] && break
  sleep 0.5
done
[ $requeued -eq 1 ] || fail "job $job was not requeued"
[ -f "$work/runs/slurm/$final/state.h5" ] || fail "requeued job did not finish"
grep -q "checkpointed after the time-limit warning: requeueing" "$work"/job-*.log ||
  fail "no requeue message in the job log"
grep -q "resumed from" "$work"/job-*.log || fail "the requeued job did not resume"
grep -q "restart 1" "$work"/job-*.log || fail "SLURM_RESTART_COUNT did not reach 1"

"$python" - "$work/runs/straight" "$work/runs/slurm" "$final" <<'PY' || fail "requeued run differs from the uninterrupted run"
import json, sys
import h5py
a, b, final = sys.argv[1:4]
curve = lambda d: [(l["step"], l["loss"], l["grad_norm"], l.get("reward_mean")) for l in map(json.loads, open(d + "/metrics.jsonl"))]
assert curve(a) == curve(b), "loss curves differ"
fa, fb = (h5py.File(f"{d}/{final}/model.h5", "r") for d in (a, b))
n = 0
for group in ("weight", "adam_m", "adam_v"):
    for name in fa[group]:
        assert fa[group][name][()].tobytes() == fb[group][name][()].tobytes(), f"{group}/{name} differs"
        n += 1
print(f"requeued Slurm {sys.argv[3]} run: loss curve ({len(curve(a))} steps) and {n} tensors bit-identical to mpirun")
PY
echo "1 passed, 0 failed"
