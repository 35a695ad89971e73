# Sourced by train.sbatch and flywheel.sbatch, which set $root (the repository): one srun step of
# `flywheel train|run`, and what each signal and exit code does to the job.
#
# The job runs in the submission directory (its log goes there); what belongs to the repository is
# found from $root, so a job can be submitted from anywhere:
#   binary    FLYWHEEL_BIN, else $root/build/flywheel
#   shape     the path as given if it exists (from the submission directory), else under $root
#   runs      $root/checkpoints, unless --train.out_dir=... is given or the shape sets train.out_dir
#   run name  FLYWHEEL_RUN_NAME, else <shape>-<job id>: a requeued job (same id) resumes its own run
#
# Signals: SIGUSR1 is the time-limit warning (#SBATCH --signal=B:USR1@120, or scancel --signal=USR1
# --batch): forwarded to the ranks, which checkpoint and exit 75; the job then requeues itself.
# SIGTERM (scancel, preemption, the time limit itself) reaches every rank from Slurm directly: the
# ranks checkpoint and exit 75 and the job does not requeue itself: a cancelled job ends, and Slurm
# requeues a preempted one on its own (PreemptMode=REQUEUE). SIGTERM is not forwarded: srun takes a
# SIGTERM as "kill the step now" (measured: the ranks die within 0.1 s, before any checkpoint).

flywheel_job() {  # flywheel_job SCRIPT_NAME train|run SHAPE [--section.key=value ...]
  local tag="[$1]" command=$2
  local shape=${3:?"usage: sbatch -n RANKS jobs/slurm/$1 SHAPE.ini [--section.key=value ...]"}
  shift 3
  [ -f "$shape" ] || [ ! -f "$root/$shape" ] || shape=$root/$shape
  [ -f "$shape" ] || { echo "$tag error: shape '$shape' is neither in $PWD nor in $root" >&2; exit 1; }
  local flywheel=${FLYWHEEL_BIN:-$root/build/flywheel}
  [ -x "$flywheel" ] || {
    echo "$tag error: no flywheel binary at '$flywheel':" \
         "build it (cmake --build build in $root) or set FLYWHEEL_BIN" >&2
    exit 1
  }
  local out=()
  if ! printf '%s\n' "$@" | grep -q '^--train\.out_dir=' &&
     ! grep -qE '^[[:space:]]*out_dir[[:space:]]*=' "$shape"; then
    out=(--train.out_dir="$root/checkpoints")
  fi
  local run_name=${FLYWHEEL_RUN_NAME:-$(basename "$shape" .ini)-${SLURM_JOB_ID}}
  echo "$tag job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} on $(hostname): $SLURM_NTASKS ranks," \
       "run $run_name, binary $flywheel"

  requeue=no
  srun --mpi=pmix --kill-on-bad-exit=1 "$flywheel" "$command" --shape "$shape" "${out[@]}" \
       --train.run_name="$run_name" "$@" &
  step_pid=$!
  trap 'on_usr1 "$tag"' USR1
  trap 'on_term "$tag"' TERM
  # `wait` returns early when a trapped signal arrives: keep waiting until the step has really ended.
  while :; do
    wait "$step_pid"
    code=$?
    kill -0 "$step_pid" 2>/dev/null || break
  done
  finish "$tag" "$code"
}

on_usr1() {
  echo "$1 SIGUSR1 (time-limit warning): forwarding to the ranks; the job requeues itself after their checkpoint"
  requeue=yes
  kill -USR1 "$step_pid" 2>/dev/null
}

on_term() {
  echo "$1 SIGTERM (scancel, preemption or the time limit): the ranks checkpoint; the job will not requeue itself"
  requeue=no
}

finish() {  # finish TAG CODE: what flywheel's exit code means for the job; exits
  local tag=$1 code=$2
  case $code in
    0) echo "$tag finished" ;;
    75)
      if [ "$requeue" = yes ]; then
        echo "$tag checkpointed after the time-limit warning: requeueing job ${SLURM_JOB_ID}"
        scontrol requeue "${SLURM_JOB_ID}" && exit 0
      else
        echo "$tag checkpointed after a signal: not requeueing" \
             "(a preempted job is requeued by Slurm, a cancelled one ends)"
      fi ;;
    74) echo "$tag a checkpoint could not be written (disk full?): not requeueing" ;;
    130) echo "$tag stopped at once by a second signal: the last committed checkpoint is intact; not requeueing" ;;
    *) echo "$tag flywheel exited with $code" ;;
  esac
  exit "$code"
}
