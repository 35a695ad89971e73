#!/bin/bash
# Runs the golden scenarios with one flywheel binary and writes each run's metrics, cut down to the
# numbers that must not change when code is restructured (tests/golden/README.md), as
# OUT/<scenario>.jsonl. Thread counts are explicit, so the numbers do not depend on the core count.
#   run_scenarios.sh FLYWHEEL_BINARY SOURCE_DIR OUT_DIR PYTHON [SCENARIO ...]
# Scenarios: rl (the default `flywheel run`), dense, moe, moe-4d (8 ranks, 12 steps), dpo (SFT then DPO on fsdp2).
set -u
flywheel=$1 src=$2 out=$3 python=$4
shift 4
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(rl dense moe moe-4d dpo)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# OpenBLAS kernels are chosen by CPU detection unless pinned: pin them, so the numbers depend on the
# instruction set only (run_golden.sh checks it).
export OPENBLAS_CORETYPE=Haswell
mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OPENBLAS_CORETYPE)
shapes=$src/configs/shapes

run() {  # run NAME COMMAND...: runs it, keeps the log, fails loudly
  local name=$1
  shift
  if ! timeout 900 "$@" >"$work/$name.log" 2>&1; then
    echo "FAIL: scenario $name: $* exited $?:"
    tail -5 "$work/$name.log"
    exit 1
  fi
}

for s in "${scenarios[@]}"; do
  case $s in
    rl) run rl "${mpirun[@]}" -n 2 "$flywheel" run --shape "$shapes/tiny-rl.ini" --train.threads=1 \
          --train.out_dir="$work" --train.run_name=rl ;;
    dense) run dense "$flywheel" train --shape "$shapes/tiny-dense.ini" --train.threads=2 \
             --train.out_dir="$work" --train.run_name=dense ;;
    moe) run moe "$flywheel" train --shape "$shapes/tiny-moe.ini" --train.threads=2 \
           --train.out_dir="$work" --train.run_name=moe ;;
    moe-4d) run moe-4d "${mpirun[@]}" -n 8 "$flywheel" train --shape "$shapes/tiny-moe-4d.ini" --train.threads=1 \
              --train.steps=12 --train.out_dir="$work" --train.run_name=moe-4d ;;
    dpo)
      "$python" - "$work/pairs.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for a in range(4):
        for b in range(4):
            f.write(json.dumps({"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 1)}) + "\n")
PY
      common=(--shape "$shapes/tiny-dense.ini" --model.n_layers=2 --train.seq_len=16 --train.threads=1
              --train.out_dir="$work" --data.task_max_digits=1)
      run dpo-sft "$flywheel" train "${common[@]}" --train.steps=10 --train.micro_batch=16 --train.run_name=dpo-sft
      run dpo "${mpirun[@]}" -n 2 "$flywheel" train "${common[@]}" --mesh.fsdp=2 --train.objective=dpo \
        --data.source="jsonl:$work/pairs.jsonl" --train.init_from="$work/dpo-sft" --train.steps=20 \
        --train.micro_batch=8 --train.warmup_steps=2 --train.checkpoint_every=0 --rl.dpo_beta=0.5 \
        --train.run_name=dpo ;;
    *) echo "FAIL: unknown scenario '$s' (rl dense moe moe-4d dpo)"; exit 1 ;;
  esac
  "$python" "$src/tests/golden/compare_metrics.py" extract "$work/$s/metrics.jsonl" >"$out/$s.jsonl" || exit 1
  echo "scenario $s: $(wc -l <"$out/$s.jsonl") steps"
done
