#!/bin/bash
# flywheel-ckpt end to end on checkpoints of tiny models written by save_checkpoint:
# inspect, verify (good and corrupt shards), diff, reshard (+ verify + diff against the source),
# impossible meshes (the checks of `flywheel train`), safetensors export checked by an independent
# reader, failed and interrupted exports leaving nothing behind, the ledger, usage errors.
#   ckpt_tool.sh FLYWHEEL_CKPT_BINARY MAKE_TEST_CHECKPOINT_BINARY PYTHON
# PYTHON needs numpy and h5py (Debian's /usr/bin/python3).
set -u
ckpt=$1
make_ckpt=$2
python=$3
shapes="$(cd "$(dirname "$0")/../../configs/shapes" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/check_cases.sh"
py() { cases=$((cases + 1)); name=$1; shift; if "$python" - "$@" >"$work/stdout" 2>"$work/stderr"; then echo "ok   $name";
       else fail "python check failed"; fi; }

# ---- checkpoints ---------------------------------------------------------------------------------
dense="$work/dense" moe="$work/moe"
"$make_ckpt" --shape "$shapes/tiny-dense.ini" --out "$dense" --steps 10,20 --model.n_layers=2 >/dev/null ||
  { echo "FAIL make_test_checkpoint (dense)"; exit 1; }
"$make_ckpt" --shape "$shapes/tiny-moe.ini" --out "$moe" --steps 5 --model.n_layers=2 --model.d_model=64 \
  --model.d_ff=96 --model.moe_d_ff=48 --model.tie_embeddings=true >/dev/null ||
  { echo "FAIL make_test_checkpoint (moe)"; exit 1; }
mkdir "$dense/step-00000030.partial"  # an interrupted save: listed, never touched

# ---- inspect -------------------------------------------------------------------------------------
run "inspect" 0 "$ckpt" inspect "$dense" && {
  out_has "committed steps: 10, 20 \(latest: 20\)"; out_has "stale: step-00000030.partial"
  out_has "^step 20 "; out_has "mesh: +pp=1 fsdp=1 cp=1 ep=1 serve=0"; out_has "format version: 1"
  out_has "shape: +tiny-dense; dense, 2 layers, d_model 128"
  out_has "model.layers.1.mlp.down_proj.weight +\[128, 384\] +float32 +weight,adam_m,adam_v"
  out_has "lm_head.weight +\[259, 128\]"; out_has "model.norm.weight +\[128\]"
  out_has "tensors \(21\)"; out_has "totals: 460160 parameters"; }
run "inspect --step 10 --json" 0 "$ckpt" inspect "$dense" --step 10 --json && cp "$work/stdout" "$work/inspect.json"
py "inspect --json matches model.h5" "$work/inspect.json" "$dense/step-00000010/model.h5" <<'EOF'
import json, sys, h5py
d = json.load(open(sys.argv[1]))
assert d["step"] == 10 and d["committed_steps"] == [10, 20] and d["world_size"] == 1, d
assert d["stale_dirs"] == ["step-00000030.partial"], d["stale_dirs"]
with h5py.File(sys.argv[2], "r") as f:
    shapes = {name: list(f["weight"][name].shape) for name in f["weight"]}
assert {t["name"]: t["shape"] for t in d["tensors"]} == shapes
assert d["totals"]["parameters"] == sum(t["numel"] for t in d["tensors"])
assert all(t["dtype"] == "float32" and t["arrays"] == ["weight", "adam_m", "adam_v"] for t in d["tensors"])
EOF
run "inspect of an uncommitted step" 1 "$ckpt" inspect "$dense" --step 15 &&
  err_has "step 15 is not a committed checkpoint in .*dense \(committed steps: 10, 20\)"
run "inspect of a missing run directory" 1 "$ckpt" inspect "$work/nowhere" && err_has "run directory .*nowhere does not exist"
mkdir "$work/empty-run"
run "inspect of a run without steps" 1 "$ckpt" inspect "$work/empty-run" && err_has "no committed checkpoint in"

# ---- verify --------------------------------------------------------------------------------------
run "verify" 0 "$ckpt" verify "$dense" && { out_has "shard-00000.h5 .* ok$"; out_has "^step 20: ok"
  err_has "^verify \[=+\] 100% "; }  # not a TTY: one progress line per ~10%, ending at 100%
