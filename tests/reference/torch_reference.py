#!/usr/bin/python3
"""Independent float64 PyTorch oracle for the Flywheel C++ transformer trainer.

Reads a dump written by the C++ side (manifest.json + tensors.bin), recomputes
logits, losses and every parameter gradient in float64 from the dumped fp32
weights, and compares them with the C++ results.

Exit status: 0 all checks within rtol, 1 some check failed (tolerance, or the
set of grad.* tensors differs from the parameters), 2 malformed dump.

The model is written from the project spec, deliberately without importing
transformers, so that it is an independent second implementation. forward()
is dtype-generic; make_selftest_dump.py imports it to build fp32 test dumps.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"f32": np.dtype("<f4"), "i32": np.dtype("<i4")}
CORE_KEYS = ["vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim",
             "d_ff", "rope_theta", "norm_eps", "tie_embeddings", "moe_experts"]
MOE_KEYS = ["moe_top_k", "moe_d_ff", "moe_shared_expert", "moe_normalize_topk",
            "moe_aux_loss_coef"]


class DumpError(Exception):
    """The dump itself is unusable (exit 2), as opposed to a numeric mismatch."""


# ----------------------------------------------------------------------------- model
# Architecture switches a dump may omit (older dumps, make_selftest_dump.py), with HF's defaults.
OPTIONAL_KEYS = {"qk_norm": False, "attention_bias": False, "rope_scaling": None,
                 "moe_decoder_sparse_step": 1, "moe_mlp_only_layers": [], "lora": None}


def opt(cfg, key):
    return cfg.get(key, OPTIONAL_KEYS[key])


def is_moe_layer(cfg, i):
    """HF Qwen3MoeDecoderLayer: sparse iff not in mlp_only_layers, experts exist and
    (layer_idx + 1) % decoder_sparse_step == 0."""
    return (i not in opt(cfg, "moe_mlp_only_layers") and cfg["moe_experts"] > 0
            and (i + 1) % opt(cfg, "moe_decoder_sparse_step") == 0)


# LoRA target kinds (the [lora] targets of the dump's config) -> the module names they adapt, as PEFT's
# target_modules would name them; "experts" adapts the routed experts' three projections.
LORA_KINDS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
              "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


def lora_targets(cfg):
    """The set of target kinds, or None without adapters."""
    lora = opt(cfg, "lora")
    if not lora:
        return None
    kinds = set()
    for name in lora["targets"].split(","):
        name = name.strip()
        if name == "all-linear":
            kinds |= set(LORA_KINDS) | {"experts"}
        else:
            kinds.add(next((k for k, m in LORA_KINDS.items() if name in (k, m)), name))
    return kinds


def lora_scaling(cfg):
    """PEFT LoraLayer.update_layer: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora."""
    lora = cfg["lora"]
    r = lora["rank"]
    return lora["alpha"] / math.sqrt(r) if lora["use_rslora"] else lora["alpha"] / r


def adapter_shapes(cfg, shapes):
    """PEFT's lora_A [r, in] / lora_B [out, r] next to every targeted base weight of `shapes`."""
    kinds = lora_targets(cfg)
    if kinds is None:
        return {}
    r = cfg["lora"]["rank"]
    out = {}
    for name, shape in shapes.items():
        if not name.endswith("_proj.weight"):
            continue
        module = name[:-len(".weight")]
        kind = next(k for k, m in LORA_KINDS.items() if module.endswith("." + m))
        if ".mlp.experts." in name:
            if "experts" not in kinds:
                continue
        elif kind not in kinds:
            continue
        out[module + ".lora_A.weight"] = [r, shape[1]]
        out[module + ".lora_B.weight"] = [shape[0], r]
    return out


