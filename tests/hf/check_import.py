#!/usr/bin/python3
"""Checks a Hugging Face import against the model directory it came from, independently of Flywheel:
every tensor of the dump (dump_model --model.from_hf=DIR, tests/reference/dump_model.cpp) must equal
the file's tensor of the same name bit for bit once widened to fp32 (BF16 and F16 widen exactly),
the dump must hold exactly the files' tensors (lm_head.weight absent when tied), and the dump's
model config must be the config.json's.

    check_import.py HF_DIR DUMP_DIR

The forward and every gradient of the dumped weights are checked by tests/reference/torch_reference.py
(an HF-convention float64 implementation); together: the import feeds the HF model to the trainer.
"""
import json
import os
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    """{name: fp32 array} of one file, parsed with struct + json (the format's README)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    data, out = raw[8 + n:], {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        chunk = data[b:e]
        if t["dtype"] == "F32":
            values = np.frombuffer(chunk, "<f4")
        elif t["dtype"] == "F16":
            values = np.frombuffer(chunk, "<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            values = torch.frombuffer(bytearray(chunk), dtype=torch.bfloat16).float().numpy()
        else:
            raise SystemExit(f"{path}: {name} has dtype {t['dtype']}")
        out[name] = values.reshape(t["shape"])
    return out


def read_model(hf_dir):
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    with open(index) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for file in files:
        out.update(read_safetensors(os.path.join(hf_dir, file)))
    return out


def read_dump(dump_dir):
    with open(os.path.join(dump_dir, "manifest.json")) as f:
        manifest = json.load(f)
    blob = open(os.path.join(dump_dir, "tensors.bin"), "rb").read()
    weights = {}
    for name, t in manifest["tensors"].items():
        if name.startswith(("grad.", "batch.", "out.")):
            continue
        count = int(np.prod(t["shape"], dtype=np.int64))
        weights[name] = np.frombuffer(blob, "<f4", count, t["offset"]).reshape(t["shape"])
    return manifest["config"], weights


def main():
    hf_dir, dump_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(hf_dir, "config.json")) as f:
        hf = json.load(f)
    config, dumped = read_dump(dump_dir)
    files = read_model(hf_dir)
    failures = []
    expect = {"vocab_size": hf["vocab_size"], "d_model": hf["hidden_size"], "n_layers": hf["num_hidden_layers"],
              "n_heads": hf["num_attention_heads"], "n_kv_heads": hf["num_key_value_heads"],
              "head_dim": hf["head_dim"], "d_ff": hf["intermediate_size"], "rope_theta": hf["rope_theta"],
              "norm_eps": hf["rms_norm_eps"], "tie_embeddings": hf["tie_word_embeddings"],
              "attention_bias": hf["attention_bias"], "qk_norm": hf["model_type"] != "llama",
              "moe_experts": hf.get("num_experts", 0)}
    if hf["model_type"] == "qwen3_moe":
        expect.update({"moe_top_k": hf["num_experts_per_tok"], "moe_d_ff": hf["moe_intermediate_size"],
                       "moe_normalize_topk": hf["norm_topk_prob"], "moe_shared_expert": False,
                       "moe_decoder_sparse_step": hf["decoder_sparse_step"],
                       "moe_mlp_only_layers": hf["mlp_only_layers"]})
    rs = hf.get("rope_scaling")
    if rs:
        expect["rope_scaling"] = {"rope_type": rs["rope_type"], "factor": rs["factor"],
                                  "low_freq_factor": rs["low_freq_factor"], "high_freq_factor": rs["high_freq_factor"],
                                  "original_max_position_embeddings": rs["original_max_position_embeddings"]}
    for key, want in expect.items():
        if config.get(key) != want:
            failures.append(f"config {key}: dump {config.get(key)!r}, config.json {want!r}")
    stored = {n for n in files if not (hf["tie_word_embeddings"] and n == "lm_head.weight")}
    if set(dumped) != stored:
        failures.append(f"tensor sets differ: only in dump {sorted(set(dumped) - stored)[:5]}, "
                        f"only in files {sorted(stored - set(dumped))[:5]}")
    for name in sorted(set(dumped) & stored):
        a, b = dumped[name], np.ascontiguousarray(files[name], np.float32)
        if a.shape != b.shape or not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
            failures.append(f"{name}: values differ from the file's")
    for f in failures:
        print("FAIL", f)
    print(f"check_import: {len(dumped)} tensors, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
