"""Independent check of `flywheel-ckpt export --format hf` directories, without transformers.

    python3 hf_export_check.py layout DIR REFERENCE.safetensors DTYPE [MAX_SHARD_BYTES]
        config.json has every architecture key; every tensor's name and shape is what Hugging Face's
        modeling code (modeling_llama.py / modeling_qwen3.py / modeling_qwen3_moe.py) builds for that
        config; the weights (one file, or shards + index) parsed by oracle.parse equal the
        `--format safetensors` F32 export of the same step: bit for bit in fp32, and in bf16 equal to
        torch's own fp32 -> bf16 rounding of it.
    python3 hf_export_check.py loss DIR EVAL_JSONL HELD_OUT_JSONL
        the float64 forward of tests/reference/torch_reference.py, configured from config.json's HF keys
        and fed the exported weights, gives the token-mean loss `flywheel eval` printed for the same step
        (byte tokenizer: BOS prompt completion EOS, loss on completion + EOS), to 1e-5 relative.
    python3 hf_export_check.py peft PEFT_DIR MERGED_DIR REFERENCE.safetensors EVAL_JSONL HELD_OUT_JSONL
        a LoRA run's `--format peft` directory: adapter_config.json as PEFT's LoraConfig has it, its
        target_modules selecting (by PEFT's rules) exactly the modules adapter_model.safetensors adapts, every
        base_model.model.<module>.lora_A/B.weight of the right shape and bit-equal to the run's safetensors export;
        the `--format hf --merge` directory's weights W + scaling B A (float64, within one fp32 ulp); and the
        float64 forward of the base plus the adapters applied as PEFT applies them gives `flywheel eval`'s loss.
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import oracle  # noqa: E402  (the independent safetensors parser)
import torch_reference  # noqa: E402  (the independent float64 forward)

COMMON_KEYS = ["architectures", "model_type", "vocab_size", "hidden_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
               "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "attention_bias",
               "hidden_act", "torch_dtype"]
MOE_KEYS = ["num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "decoder_sparse_step",
            "mlp_only_layers", "router_aux_loss_coef"]
MODEL_TYPES = {"LlamaForCausalLM": "llama", "Qwen3ForCausalLM": "qwen3", "Qwen3MoeForCausalLM": "qwen3_moe"}


def check_config(c, dtype):
    arch = c["architectures"]
    assert isinstance(arch, list) and len(arch) == 1 and arch[0] in MODEL_TYPES, arch
    moe = arch[0] == "Qwen3MoeForCausalLM"
    for key in COMMON_KEYS + (MOE_KEYS if moe else []):
        assert key in c, "config.json lacks %s" % key
    assert c["model_type"] == MODEL_TYPES[arch[0]] and c["hidden_act"] == "silu", c
    assert c["torch_dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[dtype], c["torch_dtype"]
    assert "transformers_version" not in c
    if arch[0] == "LlamaForCausalLM":
        assert c.get("mlp_bias", False) is False and not any(k in c for k in MOE_KEYS), c
    else:
        assert c["use_sliding_window"] is False, c
    rs = c.get("rope_scaling")
    assert rs is None or (rs["rope_type"] == "llama3" and all(
        k in rs for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"))), rs
    return arch[0]


def hf_shapes(c, arch):
    """Parameter names and shapes as the HF modeling code registers them (nn.Linear weight: [out, in])."""
    V, H, L = c["vocab_size"], c["hidden_size"], c["num_hidden_layers"]
    D = c["head_dim"]
    q, kv = c["num_attention_heads"] * D, c["num_key_value_heads"] * D
    s = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H]}
    if not c["tie_word_embeddings"]:
        s["lm_head.weight"] = [V, H]

    def mlp(p, ff):
        s.update({p + "gate_proj.weight": [ff, H], p + "up_proj.weight": [ff, H], p + "down_proj.weight": [H, ff]})

    for i in range(L):
        p = "model.layers.%d." % i
        s[p + "input_layernorm.weight"] = s[p + "post_attention_layernorm.weight"] = [H]
        for name, out, inp in (("q_proj", q, H), ("k_proj", kv, H), ("v_proj", kv, H), ("o_proj", H, q)):
            s[p + "self_attn.%s.weight" % name] = [out, inp]
            if c["attention_bias"]:  # LlamaAttention / Qwen3Attention: bias=config.attention_bias on all four
                s[p + "self_attn.%s.bias" % name] = [out]
        if arch != "LlamaForCausalLM":  # Qwen3RMSNorm(head_dim)
            s[p + "self_attn.q_norm.weight"] = s[p + "self_attn.k_norm.weight"] = [D]
        # Qwen3MoeDecoderLayer: sparse iff not in mlp_only_layers, num_experts > 0, (i + 1) % step == 0.
        sparse = (arch == "Qwen3MoeForCausalLM" and i not in c["mlp_only_layers"] and c["num_experts"] > 0
                  and (i + 1) % c["decoder_sparse_step"] == 0)
        if not sparse:
            mlp(p + "mlp.", c["intermediate_size"])
            continue
        s[p + "mlp.gate.weight"] = [c["num_experts"], H]
        for e in range(c["num_experts"]):
            mlp(p + "mlp.experts.%d." % e, c["moe_intermediate_size"])
    return s


def reference_cfg(c):
    """torch_reference's config, from config.json's HF keys only."""
    moe = c["architectures"][0] == "Qwen3MoeForCausalLM"
    cfg = {"vocab_size": c["vocab_size"], "d_model": c["hidden_size"], "n_layers": c["num_hidden_layers"],
           "n_heads": c["num_attention_heads"], "n_kv_heads": c["num_key_value_heads"], "head_dim": c["head_dim"],
           "d_ff": c["intermediate_size"], "rope_theta": c["rope_theta"], "norm_eps": c["rms_norm_eps"],
           "tie_embeddings": c["tie_word_embeddings"], "qk_norm": c["architectures"][0] != "LlamaForCausalLM",
           "attention_bias": c["attention_bias"], "rope_scaling": c.get("rope_scaling"),
           "moe_experts": c["num_experts"] if moe else 0, "moe_shared_expert": False}
    if moe:
        cfg.update({"moe_top_k": c["num_experts_per_tok"], "moe_d_ff": c["moe_intermediate_size"],
                    "moe_normalize_topk": c["norm_topk_prob"], "moe_aux_loss_coef": c["router_aux_loss_coef"],
                    "moe_decoder_sparse_step": c["decoder_sparse_step"], "moe_mlp_only_layers": c["mlp_only_layers"]})
    return cfg


def read_weights(d, max_shard):
    """{name: (dtype, stored array)} from model.safetensors or the index and its shards."""
    index_path = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index_path):
        assert not max_shard or not [f for f in os.listdir(d) if f.startswith("model-")], os.listdir(d)
        return oracle.parse(os.path.join(d, "model.safetensors"))[0], 1
    assert not os.path.exists(os.path.join(d, "model.safetensors")), "both one file and shards"
    index = json.load(open(index_path))
    files = sorted(set(index["weight_map"].values()))
    assert files == ["model-%05d-of-%05d.safetensors" % (i + 1, len(files)) for i in range(len(files))], files
    assert sorted(f for f in os.listdir(d) if f.endswith(".safetensors")) == files, os.listdir(d)
    out = {}
    for f in files:
        shard = oracle.parse(os.path.join(d, f))[0]
        nbytes = sum(a.nbytes for _, a in shard.values())
        assert len(shard) == 1 or nbytes <= max_shard, (f, nbytes, max_shard)  # one oversized tensor: alone
        for name, t in shard.items():
            assert name not in out and index["weight_map"][name] == f, name
            out[name] = t
    assert sorted(out) == sorted(index["weight_map"]), "index and shards disagree"
    total = sum(a.nbytes for _, a in out.values())
    assert index["metadata"]["total_size"] == total, (index["metadata"], total)
    return out, len(files)


def layout(d, reference, dtype, max_shard=0):
    c = json.load(open(os.path.join(d, "config.json")))
    arch = check_config(c, dtype)
    gen = json.load(open(os.path.join(d, "generation_config.json")))
    assert isinstance(gen, dict), gen
    weights, shards = read_weights(d, max_shard)
    expected = hf_shapes(c, arch)
    assert {n: list(a.shape) for n, (_, a) in weights.items()} == expected, \
        sorted(set(weights) ^ set(expected)) or "shapes differ"
    assert expected == torch_reference.param_shapes(reference_cfg(c)), "HF layout and torch_reference disagree"
    ref, _ = oracle.parse(reference)
    assert sorted(ref) == sorted(weights), "the hf export and the safetensors export hold different tensors"
    for name, (kind, arr) in weights.items():
        want = ref[name][1]
        if dtype == "fp32":
            assert kind == "F32" and oracle.same_bits(arr, want), name
        else:
            rounded = np.frombuffer(oracle.bf16(want)[0], dtype="<u2").reshape(want.shape)
            assert kind == "BF16" and np.array_equal(arr, rounded), name
    print("ok   %s: %s, %d tensors (%s) in %d file(s), names and shapes as HF builds them, values match the "
          "safetensors export" % (os.path.basename(d), arch, len(weights), dtype, shards))


def held_out_loss(p, cfg, held_out):
    total, count = 0.0, 0
    for line in open(held_out):
        ex = json.loads(line)
        prompt, completion = ex["prompt"].encode(), ex["completion"].encode()
        ids = [256] + list(prompt) + list(completion) + [257]
        tokens = torch.tensor([ids[:-1]], dtype=torch.int64)
        targets = torch.tensor([ids[1:]], dtype=torch.int64)
        mask = torch.tensor([[1.0 if t + 1 >= 1 + len(prompt) else 0.0 for t in range(len(ids) - 1)]],
                            dtype=torch.float64)
        with torch.no_grad():
            out = torch_reference.forward(p, tokens, targets, mask, cfg)
        n = int(mask.sum())
        total += float(out["ce_loss"]) * n
        count += n
    return total / count, count


def eval_matches(eval_jsonl, theirs, count, what):
    """Asserts `flywheel eval`'s loss (its one JSON line) equals the float64 `theirs` over `count` tokens to 1e-5
    relative; returns (ours, rel)."""
    rows = [json.loads(line) for line in open(eval_jsonl)]
    assert len(rows) == 1 and rows[0]["loss_tokens"] == count, (rows, count)
    ours = rows[0]["loss"]
    rel = abs(ours - theirs) / abs(theirs)
    assert rel <= 1e-5, "flywheel eval loss %.9f, %s %.9f (rel %.2e)" % (ours, what, theirs, rel)
    return ours, rel


def loss(d, eval_jsonl, held_out):
    c = json.load(open(os.path.join(d, "config.json")))
    weights, _ = read_weights(d, 0)
    assert all(k == "F32" for k, _ in weights.values()), "the loss check compares fp32 exports"
    p = {n: torch.tensor(a, dtype=torch.float64) for n, (_, a) in weights.items()}
    theirs, count = held_out_loss(p, reference_cfg(c), held_out)
    ours, rel = eval_matches(eval_jsonl, theirs, count, "float64 HF-convention forward")
    print("ok   %s: flywheel eval loss %.7f = float64 forward of the export %.7f (rel %.1e, %d tokens)"
          % (os.path.basename(d), ours, theirs, rel, count))


def peft_selects(target_modules, module):
    """PEFT's check_target_module_exists: a string full-matches as a regex, a list entry matches the name or a
    '.'-separated suffix of it."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, module) is not None
    return any(module == t or module.endswith("." + t) for t in target_modules)