def param_shapes(cfg):
    """Expected parameter names -> shapes (the base's, then any LoRA adapters), in a stable order."""
    V, d, L = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"]
    q_dim = cfg["n_heads"] * cfg["head_dim"]
    kv_dim = cfg["n_kv_heads"] * cfg["head_dim"]
    shapes = {"model.embed_tokens.weight": [V, d]}

    def swiglu(prefix, ff):
        shapes[prefix + "gate_proj.weight"] = [ff, d]
        shapes[prefix + "up_proj.weight"] = [ff, d]
        shapes[prefix + "down_proj.weight"] = [d, ff]

    for i in range(L):
        P = f"model.layers.{i}."
        shapes[P + "input_layernorm.weight"] = [d]
        shapes[P + "self_attn.q_proj.weight"] = [q_dim, d]
        shapes[P + "self_attn.k_proj.weight"] = [kv_dim, d]
        shapes[P + "self_attn.v_proj.weight"] = [kv_dim, d]
        shapes[P + "self_attn.o_proj.weight"] = [d, q_dim]
        if opt(cfg, "attention_bias"):  # HF Llama/Qwen3: nn.Linear(..., bias=attention_bias) on all four
            shapes[P + "self_attn.q_proj.bias"] = [q_dim]
            shapes[P + "self_attn.k_proj.bias"] = [kv_dim]
            shapes[P + "self_attn.v_proj.bias"] = [kv_dim]
            shapes[P + "self_attn.o_proj.bias"] = [d]
        if opt(cfg, "qk_norm"):  # HF Qwen3Attention: Qwen3RMSNorm(head_dim)
            shapes[P + "self_attn.q_norm.weight"] = [cfg["head_dim"]]
            shapes[P + "self_attn.k_norm.weight"] = [cfg["head_dim"]]
        shapes[P + "post_attention_layernorm.weight"] = [d]
        E = cfg["moe_experts"]
        if not is_moe_layer(cfg, i):
            swiglu(P + "mlp.", cfg["d_ff"])
        else:
            shapes[P + "mlp.gate.weight"] = [E, d]
            for e in range(E):
                swiglu(P + f"mlp.experts.{e}.", cfg["moe_d_ff"])
            if cfg["moe_shared_expert"]:
                swiglu(P + "mlp.shared_expert.", cfg["moe_d_ff"])
    shapes["model.norm.weight"] = [d]
    if not cfg["tie_embeddings"]:
        shapes["lm_head.weight"] = [V, d]
    shapes.update(adapter_shapes(cfg, shapes))
    return shapes


def linear(x, p, module, cfg, bias=False):
    """x W^T (+ b), plus PEFT's LoRA term when the module has an adapter:
    result + lora_B(lora_A(dropout(x))) * scaling (peft/tuners/lora/layer.py, Linear.forward)."""
    y = x @ p[module + ".weight"].T
    if bias:
        y = y + p[module + ".bias"]
    if module + ".lora_A.weight" in p:
        y = y + ((x @ p[module + ".lora_A.weight"].T) @ p[module + ".lora_B.weight"].T) * lora_scaling(cfg)
    return y


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def llama3_inv_freq(inv_freq, rs):
    """HF rope_type "llama3" (modeling_rope_utils._compute_llama3_parameters), vectorised:
    long wavelengths divided by factor, short ones kept, a linear blend in between."""
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_ctx / lo, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_ctx / hi) & (wavelen <= old_ctx / lo)
    return torch.where(medium, blended, scaled)


def rope(x, theta, rope_scaling=None):
    """HF rotate_half RoPE on x [B, T, H, D], positions 0..T-1 per sequence."""
    T, D = x.shape[1], x.shape[3]
    half = D // 2
    # Angles in float64 regardless of x's dtype, so the fp32 self-test differs
    # from the oracle only by arithmetic rounding, not by table precision.
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    if rope_scaling is not None:
        if rope_scaling.get("rope_type") != "llama3":
            raise DumpError(f"config: unsupported rope_scaling {rope_scaling!r}")
        inv_freq = llama3_inv_freq(inv_freq, rope_scaling)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos = ang.cos().to(x.dtype)[None, :, None, :]
    sin = ang.sin().to(x.dtype)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(h, p, P, cfg):
    B, T, _ = h.shape
    H, Hkv, D = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    A = P + "self_attn."

    def proj(name, x):
        return linear(x, p, A + name, cfg, bias=opt(cfg, "attention_bias"))

    q = proj("q_proj", h).view(B, T, H, D)
    k = proj("k_proj", h).view(B, T, Hkv, D)
    v = proj("v_proj", h).view(B, T, Hkv, D)
    if opt(cfg, "qk_norm"):  # Qwen3: per head over head_dim, before RoPE
        q = rms_norm(q, p[A + "q_norm.weight"], cfg["norm_eps"])
        k = rms_norm(k, p[A + "k_norm.weight"], cfg["norm_eps"])
    rs = opt(cfg, "rope_scaling")
    q, k = rope(q, cfg["rope_theta"], rs), rope(k, cfg["rope_theta"], rs)
    # [B, heads, T, D]; repeat_interleave maps query head hq -> kv head hq // group.
    group = H // Hkv
    q = q.transpose(1, 2)
    k = k.transpose(1, 2).repeat_interleave(group, dim=1)
    v = v.transpose(1, 2).repeat_interleave(group, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(causal, float("-inf"))
    o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * D)
    return proj("o_proj", o)


