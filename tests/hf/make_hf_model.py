#!/usr/bin/python3
"""Writes a small random Hugging Face model directory, independently of Flywheel's C++ code:
config.json and generation_config.json as transformers writes them for Qwen3ForCausalLM,
Qwen3MoeForCausalLM and LlamaForCausalLM (keys and values from transformers'
configuration_qwen3.py / configuration_qwen3_moe.py / configuration_llama.py and the published
configs of Qwen/Qwen3-0.6B, Qwen/Qwen3-30B-A3B and meta-llama/Llama-3.2-1B), and the weights as
model.safetensors or as shards with model.safetensors.index.json (huggingface_hub's layout), written
with struct + json by tests/safetensors/oracle.py.

Tensor names and shapes are those of transformers' modeling_qwen3.py / modeling_qwen3_moe.py /
modeling_llama.py (nn.Linear weights are [out_features, in_features]). Values: matrices N(0, std^2),
norm gains 1 + N(0, 0.1^2), biases N(0, 0.05^2), from torch's generator seeded with --seed.

    make_hf_model.py --arch qwen3 --out DIR [--dtype BF16] [--shard-bytes N] [dimension flags]
    make_hf_model.py --arch qwen3 --preset qwen3-0.6b --out DIR     # the published 0.6B dimensions

Defects for bad-input tests: --drop NAME, --extra NAME, --reshape NAME=D0xD1, --retype NAME=I32,
--truncate BYTES (cut the last file), --config-set KEY=JSON (write any config.json value).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "safetensors"))
import oracle  # noqa: E402  (write_file: the independent safetensors writer)

PRESETS = {
    # Qwen/Qwen3-0.6B config.json: 28 layers, hidden 1024, 16 heads of 128, 8 KV heads, tied.
    "qwen3-0.6b": dict(vocab=151936, hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, ffn=3072,
                       tied=True, max_positions=40960, rope_theta=1000000.0, eps=1e-6),
}


def config_json(a):
    base = {
        "attention_dropout": 0.0, "bos_token_id": a.bos, "eos_token_id": a.eos, "hidden_act": "silu",
        "hidden_size": a.hidden, "initializer_range": 0.02, "intermediate_size": a.ffn,
        "max_position_embeddings": a.max_positions, "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers, "num_key_value_heads": a.kv_heads, "rms_norm_eps": a.eps,
        "rope_theta": a.rope_theta, "tie_word_embeddings": a.tied, "torch_dtype": TORCH_DTYPE[a.dtype],
        "transformers_version": "4.51.0", "use_cache": True, "vocab_size": a.vocab, "attention_bias": a.bias,
    }
    if a.arch == "llama":
        base.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "head_dim": a.head_dim,
                     "mlp_bias": False, "pretraining_tp": 1,
                     "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                      "original_max_position_embeddings": a.rope_original, "rope_type": "llama3"}})
    else:
        base.update({"head_dim": a.head_dim, "max_window_layers": a.layers, "rope_scaling": None,
                     "sliding_window": None, "use_sliding_window": False})
        if a.arch == "qwen3":
            base.update({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"})
        else:
            base.update({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
                         "decoder_sparse_step": a.sparse_step, "moe_intermediate_size": a.moe_ffn,
                         "norm_topk_prob": a.norm_topk, "num_experts": a.experts,
                         "num_experts_per_tok": a.top_k, "output_router_logits": False,
                         "router_aux_loss_coef": 0.001, "mlp_only_layers": a.mlp_only})
    for item in a.config_set:
        key, value = item.split("=", 1)
        base[key] = json.loads(value)
    return base


def is_moe_layer(a, i):
    """modeling_qwen3_moe.Qwen3MoeDecoderLayer."""
    return a.arch == "qwen3_moe" and i not in a.mlp_only and a.experts > 0 and (i + 1) % a.sparse_step == 0


def tensor_shapes(a):
    """name -> (shape, kind) in the order modeling_*.py registers them; kind picks the init."""
    d, hd = a.hidden, a.head_dim
    out = [("model.embed_tokens.weight", [a.vocab, d], "matrix")]

    def mlp(prefix, ff):
        out.extend([(prefix + "gate_proj.weight", [ff, d], "matrix"), (prefix + "up_proj.weight", [ff, d], "matrix"),
                    (prefix + "down_proj.weight", [d, ff], "matrix")])

    for i in range(a.layers):
        p = f"model.layers.{i}."
        for proj, rows, cols in (("q", a.heads * hd, d), ("k", a.kv_heads * hd, d), ("v", a.kv_heads * hd, d),
                                 ("o", d, a.heads * hd)):
            out.append((p + f"self_attn.{proj}_proj.weight", [rows, cols], "matrix"))
            if a.bias:
                out.append((p + f"self_attn.{proj}_proj.bias", [rows], "bias"))
        if a.arch != "llama":
            out.extend([(p + "self_attn.q_norm.weight", [hd], "gain"), (p + "self_attn.k_norm.weight", [hd], "gain")])
        out.extend([(p + "input_layernorm.weight", [d], "gain"), (p + "post_attention_layernorm.weight", [d], "gain")])
        if is_moe_layer(a, i):
            out.append((p + "mlp.gate.weight", [a.experts, d], "matrix"))
            for e in range(a.experts):
                mlp(p + f"mlp.experts.{e}.", a.moe_ffn)
        else:
            mlp(p + "mlp.", a.ffn)
    out.append(("model.norm.weight", [d], "gain"))
    if not a.tied:
        out.append(("lm_head.weight", [a.vocab, d], "matrix"))
    return out


TORCH_DTYPE = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def encode(values, dtype):
    """fp32 torch tensor -> raw little-endian bytes in `dtype` (torch's round to nearest even)."""
    if dtype == "F32":
        return values.numpy().astype("<f4").tobytes()
    if dtype == "BF16":
        return values.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    if dtype == "F16":
        return values.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "I32":
        return values.to(torch.int32).numpy().astype("<i4").tobytes()
    raise SystemExit(f"unknown dtype {dtype}")


def make_tensors(a):
    gen = torch.Generator().manual_seed(a.seed)
    tensors = {}
    reshape = dict(item.split("=", 1) for item in a.reshape)
    retype = dict(item.split("=", 1) for item in a.retype)
    shapes = tensor_shapes(a) + [(name, [4, 4], "matrix") for name in a.extra]
    for name, shape, kind in shapes:
        if name in a.drop:
            continue
        if name in reshape:
            shape = [int(x) for x in reshape[name].split("x")]
        values = torch.randn(shape, generator=gen, dtype=torch.float32)
        values = {"matrix": values * a.std, "gain": 1 + 0.1 * values, "bias": 0.05 * values}[kind]
        dtype = retype.get(name, a.dtype)
        tensors[name] = (dtype, shape, encode(values, dtype))
    return tensors


def write_weights(a, tensors):
    """model.safetensors, or greedy shards of at most --shard-bytes with an index (huggingface_hub)."""
    if a.shard_bytes <= 0:
        files = {"model.safetensors": list(tensors)}
    else:
        groups, size = [[]], 0
        for name in tensors:
            n = len(tensors[name][2])
            if groups[-1] and size + n > a.shard_bytes:
                groups.append([])
                size = 0
            groups[-1].append(name)
            size += n
        files = {f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors": g for i, g in enumerate(groups)}
    for file, names in files.items():
        oracle.write_file(os.path.join(a.out, file), {n: tensors[n] for n in names}, {"format": "pt"})
    if a.shard_bytes > 0:
        index = {"metadata": {"total_size": sum(len(t[2]) for t in tensors.values())},
                 "weight_map": {n: f for f, names in files.items() for n in names}}
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
    if a.truncate > 0:
        last = os.path.join(a.out, sorted(files)[-1])
        os.truncate(last, os.path.getsize(last) - a.truncate)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["qwen3", "qwen3_moe", "llama"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--dtype", choices=["F32", "BF16", "F16"], default="BF16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.2, help="matrix init std (large, so gradients are not tiny)")
    ap.add_argument("--shard-bytes", type=int, default=0)
    for flag, default in (("vocab", 300), ("hidden", 32), ("layers", 2), ("heads", 4), ("kv_heads", 2),
                          ("head_dim", 16), ("ffn", 48), ("experts", 4), ("top_k", 2), ("moe_ffn", 24),
                          ("sparse_step", 1), ("max_positions", 512), ("rope_original", 64), ("bos", 1), ("eos", 2)):
        ap.add_argument("--" + flag.replace("_", "-"), dest=flag, type=int, default=default)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--mlp-only", type=lambda s: [int(x) for x in s.split(",") if x], default=[])
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--bias", action="store_true", help="attention_bias: q, k, v, o biases")
    ap.add_argument("--no-norm-topk", dest="norm_topk", action="store_false")
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--extra", action="append", default=[])
    ap.add_argument("--reshape", action="append", default=[])
    ap.add_argument("--retype", action="append", default=[])
    ap.add_argument("--truncate", type=int, default=0)
    ap.add_argument("--config-set", action="append", default=[])
    a = ap.parse_args()
    if a.preset:
        for key, value in PRESETS[a.preset].items():
            setattr(a, key, value)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config_json(a), f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": a.bos, "eos_token_id": a.eos, "do_sample": True, "temperature": 0.6,
                   "top_p": 0.95, "top_k": 20, "transformers_version": "4.51.0"}, f, indent=2)
    write_weights(a, make_tensors(a))


if __name__ == "__main__":
    main()