run "verify --all" 0 "$ckpt" verify "$dense" --all --no-progress && { out_has "^step 10: ok"; out_has "2 of 2 steps ok"
  [ ! -s "$work/stderr" ] || fail "--no-progress still wrote to stderr"; }
cp -r "$dense" "$work/bad"
"$python" - "$work/bad/step-00000020/shard-00000.h5" <<'EOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0xFF          # one flipped byte in the middle of the tensor data
open(path, "wb").write(data)
EOF
run "verify of a corrupt shard" 1 "$ckpt" verify "$work/bad" --no-progress && {
  out_has "shard-00000.h5 .*FAILED: .*bad/step-00000020/shard-00000.h5 fails its checksum"; out_has "^step 20: FAILED"; }
run "verify --all with one corrupt step" 1 "$ckpt" verify "$work/bad" --all --no-progress && {
  out_has "^step 10: ok"; out_has "1 of 2 steps ok"; }
truncate -s -100 "$work/bad/step-00000010/shard-00000.h5"
run "verify of a truncated shard" 1 "$ckpt" verify "$work/bad" --step 10 --no-progress &&
  out_has "FAILED: .*step-00000010/shard-00000.h5 has [0-9]+ bytes but state.h5 records [0-9]+ \(truncated\)"
run "diff refuses a corrupt step" 1 "$ckpt" diff "$dense" "$work/bad" --no-progress &&
  err_has "checkpoint step 20 .*bad/step-00000020\) fails verification:"

# ---- diff ----------------------------------------------------------------------------------------
run "diff of identical steps" 0 "$ckpt" diff "$dense:20" "$dense" --moments --no-progress && {
  out_has "summary: 63 tensor\(s\) compared, 63 identical; max abs diff 0, max rel diff 0"
  out_has "^ +adam_v/model.norm.weight +\[128\] +0 +0$"; }
run "diff of two steps" 0 "$ckpt" diff "$dense:10" "$dense:20" --no-progress && {
  out_has "summary: 21 tensor\(s\) compared, 0 identical; max abs diff [1-9]\.[0-9]+e-03"
  out_has "^ +model.embed_tokens.weight +\[259, 128\] +[1-9]\.[0-9]+e-0[34] "; }
run "diff --fail-above exceeded" 1 "$ckpt" diff "$dense:10" "$dense:20" --fail-above 1e-6 --no-progress &&
  out_has "FAILED: max abs diff .* exceeds --fail-above 1.000e-06"
run "diff --fail-above not exceeded" 0 "$ckpt" diff "$dense:10" "$dense:20" --fail-above 0.1 --no-progress
run "diff of different models" 0 "$ckpt" diff "$dense" "$moe" --no-progress && {
  out_has "only in A: lm_head.weight"; out_has "only in B: model.layers.0.mlp.experts.7.down_proj.weight"
  out_has "shape differs: model.embed_tokens.weight: A \[259, 128\], B \[259, 64\]"; }
run "diff --fail-above with differing shapes" 1 "$ckpt" diff "$dense" "$moe" --fail-above 1 --no-progress &&
  out_has "FAILED: tensor shapes differ"

# ---- reshard -------------------------------------------------------------------------------------
run "reshard dense to pp=2,fsdp=2" 0 "$ckpt" reshard "$dense" --out "$work/dense-pp2" --mesh pp=2,fsdp=2 &&
  out_has "shard-00003.h5 +1 +1 +0 +0 +\[1, 2\)"
run "verify the resharded copy" 0 "$ckpt" verify "$work/dense-pp2" --no-progress && {
  out_has "shard-00003.h5 .* ok$"; out_has "^step 20: ok \(4 shard"; }
run "diff resharded vs source" 0 "$ckpt" diff "$dense" "$work/dense-pp2" --moments --fail-above 0 --no-progress &&
  out_has "63 tensor\(s\) compared, 63 identical"
run "inspect the resharded copy" 0 "$ckpt" inspect "$work/dense-pp2" && {
  out_has "mesh: +pp=2 fsdp=2 cp=1 ep=1 serve=0"; out_has "world size: +4 shard"; }