def swiglu(h, p, prefix, cfg):
    g = linear(h, p, prefix + "gate_proj", cfg)
    u = linear(h, p, prefix + "up_proj", cfg)
    return linear(F.silu(g) * u, p, prefix + "down_proj", cfg)


def moe(h, p, P, cfg):
    """Returns (y, aux_layer) for h [B, T, d]."""
    B, T, d = h.shape
    E, k = cfg["moe_experts"], cfg["moe_top_k"]
    x = h.reshape(B * T, d)
    N = x.shape[0]
    probs = torch.softmax(x @ p[P + "mlp.gate.weight"].T, dim=-1)  # [N, E]
    # Top-k by prob; a stable descending sort breaks ties toward the lower
    # expert index (torch.topk does not promise that). Not differentiated.
    with torch.no_grad():
        idx = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :k]
    sel = probs.gather(1, idx)  # gradient flows into the router through here
    w = sel / sel.sum(-1, keepdim=True) if cfg["moe_normalize_topk"] else sel
    y = torch.zeros_like(x)
    for e in range(E):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if tok.numel():
            out = swiglu(x[tok], p, P + f"mlp.experts.{e}.", cfg)
            y = y.index_add(0, tok, w[tok, slot].unsqueeze(-1) * out)
    if cfg["moe_shared_expert"]:
        y = y + swiglu(x, p, P + "mlp.shared_expert.", cfg)
    # Switch-style load balancing: f_e is a routing-count constant, P_e carries grad.
    chosen = torch.zeros(N, E, dtype=probs.dtype).scatter(1, idx, 1.0)
    f = chosen.sum(0) / (N * k)
    aux = E * (f * probs.mean(0)).sum()
    return y.view(B, T, d), aux


def forward(p, tokens, targets, loss_mask, cfg):
    """p: name -> tensor (any float dtype). tokens/targets int64 [B, T],
    loss_mask float [B, T]. Returns dict logits, ce_loss, aux_loss, loss."""
    eps = cfg["norm_eps"]
    emb = p["model.embed_tokens.weight"]
    x = emb[tokens]
    aux_layers = []
    for i in range(cfg["n_layers"]):
        P = f"model.layers.{i}."
        x = x + attention(rms_norm(x, p[P + "input_layernorm.weight"], eps), p, P, cfg)
        h = rms_norm(x, p[P + "post_attention_layernorm.weight"], eps)
        if not is_moe_layer(cfg, i):
            x = x + swiglu(h, p, P + "mlp.", cfg)
        else:
            y, aux = moe(h, p, P, cfg)
            x = x + y
            aux_layers.append(aux)
    x = rms_norm(x, p["model.norm.weight"], eps)
    w_lm = emb if cfg["tie_embeddings"] else p["lm_head.weight"]
    logits = x @ w_lm.T
    # Masked-out positions may carry any target id (e.g. -1); gather a safe one.
    safe = torch.where(loss_mask != 0, targets, torch.zeros_like(targets))
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    ce = (nll * loss_mask).sum() / loss_mask.sum()
    if aux_layers:
        aux = torch.stack(aux_layers).mean()
        loss = ce + cfg["moe_aux_loss_coef"] * aux
    else:
        aux = torch.zeros((), dtype=logits.dtype)
        loss = ce
    return {"logits": logits, "ce_loss": ce, "aux_loss": aux, "loss": loss}