def peft(peft_dir, merged_dir, reference, eval_jsonl, held_out):
    conf = json.load(open(os.path.join(peft_dir, "adapter_config.json")))
    for key, want in (("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("bias", "none"), ("use_dora", False),
                      ("fan_in_fan_out", False)):
        assert conf[key] == want, (key, conf[key])
    r, alpha, rslora = conf["r"], conf["lora_alpha"], conf["use_rslora"]
    scaling = alpha / math.sqrt(r) if rslora else alpha / r  # peft/tuners/lora/layer.py update_layer
    adapter, _ = oracle.parse(os.path.join(peft_dir, "adapter_model.safetensors"))
    ref, _ = oracle.parse(reference)
    base = {n: a for n, (_, a) in ref.items() if ".lora_" not in n}
    linear = {n[:-len(".weight")] for n in base if n.endswith("_proj.weight")}
    prefix = "base_model.model."
    adapted = set()
    for name, (kind, arr) in adapter.items():
        m = re.fullmatch(re.escape(prefix) + r"(.*)\.lora_([AB])\.weight", name)
        assert m and kind == "F32", name
        module, which = m.groups()
        out_dim, in_dim = base[module + ".weight"].shape
        assert list(arr.shape) == ([r, in_dim] if which == "A" else [out_dim, r]), (name, arr.shape)
        assert oracle.same_bits(arr, ref[name[len(prefix):]][1]), name
        adapted.add(module)
    assert len(adapter) == 2 * len(adapted), "every adapted module has both lora_A and lora_B"
    assert all(np.any(adapter[prefix + m + ".lora_B.weight"][1] != 0) for m in adapted), "an untrained B (zero)"
    selected = {m for m in linear if peft_selects(conf["target_modules"], m)}
    assert selected == adapted, ("target_modules selects other modules than the adapters", sorted(selected ^ adapted))
    merged, _ = read_weights(merged_dir, 0)
    assert sorted(merged) == sorted(base), sorted(set(merged) ^ set(base))
    for name, (_, arr) in merged.items():
        module = name[:-len(".weight")]
        want = base[name].astype(np.float64)
        if module in adapted:
            a = adapter[prefix + module + ".lora_A.weight"][1].astype(np.float64)
            b = adapter[prefix + module + ".lora_B.weight"][1].astype(np.float64)
            want = want + scaling * (b @ a)
        ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        assert np.all(np.abs(arr.astype(np.float64) - want) <= ulp), name
    cfg = reference_cfg(json.load(open(os.path.join(merged_dir, "config.json"))))
    cfg["lora"] = {"rank": r, "alpha": alpha, "use_rslora": rslora}
    p = {n: torch.tensor(a, dtype=torch.float64) for n, a in base.items()}
    p.update({n[len(prefix):]: torch.tensor(a, dtype=torch.float64) for n, (_, a) in adapter.items()})
    theirs, count = held_out_loss(p, cfg, held_out)
    ours, rel = eval_matches(eval_jsonl, theirs, count, "float64 base + PEFT adapter")
    print("ok   %s: %d adapted modules (r %d, alpha %g, target_modules %s) as PEFT selects them; merged weights = "
          "W + %g B A; flywheel eval loss %.7f = float64 base + PEFT adapter %.7f (rel %.1e)"
          % (os.path.basename(peft_dir), len(adapted), r, alpha, json.dumps(conf["target_modules"]), scaling, ours,
             theirs, rel))


if __name__ == "__main__":
    if sys.argv[1] == "layout":
        layout(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif sys.argv[1] == "loss":
        loss(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "peft":
        peft(*sys.argv[2:7])
    else:
        sys.exit("usage: hf_export_check.py layout|loss|peft ...")
