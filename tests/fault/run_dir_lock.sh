#!/bin/bash
# One job per run directory (src/train/run_lock.h), and default run names that cannot collide:
#   1. job A trains run r; job B on the same run directory is refused at once (exit 1) with a message
#      naming A's pid and host, and changes nothing: A goes on, checkpoints on SIGUSR1 (exit 75), and
#      its metrics.jsonl has exactly one line per step.
#   2. job C resumes r and is killed with SIGKILL while it holds the lock; job D takes the lock over
#      (the kernel released it with C) and resumes r.
#   3. two jobs without train.run_name started at the same moment get two run directories, named
#      <shape>-<yyyymmdd-hhmmss.mmm>-<4 hex digits>.
#   run_dir_lock.sh FLYWHEEL_BINARY SOURCE_DIR
set -u
flywheel=$1 src=$2
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
common=(--shape "$src/configs/shapes/tiny-dense.ini" --model.n_layers=2 --train.seq_len=16 --train.micro_batch=8
        --train.threads=1 --train.checkpoint_every=0 --train.out_dir="$work/runs")
long=(--train.steps=1000000 --train.run_name=r)
# wait_for PATTERN FILE: until FILE has a line matching PATTERN (30 s at most).
wait_for() {
  for _ in $(seq 1 300); do grep -q -- "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
  fail "no line matching '$1' in $2: $(tail -3 "$2" 2>/dev/null)"
}
# stop PID LOG: SIGUSR1 (preemption) and its exit 75.
stop() {
  kill -USR1 "$1"
  wait "$1"
  local code=$?
  [ "$code" -eq 75 ] || fail "job $1 exited $code after SIGUSR1, expected 75: $(tail -3 "$2")"
}

# ---- 1. a second job on a run directory in use --------------------------------------------------------
"$flywheel" train "${common[@]}" "${long[@]}" 2>"$work/a.log" &
a=$!
pids+=("$a")
wait_for '"step":3,' "$work/runs/r/metrics.jsonl"
timeout 10 "$flywheel" train "${common[@]}" "${long[@]}" 2>"$work/b.log"
code=$?
[ "$code" -eq 1 ] || fail "the second job on run r exited $code, expected 1 (refused): $(tail -3 "$work/b.log")"
grep -q "run directory $work/runs/r is in use by another job: pid $a on host $(hostname)" "$work/b.log" ||
  fail "the refusal does not name the holder: $(tail -1 "$work/b.log")"
stop "$a" "$work/a.log"
steps=$(sed -n 's/.*checkpoint: saved step \([0-9]*\) .*/\1/p' "$work/a.log")
[ -n "$steps" ] || fail "job A saved no checkpoint: $(tail -3 "$work/a.log")"
[ "$(sed 's/.*"step":\([0-9]*\),.*/\1/' "$work/runs/r/metrics.jsonl" | tr '\n' ' ')" = "$(seq -s ' ' 1 "$steps") " ] ||
  fail "metrics.jsonl of run r is not one line per step 1..$steps"
echo "ok   a second job on run r was refused, naming pid $a; the first job's $steps steps are intact"

# ---- 2. a killed holder never blocks ----------------------------------------------------------------
"$flywheel" train "${common[@]}" "${long[@]}" 2>"$work/c.log" &
c=$!
pids+=("$c")
wait_for "resumed from" "$work/c.log"
kill -9 "$c"
wait "$c" 2>/dev/null
"$flywheel" train "${common[@]}" "${long[@]}" 2>"$work/d.log" &
d=$!
pids+=("$d")
wait_for "resumed from .*step-0*$steps" "$work/d.log"
stop "$d" "$work/d.log"
echo "ok   after SIGKILL of the job holding run r, the next job took the lock over and resumed step $steps"

# ---- 3. default run names ---------------------------------------------------------------------------
"$flywheel" train "${common[@]}" --train.steps=2 2>"$work/e.log" &
e=$!
"$flywheel" train "${common[@]}" --train.steps=2 2>"$work/f.log" &
f=$!
wait "$e" || fail "default-named job 1 failed: $(tail -3 "$work/e.log")"
wait "$f" || fail "default-named job 2 failed: $(tail -3 "$work/f.log")"
names=$(ls "$work/runs" | grep -v '^r$')
[ "$(echo "$names" | wc -l)" -eq 2 ] || fail "two default-named jobs made these run directories: $names"
for name in $names; do
  [[ $name =~ ^tiny-dense-[0-9]{8}-[0-9]{6}\.[0-9]{3}-[0-9a-f]{4}$ ]] || fail "default run name '$name' is not <shape>-<yyyymmdd-hhmmss.mmm>-<hex4>"
  [ "$(wc -l <"$work/runs/$name/metrics.jsonl")" -eq 2 ] || fail "run $name does not have its 2 metrics lines"
done
echo "ok   two jobs started together got their own run directories:" $names
echo "3 passed, 0 failed"