py "resharded rows follow the target mesh" "$work/dense-pp2/step-00000020" "$dense/step-00000020" <<'EOF'
import json, os, sys, h5py, numpy as np
new, old = sys.argv[1], sys.argv[2]
with h5py.File(os.path.join(new, "state.h5"), "r") as f:
    assert json.loads(f.attrs["mesh"]) == {"pp": 2, "fsdp": 2, "cp": 1, "ep": 1, "serve": 0}
    text = f.attrs["shape_text"]
    text = text.decode() if isinstance(text, bytes) else text
    mesh = text[text.index("[mesh]"):]
    assert "pp = 2" in mesh and "fsdp = 2" in mesh, mesh
    assert "n_layers = 2" in text
def rows(shard, name):
    with h5py.File(os.path.join(new, "shard-%05d.h5" % shard), "r") as f:
        if name not in f["weight"]: return None
        ds = f["weight"][name]
        assert f.attrs["rank"] == shard and f.attrs["world_size"] == 4
        return (int(ds.attrs["offset"][0]), int(ds.attrs["offset"][0]) + ds.shape[0])
# Stage 0 (shards 0, 1): embedding + layer 0; stage 1 (shards 2, 3): layer 1 + final norm + head.
assert rows(0, "model.embed_tokens.weight") == (0, 129) and rows(1, "model.embed_tokens.weight") == (129, 259)
assert rows(2, "model.embed_tokens.weight") is None and rows(0, "lm_head.weight") is None
assert rows(2, "lm_head.weight") == (0, 129) and rows(3, "lm_head.weight") == (129, 259)
assert rows(3, "model.norm.weight") == (64, 128) and rows(0, "model.layers.1.mlp.up_proj.weight") is None
assert rows(1, "model.layers.0.mlp.up_proj.weight") == (192, 384)
with h5py.File(os.path.join(new, "model.h5"), "r") as a, h5py.File(os.path.join(old, "model.h5"), "r") as b:
    for group in ("weight", "adam_m", "adam_v"):
        assert sorted(a[group]) == sorted(b[group])
        for name in a[group]:
            assert np.array_equal(a[group][name][...], b[group][name][...]), (group, name)
EOF
run "reshard refuses an existing step" 1 "$ckpt" reshard "$dense" --out "$work/dense-pp2" --mesh pp=2 --no-progress &&
  err_has "already has a committed step 20; pass --force"
run "reshard --force replaces it" 0 "$ckpt" reshard "$dense" --out "$work/dense-pp2" --mesh pp=2 --force --no-progress
run "reshard onto itself" 1 "$ckpt" reshard "$dense" --out "$dense" --mesh pp=2 --no-progress &&
  err_has "is the source run directory"
run "reshard MoE to fsdp=4,ep=2" 0 "$ckpt" reshard "$moe" --out "$work/moe-ep2" --mesh fsdp=4,ep=2,cp=1 --no-progress
# The trainer's own loader (load_checkpoint) reads the 4-shard copy to the same bytes as the source.
moe_args=(--shape "$shapes/tiny-moe.ini" --model.n_layers=2 --model.d_model=64 --model.d_ff=96 --model.moe_d_ff=48
          --model.tie_embeddings=true)
run "load_checkpoint of the resharded MoE" 0 "$make_ckpt" "${moe_args[@]}" --load "$work/moe-ep2" &&
  cp "$work/stdout" "$work/load-ep2"
run "load_checkpoint of the source MoE" 0 "$make_ckpt" "${moe_args[@]}" --load "$moe" && {
  out_has "^loaded step 5 xxh3 [0-9a-f]{16}$"
  cmp -s "$work/stdout" "$work/load-ep2" || fail "source and resharded copy load differently: $(cat "$work/load-ep2")"; }
run "verify the resharded MoE" 0 "$ckpt" verify "$work/moe-ep2" --no-progress
run "diff resharded MoE vs source" 0 "$ckpt" diff "$moe" "$work/moe-ep2" --moments --fail-above 0 --no-progress &&
  out_has "identical; max abs diff 0,"
