#!/bin/bash
# Bad input gets a clear error and a non-zero exit, and leaves no half-written output.
#   bad_input.sh FLYWHEEL_BINARY SOURCE_DIR
# Each case runs `flywheel train` (or `flywheel run`, after command=run) with one defect and checks: exit code 1, the message names the
# problem (a grep pattern), and the output directory stays empty.
set -u
flywheel=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
cases=0
command=train

expect_error() {  # expect_error NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  cases=$((cases + 1))
  local out="$work/out-$cases"
  "$flywheel" "$command" --train.out_dir="$out" "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [ "$rc" -ne 1 ]; then
    echo "FAIL $name: exit code $rc, expected 1"; cat "$work/stderr"; failures=$((failures + 1)); return
  fi
  if ! grep -qE -- "$pattern" "$work/stderr"; then
    echo "FAIL $name: message does not match /$pattern/:"; cat "$work/stderr"; failures=$((failures + 1)); return
  fi
  if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "FAIL $name: left output behind in $out:"; ls -R "$out"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $(head -c 300 "$work/stderr")"
}

dense="$src/configs/shapes/tiny-dense.ini"
moe="$src/configs/shapes/tiny-moe.ini"

printf '[model]\nd_model = 64\nwidth = 3\n' >"$work/unknown-key.ini"
expect_error "unknown shape key" "unknown-key.ini.*model.width" --shape "$work/unknown-key.ini"

printf '[model]\nd_model 64\n' >"$work/malformed.ini"
expect_error "malformed shape line" "malformed.ini.*(invalid|syntax)" --shape "$work/malformed.ini"

printf '[model]\nd_model = sixty-four\n' >"$work/bad-value.ini"
expect_error "non-numeric value" "bad-value.ini.*model.d_model" --shape "$work/bad-value.ini"

expect_error "missing shape file" "shape file '.*nope.ini' does not exist" --shape "$work/nope.ini"
expect_error "no --shape" "needs --shape"
expect_error "unknown override" "unrecognised option.*--model.widht" --shape "$dense" --model.widht=3
expect_error "heads do not divide d_model" "n_heads = 5 does not divide model.d_model = 128" --shape "$dense" --model.n_heads=5
expect_error "kv heads do not divide heads" "n_kv_heads = 3 does not divide model.n_heads = 4" --shape "$dense" --model.n_kv_heads=3
expect_error "top-k above experts" "moe_top_k = 9 is not in \[1, model.moe_experts = 8\]" --shape "$moe" --model.moe_top_k=9
expect_error "seq_len above max_seq_len" "train.seq_len = 100 exceeds model.max_seq_len = 64" --shape "$dense" --train.seq_len=100
expect_error "mesh does not match the world" "needs pp x fsdp x cp \+ serve .* = 2 ranks, but the job has 1" --shape "$dense" --mesh.fsdp=2
expect_error "rows do not split over fsdp" "micro_batch = 32 is not divisible by mesh.fsdp = 3" --shape "$dense" --mesh.fsdp=3
expect_error "unknown objective" "train.objective = 'ppo'.*allowed" --shape "$dense" --train.objective=ppo
expect_error "unknown task" "unknown task 'multiply'" --shape "$dense" --data.source=task:multiply
expect_error "missing data file" "$work/absent.jsonl" --shape "$dense" --data.source=jsonl:$work/absent.jsonl

printf '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n{"prompt": "e", completion: "f"}\n' >"$work/bad.jsonl"
expect_error "malformed JSONL line" "bad.jsonl.* line 3" --shape "$dense" --data.source=jsonl:$work/bad.jsonl

printf '{"prompt": "a"}\n' >"$work/missing-field.jsonl"
expect_error "JSONL line without completion" "missing-field.jsonl.* line 1.*completion" --shape "$dense" --data.source=jsonl:$work/missing-field.jsonl

expect_error "dpo without preference pairs" "train.objective = dpo reads preference pairs" --shape "$dense" --train.objective=dpo
expect_error "train with serving ranks" "flywheel train. has no serving ranks" --shape "$dense" --mesh.serve=1
expect_error "grpo under flywheel train" "grpo runs with serving replicas under .flywheel run." --shape "$dense" --train.objective=grpo
expect_error "init_from without a checkpoint" "train.init_from = '$work' holds no committed checkpoint" --shape "$dense" --train.init_from="$work"

command=run
rl="$src/configs/shapes/tiny-rl.ini"
expect_error "run without replicas" "mesh.serve = 0: .flywheel run. needs at least one serving replica" --shape "$rl" --mesh.serve=0
expect_error "unknown swap policy" "rl.swap = 'later': allowed values are sync, async" --shape "$rl" --rl.swap=later
expect_error "exact serving with BLAS kernels" "needs model.forward_kernels = invariant" --shape "$rl" --model.forward_kernels=blas
expect_error "RL batch mismatch" "rl.prompts_per_step x rl.group_size = 64" --shape "$rl" --rl.group_size=4
expect_error "group of one" "rl.group_size = 1: must be >= 2" --shape "$rl" --rl.group_size=1
expect_error "temperature zero" "rl.temperature = 0: must be > 0" --shape "$rl" --rl.temperature=0

echo "$((cases - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
