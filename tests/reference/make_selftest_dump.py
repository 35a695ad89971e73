#!/usr/bin/python3
"""Write a random tiny dump in the C++ dump format, for self-testing the oracle.

The "out.*" and "grad.*" entries come from torch_reference.forward() run in
float32, i.e. they play the part of an fp32 implementation. Checking the dump
with torch_reference.py (float64) therefore measures pure fp32-vs-fp64
rounding, which is the floor any correct fp32 C++ implementation can reach.

  make_selftest_dump.py OUT_DIR --config dense|moe [--set KEY=JSON ...] [--corrupt] [--seed N]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import forward, param_shapes  # noqa: E402

# Shapes are chosen to be mutually distinct (n_heads*head_dim != d_model,
# n_kv_heads < n_heads, d_ff != moe_d_ff) so that a transposed or mis-sized
# weight cannot go unnoticed.
BASE = dict(vocab_size=37, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=12,
            d_ff=40, rope_theta=10000.0, norm_eps=1e-6)
CONFIGS = {
    "dense": dict(BASE, tie_embeddings=False, moe_experts=0, moe_top_k=0, moe_d_ff=0,
                  moe_shared_expert=False, moe_normalize_topk=False, moe_aux_loss_coef=0.0),
    # Large aux coefficient so the router's aux-loss gradient is not negligible.
    "moe": dict(BASE, tie_embeddings=True, moe_experts=4, moe_top_k=2, moe_d_ff=24,
                moe_shared_expert=True, moe_normalize_topk=True, moe_aux_loss_coef=0.1),
}


def random_params(cfg, gen):
    params = {}
    for name, shape in param_shapes(cfg).items():
        if len(shape) == 1:  # norm gains: near 1 but not exactly, so their use is visible
            t = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif name.endswith("embed_tokens.weight"):
            # Moderate scale: with tied embeddings this also sets the logit scale
            # (std ~1.7 here), so the softmax is not saturated.
            t = 0.3 * torch.randn(shape, generator=gen)
        else:  # fan-in scaling keeps activations O(1) through the layers
            t = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        params[name] = t.float()
    return params


def write_dump(out_dir, cfg, tensors):
    """tensors: name -> numpy array (float32 or int32). Writes manifest + blob."""
    os.makedirs(out_dir, exist_ok=True)
    entries, offset = {}, 0
    with open(os.path.join(out_dir, "tensors.bin"), "wb") as fh:
        for name, arr in tensors.items():
            kind = {np.float32: "f32", np.int32: "i32"}[arr.dtype.type]
            data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
            entries[name] = {"dtype": kind, "shape": list(arr.shape), "offset": offset}
            fh.write(data)
            offset += len(data)
    with open(os.path.join(out_dir, "manifest.json"), "w") as fh:
        json.dump({"config": cfg, "tensors": entries}, fh, indent=1)


def main():
    ap = argparse.ArgumentParser(description="Write a random tiny fp32 dump for torch_reference.py.")
    ap.add_argument("out_dir", metavar="OUT_DIR")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="dense")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=9)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a config key, e.g. --set moe_top_k=1 (repeatable)")
    ap.add_argument("--corrupt", action="store_true",
                    help="scale one gradient by 1.01 (the checker must then fail)")
    args = ap.parse_args()

    cfg = dict(CONFIGS[args.config])
    for item in args.set:
        key, _, val = item.partition("=")
        if key not in cfg:
            ap.error(f"--set: unknown config key {key!r}")
        cfg[key] = json.loads(val)
    gen = torch.Generator().manual_seed(args.seed)
    B, T, V = args.batch, args.seq, cfg["vocab_size"]
    params = {n: t.requires_grad_() for n, t in random_params(cfg, gen).items()}
    tokens = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int32)
    targets = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int32)
    mask = (torch.rand(B, T, generator=gen) > 0.25).float()
    mask[0, 0] = 1.0  # never all-zero
    targets[mask == 0] = -1  # masked targets may be junk; the oracle must ignore them

    out = forward(params, tokens.long(), targets.long(), mask, cfg)
    out["loss"].backward()

    tensors = {n: t.detach().numpy() for n, t in params.items()}
    tensors.update({"batch.tokens": tokens.numpy(), "batch.targets": targets.numpy(),
                    "batch.loss_mask": mask.numpy(),
                    "out.logits": out["logits"].detach().numpy()})
    for key in ("loss", "ce_loss") + (("aux_loss",) if cfg["moe_experts"] else ()):
        tensors[f"out.{key}"] = out[key].detach().reshape(1).numpy()
    for n, t in params.items():
        # An expert no token was routed to gets no .grad; its gradient is zero.
        g = t.grad if t.grad is not None else torch.zeros_like(t)
        tensors[f"grad.{n}"] = g.detach().numpy().copy()
    if args.corrupt:
        # A router/expert grad in the MoE case, a norm grad in the dense one.
        victim = "grad.model.layers.1.mlp.gate.weight" if cfg["moe_experts"] \
            else "grad.model.layers.0.post_attention_layernorm.weight"
        tensors[victim] = tensors[victim] * np.float32(1.01)
        print(f"corrupted {victim} by +1%")
    write_dump(args.out_dir, cfg, tensors)
    print(f"wrote {args.config} dump ({len(tensors)} tensors, B={B} T={T}) to {args.out_dir}")


if __name__ == "__main__":
    main()
