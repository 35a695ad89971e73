#!/bin/bash
# What the user sees on a bad start (src/launch/main.cpp):
#   usage_code        `flywheel` alone and an unknown command both exit 1 (the usage code of every command)
#   help_quiet        --help prints no discovery line; a run prints it once
#   mpirun_once       a config error on a 2-rank mpirun job is printed once, without a rank number and
#                     without Open MPI's MPI_ABORT banner; every rank exits 1, so the job does
#   mesh_hint         the mesh-size message says how to get the ranks from where the job runs:
#                     mpirun -n, srun -n in an allocation, sbatch -n inside a batch script
#   messages.sh FLYWHEEL_BINARY SOURCE_DIR
set -u
flywheel=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passes=0
fail() { echo "FAIL $name: $*"; head -20 "$work/out"; failures=$((failures + 1)); }
ok() { echo "ok   $name: $*"; passes=$((passes + 1)); }
dense="$src/configs/shapes/tiny-dense.ini"
mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
tiny=(--shape "$dense" --model.n_layers=1 --train.micro_batch=2 --train.seq_len=8 --train.threads=1)
run() {  # run NAME COMMAND...: output (stdout and stderr) in $work/out, exit code in rc
  name=$1
  shift
  "$@" >"$work/out" 2>&1
  rc=$?
}

run usage_code "$flywheel"
bare=$rc
grep -q "^usage: flywheel <command>" "$work/out" || fail "no usage text"
run usage_code "$flywheel" frobnicate
if [ "$bare" -ne 1 ] || [ "$rc" -ne 1 ]; then fail "flywheel alone exits $bare, an unknown command $rc; expected 1 and 1"
elif ! grep -q "unknown command 'frobnicate'" "$work/out"; then fail "no 'unknown command' message"
else ok "flywheel alone and flywheel frobnicate both exit 1"; fi

run help_quiet "$flywheel" train --train.out_dir="$work/runs" --train.run_name=once "${tiny[@]}" --train.steps=1
if [ "$rc" -ne 0 ] || [ "$(grep -c "discovery: " "$work/out")" -ne 1 ]; then fail "exit $rc: no discovery line in a run"
else ok "a run prints the discovery line once"; fi
for args in "--help" "train --help" "run --help"; do
  # shellcheck disable=SC2086  # the words of $args are the arguments
  run help_quiet "$flywheel" $args
  if [ "$rc" -ne 0 ]; then fail "flywheel $args exits $rc"
  elif grep -q "discovery: " "$work/out"; then fail "flywheel $args prints the discovery line"
  else ok "flywheel $args: no discovery line"; fi
done

run mpirun_once "${mpirun[@]}" -n 2 "$flywheel" train --train.out_dir="$work/refused" "${tiny[@]}" --model.n_heads=3
if [ "$rc" -ne 1 ]; then fail "job exit $rc, expected 1"
elif [ "$(grep -c "^flywheel: error" "$work/out")" -ne 1 ]; then fail "the error is printed $(grep -c "^flywheel: error" "$work/out") times"
elif ! grep -q "^flywheel: error: model.n_heads = 3 does not divide model.d_model" "$work/out"; then
  fail "not the config error, or with a rank number"
elif grep -q "MPI_ABORT" "$work/out"; then fail "Open MPI's MPI_ABORT banner"
elif [ -e "$work/refused" ]; then fail "left $work/refused behind"
else ok "a 2-rank config error: one line, no MPI_ABORT banner, exit 1"; fi

run mesh_hint "${mpirun[@]}" -n 2 "$flywheel" train --train.out_dir="$work/runs" "${tiny[@]}"
if [ "$rc" -ne 1 ] || [ "$(grep -c "^flywheel: error" "$work/out")" -ne 1 ] ||
   ! grep -q "= 1 ranks, but the job has 2 (launch with mpirun -n 1)" "$work/out"; then
  fail "exit $rc; expected one 'launch with mpirun -n 1' error"
else ok "under mpirun: launch with mpirun -n 1"; fi
run mesh_hint env SLURM_JOB_ID=1 "$flywheel" train "${tiny[@]}" --mesh.fsdp=2
if grep -q "(launch with srun -n 2)" "$work/out"; then ok "in an allocation: launch with srun -n 2"
else fail "in an allocation: no 'launch with srun -n 2'"; fi
run mesh_hint env SLURM_JOB_ID=1 ENVIRONMENT=BATCH "$flywheel" train "${tiny[@]}" --mesh.fsdp=2
if [ "$rc" -ne 1 ] || ! grep -q "(submit with sbatch -n 2)" "$work/out"; then
  fail "exit $rc; in a batch script: no 'submit with sbatch -n 2'"
else ok "in a batch script: submit with sbatch -n 2"; fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