# ----------------------------------------------------------------------------- dump I/O
def load_dump(dump_dir):
    """Returns (config, {name: numpy array}); raises DumpError on any defect."""
    man_path = os.path.join(dump_dir, "manifest.json")
    bin_path = os.path.join(dump_dir, "tensors.bin")
    for path in (man_path, bin_path):
        if not os.path.isfile(path):
            raise DumpError(f"missing file {path}")
    try:
        with open(man_path) as fh:
            manifest = json.load(fh)
    except ValueError as exc:
        raise DumpError(f"{man_path} is not valid JSON: {exc}")
    for key in ("config", "tensors"):
        if key not in manifest:
            raise DumpError(f"manifest.json has no '{key}' key")
    cfg = manifest["config"]
    if not isinstance(cfg, dict) or not isinstance(manifest["tensors"], dict):
        raise DumpError("manifest 'config' and 'tensors' must be JSON objects")
    for key in CORE_KEYS + (MOE_KEYS if cfg.get("moe_experts", 0) else []):
        if key not in cfg:
            raise DumpError(f"config is missing key '{key}'")
    if cfg["n_kv_heads"] <= 0 or cfg["n_heads"] % cfg["n_kv_heads"]:
        raise DumpError("config: n_heads must be a positive multiple of n_kv_heads")
    if cfg["head_dim"] % 2:
        raise DumpError("config: head_dim must be even for RoPE")
    with open(bin_path, "rb") as fh:
        blob = fh.read()
    tensors = {}
    for name, meta in manifest["tensors"].items():
        if not isinstance(meta, dict):
            raise DumpError(f"tensor '{name}' manifest entry is not an object")
        for key in ("dtype", "shape", "offset"):
            if key not in meta:
                raise DumpError(f"tensor '{name}' has no '{key}' in manifest")
        if meta["dtype"] not in DTYPES:
            raise DumpError(f"tensor '{name}' has unknown dtype {meta['dtype']!r}")
        try:
            dt, off = DTYPES[meta["dtype"]], int(meta["offset"])
            shape = [int(n) for n in meta["shape"]]
        except (TypeError, ValueError):
            raise DumpError(f"tensor '{name}' has a non-integer shape or offset")
        if any(n < 0 for n in shape):
            raise DumpError(f"tensor '{name}' has negative shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        if off < 0 or off + count * dt.itemsize > len(blob):
            raise DumpError(f"tensor '{name}' [{off}, +{count * dt.itemsize}) lies outside "
                            f"tensors.bin ({len(blob)} bytes)")
        arr = np.frombuffer(blob, dtype=dt, count=count, offset=off).reshape(shape)
        tensors[name] = (meta["dtype"], arr.copy())
    return cfg, tensors


def need(tensors, name, dtype, shape=None):
    """Fetch a tensor, enforcing dtype and (unless None) shape."""
    if name not in tensors:
        raise DumpError(f"missing tensor '{name}'")
    got_dtype, arr = tensors[name]
    if got_dtype != dtype:
        raise DumpError(f"tensor '{name}' has dtype {got_dtype}, expected {dtype}")
    if shape is not None and list(arr.shape) != list(shape):
        raise DumpError(f"tensor '{name}' has shape {list(arr.shape)}, expected {list(shape)}")
    return arr


# ----------------------------------------------------------------------------- check
def rel_err(cpp, ref):
    diff = np.linalg.norm((cpp - ref).ravel())
    return diff / max(np.linalg.norm(ref.ravel()), 1e-30), float(np.max(np.abs(cpp - ref)))


def run(dump_dir, rtol):
    cfg, tensors = load_dump(dump_dir)
    shapes = param_shapes(cfg)
    V = cfg["vocab_size"]
    toks = need(tensors, "batch.tokens", "i32")
    if toks.ndim != 2:
        raise DumpError(f"batch.tokens must be 2-D [B, T], got shape {list(toks.shape)}")
    B, T = toks.shape
    tgts = need(tensors, "batch.targets", "i32", [B, T])
    mask = need(tensors, "batch.loss_mask", "f32", [B, T])
    if toks.min(initial=0) < 0 or toks.max(initial=0) >= V:
        raise DumpError(f"batch.tokens has ids outside [0, {V})")
    live = tgts[mask != 0]
    if live.size and (live.min() < 0 or live.max() >= V):
        raise DumpError(f"batch.targets has unmasked ids outside [0, {V})")
    if mask.sum() <= 0:
        raise DumpError("batch.loss_mask sums to zero; ce_loss is undefined")

    # With LoRA the base is frozen (PEFT: requires_grad False outside the adapters): only adapters have gradients.
    lora = lora_targets(cfg) is not None
    trainable = {n for n in shapes if not lora or ".lora_" in n}
    params = {n: torch.tensor(need(tensors, n, "f32", s), dtype=torch.float64, requires_grad=n in trainable)
              for n, s in shapes.items()}
    extra = [n for n in tensors if n not in shapes
             and not n.startswith(("batch.", "out.", "grad."))]
    if extra:
        raise DumpError(f"unexpected tensors (not parameters of this config): {sorted(extra)}")

    out = forward(params, torch.tensor(toks, dtype=torch.int64),
                  torch.tensor(tgts, dtype=torch.int64),
                  torch.tensor(mask, dtype=torch.float64), cfg)
    out["loss"].backward()
    for n in trainable:  # an expert that received no token has no grad: it is zero
        if params[n].grad is None:
            params[n].grad = torch.zeros_like(params[n])

    # (name, C++ value, reference value); shapes are enforced by need().
    pairs = [("out.logits", need(tensors, "out.logits", "f32", [B, T, V]), out["logits"])]
    keys = ["loss", "ce_loss"]
    if cfg["moe_experts"] or "out.aux_loss" in tensors:  # dense: checked against 0 if present
        keys.append("aux_loss")
    for key in keys:
        pairs.append((f"out.{key}", need(tensors, f"out.{key}", "f32", [1]), out[key].reshape(1)))
    failures = []
    grads = {n[5:] for n in tensors if n.startswith("grad.")}
    for n in sorted(trainable - grads):
        failures.append(f"missing gradient grad.{n}")
    for n in sorted(grads - trainable):
        failures.append(f"extra gradient grad.{n} (no such parameter, or a frozen one)")
    for n, s in shapes.items():
        if n in grads and n in trainable:
            pairs.append((f"grad.{n}", need(tensors, f"grad.{n}", "f32", s), params[n].grad))

    rows = []
    for name, cpp, ref in pairs:
        ref = ref.detach().numpy()
        err, mx = rel_err(cpp.astype(np.float64), ref)
        rows.append((name, list(cpp.shape), err, mx))
    # NaN sorts as worst (and fails: NaN <= rtol is False).
    rows.sort(key=lambda r: -math.inf if math.isnan(r[2]) else -r[2])
    print(f"{'tensor':<56} {'shape':<16} {'rel err':>10} {'max abs err':>12}")
    for name, shape, err, mx in rows:
        flag = "" if err <= rtol else "  FAIL"
        print(f"{name:<56} {str(shape):<16} {err:10.3e} {mx:12.3e}{flag}")
        if not err <= rtol:
            failures.append(f"{name}: rel err {err:.3e} > rtol {rtol:g}")
    for msg in failures:
        print(f"FAILURE: {msg}")
    worst = rows[0]
    print(f"reference: {len(rows)} tensors checked, worst rel err {worst[2]:.3e} ({worst[0]}), "
          f"tolerance {rtol:g}")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(
        description="Check a Flywheel C++ forward/backward dump against a float64 PyTorch "
                    "reference. Exit 0 = pass, 1 = mismatch, 2 = malformed dump.")
    ap.add_argument("dump_dir", metavar="DUMP_DIR", help="directory with manifest.json and tensors.bin")
    ap.add_argument("--rtol", type=float, default=1e-5,
                    help="max allowed ||cpp-ref||_2 / ||ref||_2 per tensor (default 1e-5)")
    args = ap.parse_args()
    try:
        sys.exit(run(args.dump_dir, args.rtol))
    except DumpError as exc:
        print(f"torch_reference: malformed dump {args.dump_dir}: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