py "experts land on their ep rank" "$work/moe-ep2/step-00000005" <<'EOF'
import os, sys, h5py
def held(shard):
    with h5py.File(os.path.join(sys.argv[1], "shard-%05d.h5" % shard), "r") as f:
        return {n: (int(d.attrs["offset"][0]), int(d.attrs["offset"][0]) + d.shape[0]) for n, d in f["weight"].items()}
e = "model.layers.0.mlp.experts.%d.gate_proj.weight"
# dp ranks 0..3, ep = dp % 2: shards 0, 2 own experts 0-3 (split over the edp group of 2), shards 1, 3 experts 4-7.
for shard, experts in ((0, range(4)), (2, range(4)), (1, range(4, 8)), (3, range(4, 8))):
    h = held(shard)
    assert {n for n in h if ".experts." in n and n.startswith("model.layers.0.")} == \
           {e.replace("gate_proj", p) % x for x in experts for p in ("gate_proj", "up_proj", "down_proj")}, shard
assert held(0)[e % 0] == (0, 24) and held(2)[e % 0] == (24, 48) and held(1)[e % 4] == (0, 24)
assert held(0)["model.layers.0.mlp.gate.weight"] == (0, 2) and held(3)["model.layers.0.mlp.gate.weight"] == (6, 8)
EOF

# A shape text recorded without its command-line overrides (the file says 4 layers, the tensors
# have 2): inspect warns, reshard refuses with a hint, and --set corrects it in the copy.
"$make_ckpt" --shape "$shapes/tiny-dense.ini" --out "$work/verbatim" --steps 3 --model.n_layers=2 --verbatim-shape \
  >/dev/null || { echo "FAIL make_test_checkpoint (verbatim)"; exit 1; }
run "inspect warns about a stale shape text" 0 "$ckpt" inspect "$work/verbatim" &&
  out_has "WARNING: the shape text does not describe these tensors .*model.layers.2.input_layernorm.weight is missing"
run "reshard refuses a stale shape text" 1 "$ckpt" reshard "$work/verbatim" --out "$work/verbatim-fsdp2" --mesh fsdp=2 &&
  { err_has "does not match the model its shape text describes \(dense, 4 layers"; err_has "--set model.n_layers=2"; }
run "reshard --set corrects it" 0 "$ckpt" reshard "$work/verbatim" --out "$work/verbatim-fsdp2" --mesh fsdp=2 \
  --set model.n_layers=2 --no-progress
run "inspect the corrected copy" 0 "$ckpt" inspect "$work/verbatim-fsdp2" && {
  out_has "shape: .*dense, 2 layers"; out_lacks "WARNING"; }
run "diff corrected copy vs source" 0 "$ckpt" diff "$work/verbatim" "$work/verbatim-fsdp2" --moments --fail-above 0 \
  --no-progress
run "reshard --set that is not key=value" 2 "$ckpt" reshard "$work/verbatim" --out "$work/x" --mesh fsdp=2 --set n_layers \
  && err_has "--set n_layers: expected section.key=value"

# ---- impossible meshes: clear errors, nothing written --------------------------------------------
run "mesh: layers not divisible by pp" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh pp=3 &&
  err_has "target mesh pp=3 .*model.n_layers = 2 is not divisible by pp = 3"
run "mesh: experts not divisible by ep" 1 "$ckpt" reshard "$moe" --out "$work/x" --mesh fsdp=3,ep=3 &&
  err_has "model.moe_experts = 8 is not divisible by ep = 3"
run "mesh: ep does not divide fsdp x cp" 1 "$ckpt" reshard "$moe" --out "$work/x" --mesh fsdp=2,ep=4 &&
  err_has "mesh.ep = 4 does not divide mesh.fsdp x mesh.cp = 2"
run "mesh: tied embeddings across stages" 1 "$ckpt" reshard "$moe" --out "$work/x" --mesh pp=2 &&
  err_has "ties its embeddings.*use pp=1"
run "mesh: ep on a dense model" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh fsdp=2,ep=2 && err_has "model is dense"
# The checks of `flywheel train` on the recorded batch (micro_batch 32, seq_len 24), and what they miss.
run "mesh: rows do not split over fsdp" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh fsdp=3 &&
  err_has "fsdp=3 .*: train.micro_batch = 32 is not divisible by mesh.fsdp = 3: .*what .flywheel train. requires"
