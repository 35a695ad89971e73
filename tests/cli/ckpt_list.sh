#!/bin/bash
# flywheel-ckpt list on real runs of `flywheel train` (one rank, a 2-layer tiny-dense model): a
# finished run, a run preempted by a fault point's SIGUSR1, a run killed by SIGKILL (interrupted),
# a job running now (named by its lock holder) and then stopped by SIGTERM (preempted), a run from
# before status.json, the default DIR, --json, one run directory as DIR, and bad input.
#   ckpt_list.sh FLYWHEEL_BINARY FLYWHEEL_CKPT_BINARY PYTHON
set -u
flywheel=$(realpath "$1")
ckpt=$(realpath "$2")
python=$3
shapes="$(cd "$(dirname "$0")/../../configs/shapes" && pwd)"
work=$(mktemp -d)
background=
trap '[ -n "$background" ] && kill -9 "$background" 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/check_cases.sh"
# The STATE column of run $1 in the last listing.
row_has() { grep -E "^$1 " "$work/stdout" | grep -qE -- "$2" || fail "the row of $1 does not match /$2/"; }

runs="$work/checkpoints"
# train RUN_NAME [overrides...]: one rank, 2 layers, a checkpoint every 4 steps. Called with `&`, the
# exec makes $! the trainer's pid (the lock holder), not a subshell's.
train() {
  local run_name=$1
  shift
  exec "$flywheel" train --shape "$shapes/tiny-dense.ini" --model.n_layers=2 --train.steps="${steps:-8}" \
    --train.checkpoint_every="${every:-4}" --train.out_dir="$runs" --train.run_name="$run_name" --train.threads=1 "$@"
}
train_sub() { (train "$@"); }

run "a finished run" 0 train_sub done
FLYWHEEL_FAULT_POINT="train.step:0:6:USR1" run "a run preempted by SIGUSR1 at step 6 exits 75" 75 train_sub preempted
FLYWHEEL_FAULT_POINT="train.step:0:6" run "a run killed by SIGKILL at step 6" 137 train_sub killed
run "a run from before status.json" 0 train_sub old
rm "$runs/old/status.json"

run "list DIR" 0 "$ckpt" list "$runs"
row_has done "sft dense 2x128 +pp=1 fsdp=1 cp=1 ep=1 serve=0 +2 +8/8 +finished"
row_has preempted " 6/8 +preempted at step 6 \(SIGUSR1\)"
row_has killed " 4/8 +interrupted at step 4 \(no clean stop"
row_has old " 8/8 +finished"
out_has "^4 runs, "

# A job running now: the row names its lock holder; SIGTERM then ends it as preempted.
steps=100000 every=0 train running >"$work/running.log" 2>&1 &
background=$!
for _ in $(seq 300); do [ -f "$runs/running/status.json" ] && break; sleep 0.1; done
[ -f "$runs/running/status.json" ] || { name="the running job"; fail "did not start: $(tail -5 "$work/running.log")"; }
run "list while a job runs" 0 "$ckpt" list "$runs"
row_has running "-/100000 +running"
out_has "^running: held by pid $background on host "
kill -TERM "$background"
wait "$background"
rc=$?
background=
name="SIGTERM ends the running job with 75" && { [ "$rc" -eq 75 ] && echo "ok   $name" || fail "exit code $rc"; }
run "list after SIGTERM" 0 "$ckpt" list "$runs"
row_has running "preempted at step [0-9]+ \(SIGTERM\)"

(cd "$work" && run "the default DIR is checkpoints/" 0 "$ckpt" list)
out_has "^5 runs, "
run "one run directory as DIR" 0 "$ckpt" list "$runs/done"
out_has "^1 run, "
row_has done "finished"

run "list --json" 0 "$ckpt" list "$runs" --json
name="--json fields"
if "$python" - "$work/stdout" <<'EOF' 2>"$work/stderr"; then echo "ok   $name"; else fail "json check failed"; fi
import json, sys
runs = {r["name"]: r for r in json.load(open(sys.argv[1]))}
assert sorted(runs) == ["done", "killed", "old", "preempted", "running"], sorted(runs)
done = runs["done"]
assert done["state"] == "finished" and done["steps"] == [4, 8] and done["latest"] == 8, done
assert done["train_steps"] == 8 and done["objective"] == "sft" and done["bytes"] > 0, done
assert done["status"]["state"] == "finished" and done["status"]["exit_code"] == 0, done
assert runs["preempted"]["status"]["exit_code"] == 75, runs["preempted"]
assert runs["killed"]["status"]["state"] == "running" and "holder" not in runs["killed"], runs["killed"]
assert "status" not in runs["old"], runs["old"]
EOF

mkdir "$work/empty"
run "an empty folder" 0 "$ckpt" list "$work/empty"
out_has "^no runs under "
run "a missing DIR is an error naming it" 1 "$ckpt" list "$work/missing"
err_has "missing is not a directory"
run "two DIRs are a usage error" 2 "$ckpt" list "$runs" "$runs"
err_has "unexpected argument"
run "list --help" 0 "$ckpt" list --help
out_has "usage: flywheel-ckpt list \[DIR\]"

finish