run "mesh: fsdp=100000 on a small model" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh fsdp=100000 &&
  err_has "train.micro_batch = 32 is not divisible by mesh.fsdp = 100000"
run "mesh: sequence does not split over cp" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh cp=5 &&
  err_has "train.seq_len = 24 is not divisible by 2 x mesh.cp = 10"
run "mesh: more ranks than rows" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh fsdp=100000 \
  --set train.micro_batch=100000 && err_has "99358 of its 100000 shards would hold no tensor rows at all"
run "mesh: zero" 1 "$ckpt" reshard "$dense" --out "$work/x" --mesh pp=0 && err_has "mesh.pp = 0: must be a positive integer"
run "mesh: not a number" 2 "$ckpt" reshard "$dense" --out "$work/x" --mesh pp=two && err_has "pp=two is not a non-negative integer"
run "mesh: unknown key" 2 "$ckpt" reshard "$dense" --out "$work/x" --mesh tp=2 && err_has "unknown key 'tp' \(allowed: pp, fsdp, cp, ep, serve\)"
run "reshard without --mesh" 2 "$ckpt" reshard "$dense" --out "$work/x" && err_has "missing --mesh"
[ ! -e "$work/x" ] || { name="impossible meshes"; fail "left $work/x behind"; }

# ---- export --------------------------------------------------------------------------------------
run "export dense" 0 "$ckpt" export "$dense" --format safetensors --out "$work/dense.safetensors" &&
  { out_has "exported 21 tensors of step 20"; err_has "^export: writing \[=+\] 100%"; }
run "export tied MoE" 0 "$ckpt" export "$moe" --format safetensors --out "$work/moe.safetensors" --no-progress &&
  out_has "tied embeddings: no lm_head.weight"
run "export --step 10" 0 "$ckpt" export "$dense" --step 10 --format safetensors --out "$work/dense10.safetensors" --no-progress
py "safetensors files read back" "$work" <<'EOF'
import json, os, struct, sys, h5py, numpy as np
w = sys.argv[1]
def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header length %d is not a multiple of 8" % n
    text = raw[8:8 + n].decode("utf-8")
    assert text.rstrip(" ") == text.rstrip() and text.rstrip(" ").endswith("}"), "padding must be spaces"
    header = json.loads(text)
    meta = header.pop("__metadata__")
    assert all(isinstance(v, str) for v in meta.values()), meta
    data = raw[8 + n:]
    order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    assert order == sorted(header), "tensors are not in sorted-name order"
    end = 0
    tensors = {}
    for name in order:
        t = header[name]
        b, e = t["data_offsets"]
        assert t["dtype"] == "F32" and b == end and e - b == 4 * int(np.prod(t["shape"])), (name, t)
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
        end = e
    assert end == len(data), "data is %d bytes, offsets end at %d" % (len(data), end)
    return meta, tensors
for file, step_dir, tied in (("dense.safetensors", "dense/step-00000020", "false"),
                             ("dense10.safetensors", "dense/step-00000010", "false"),
                             ("moe.safetensors", "moe/step-00000005", "true")):
    meta, tensors = read(os.path.join(w, file))
    assert meta["tie_word_embeddings"] == tied and meta["format"] == "pt", meta
    assert meta["flywheel_step"] == step_dir[-2:].lstrip("0"), meta
    with h5py.File(os.path.join(w, step_dir, "model.h5"), "r") as f:
        assert sorted(tensors) == sorted(f["weight"]), file
        for name, t in tensors.items():
            assert np.array_equal(t, f["weight"][name][...]), (file, name)
    assert ("lm_head.weight" in tensors) == (tied == "false"), file
    assert "model.layers.1.self_attn.q_proj.weight" in tensors
EOF
# --dtype bf16: BF16 tensors equal to torch's own fp32 -> bf16 rounding (nearest even) of model.h5.
run "export --dtype bf16" 0 "$ckpt" export "$dense" --dtype bf16 --format safetensors --out "$work/bf16.safetensors" \
  --no-progress && out_has "safetensors BF16"
py "bf16 export matches torch's rounding" "$work" <<'EOF'
import json, os, struct, sys, h5py, numpy as np, torch
w = sys.argv[1]
raw = open(os.path.join(w, "bf16.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n].decode("utf-8"))
assert n % 8 == 0 and header.pop("__metadata__")["format"] == "pt"
data = raw[8 + n:]
with h5py.File(os.path.join(w, "dense/step-00000020/model.h5"), "r") as f:
    assert sorted(header) == sorted(f["weight"])
    for name, t in header.items():
        b, e = t["data_offsets"]
        assert t["dtype"] == "BF16" and e - b == 2 * int(np.prod(t["shape"])), (name, t)
        got = np.frombuffer(data[b:e], dtype="<u2").reshape(t["shape"])
        want = torch.from_numpy(f["weight"][name][...]).to(torch.bfloat16).view(torch.int16).numpy().view("<u2")
        assert np.array_equal(got, want), name
EOF
run "export --dtype fp16" 2 "$ckpt" export "$dense" --dtype fp16 --format safetensors --out "$work/x.safetensors" &&
  err_has "--dtype fp16 is not supported \(allowed: fp32, bf16\)"
run "export of an unknown format" 2 "$ckpt" export "$dense" --format gguf --out "$work/x.gguf" &&
  err_has "--format gguf is not supported \(allowed: safetensors, hf, peft\)"
run "export without --out" 2 "$ckpt" export "$dense" --format safetensors && err_has "missing --out"

# A failed or interrupted export leaves neither FILE nor FILE.tmp.
mkdir "$work/outdir"
run "export to a directory" 1 "$ckpt" export "$dense" --format safetensors --out "$work/outdir" --no-progress &&
  err_has "--out .*outdir is a directory; give the file to write, e.g. --out .*outdir/model.safetensors"
run "export into a missing directory" 1 "$ckpt" export "$dense" --format safetensors --out "$work/nowhere/m.safetensors" &&
  err_has "directory .*nowhere does not exist"
# A write that fails halfway: a 100 KiB file size limit (SIGXFSZ ignored, so write(2) fails with EFBIG).
run "export that fails mid-write" 1 bash -c "trap '' XFSZ; ulimit -f 100; exec '$ckpt' export '$dense' \
  --format safetensors --out '$work/big.safetensors' --no-progress" && err_has "writing .*big.safetensors.tmp failed"
# Interrupted: a FIFO in place of FILE.tmp holds the export in open(2) until the signal arrives.
for signal in TERM INT HUP; do
  cases=$((cases + 1)) name="export interrupted by SIG$signal"
  mkfifo "$work/fifo.safetensors.tmp"
  set -m  # job control: a background job keeps SIGINT
  "$ckpt" export "$dense" --format safetensors --out "$work/fifo.safetensors" --no-progress 2>"$work/stderr" &
  pid=$!
  set +m
  sleep 0.5
  kill -$signal "$pid"
  timeout 10 tail --pid="$pid" -f /dev/null
  kill -9 "$pid" 2>/dev/null  # still running 10 s after the signal: a failure, not a hang
  wait "$pid" 2>/dev/null
  code=$?
  if [ "$code" -ne $((128 + $(kill -l "$signal"))) ]; then fail "exit code $code, expected death by SIG$signal"
  elif [ -e "$work/fifo.safetensors.tmp" ] || [ -e "$work/fifo.safetensors" ]; then fail "left $(ls "$work"/fifo*)"
  else echo "ok   $name"; fi
  rm -f "$work/fifo.safetensors.tmp"
done 2>/dev/null  # bash's job-control notice of the signalled job
leftovers=$(ls -d "$work"/*.tmp "$work"/outdir?* "$work/big.safetensors" 2>/dev/null)
[ -z "$leftovers" ] || { name="failed exports"; fail "left $leftovers behind"; }

# ---- ledger --------------------------------------------------------------------------------------
run "ledger before any event" 0 "$ckpt" ledger "$dense" && out_has "no hot-load events recorded yet"
cat >"$dense/ledger.jsonl" <<'EOF'
{"event": "load_started", "step": 10, "replica": 0, "time": "2026-01-01T00:00:00Z"}
{"event": "loaded", "step": 10, "replica": 0, "ms": 812.5, "bytes": 5555336, "time": "2026-01-01T00:00:01Z"}

{"event": "loaded", "step": 10, "replica": "r1", "ms": 790, "bytes": 5555336, "future_field": [1, 2]}
{"event": "load_failed", "step": 20, "replica": 1, "reason": "shard-00000.h5 fails its checksum"}
EOF
run "ledger" 0 "$ckpt" ledger "$dense" && {
  out_has "^ +2 +2026-01-01T00:00:01Z +loaded +10 +0 +812\.5 +5\.30 MiB"
  out_has "^ +5 +load_failed +20 +1 .*shard-00000.h5 fails its checksum"
  out_has "^ +10 +3 +load_started x1, loaded x2 +2 +812\.5 +10\.60 MiB"; out_has "4 event\(s\) over 2 step\(s\)"; }
run "ledger --tail 1" 0 "$ckpt" ledger "$dense" --tail 1 && { out_has "events \(last 1\)"; out_lacks "load_started +10 +0"; }
printf '{"event": "loaded", "step": 10}\n{"event": "loaded", "step": 11}\n{"event": "loaded", "step": 12,\n' >"$dense/ledger.jsonl"
run "ledger with a malformed line" 1 "$ckpt" ledger "$dense" && err_has "ledger.jsonl line 3: not valid JSON"
printf '{"event": "loaded", "step": 10}\n{"event": "loaded"}\n' >"$dense/ledger.jsonl"
run "ledger line without a step" 1 "$ckpt" ledger "$dense" && err_has "ledger.jsonl line 2: missing \"step\""
printf '{"event": "loaded", "step": 10, "ms": "fast"}\n' >"$dense/ledger.jsonl"
run "ledger field of the wrong type" 1 "$ckpt" ledger "$dense" && err_has "line 1: \"ms\" is \"fast\" \(string\); allowed: a number >= 0"
printf '[1, 2]\n' >"$dense/ledger.jsonl"
run "ledger line that is not an object" 1 "$ckpt" ledger "$dense" && err_has "line 1: expected a JSON object, got array"
rm "$dense/ledger.jsonl"

# ---- command line ----------------------------------------------------------------------------------
for command in inspect verify diff reshard export ledger rollback; do
  run "$command --help" 0 "$ckpt" "$command" --help && out_has "flywheel-ckpt $command "
done
run "--help" 0 "$ckpt" --help && out_has "commands:"
run "no command" 2 "$ckpt" && err_has "usage: flywheel-ckpt <command>"
run "unknown command" 2 "$ckpt" frobnicate && err_has "unknown command 'frobnicate'; commands: list, inspect, verify"
run "unknown option" 2 "$ckpt" inspect "$dense" --bogus && err_has "usage error: .*bogus.*flywheel-ckpt inspect --help"
run "missing run directory argument" 2 "$ckpt" verify && err_has "missing RUN_DIR"
run "extra argument" 2 "$ckpt" inspect "$dense" "$moe" && err_has "unexpected argument"
run "non-numeric --step" 2 "$ckpt" verify "$dense" --step ten && err_has "--step 'ten' is not a step number"
run "--step with --all" 2 "$ckpt" verify "$dense" --all --step 10 && err_has "exclude each other"
run "diff needs two sides" 2 "$ckpt" diff "$dense" && err_has "missing RUN_A\[:STEP\] RUN_B\[:STEP\]"

# ---- progress on a terminal (util-linux `script` gives the tool a TTY) ----------------------------
if command -v script >/dev/null 2>&1; then
  run "progress bar on a TTY" 0 script -qec "'$ckpt' verify '$dense' >/dev/null" /dev/null && {
    grep -q $'\r' "$work/stdout" || fail "no carriage return: not redrawn in place"
    out_has "verify \[====================\] 100% [0-9.]+/[0-9.]+ MiB [0-9.]+ [KMG]iB/s ETA 0s"; }
else
  echo "skip progress bar on a TTY (no \`script\` command)"
fi

# Reading never changes a run directory: the interrupted save is still there.
name="read-only"; cases=$((cases + 1))
[ -d "$dense/step-00000030.partial" ] && echo "ok   $name" || fail "step-00000030.partial was removed"

finish
