// LoRA (Hu et al. 2021, arXiv:2106.09685) as PEFT defines it: a target linear layer y = x W^T becomes
//   y = x W^T + s * (x A^T) B^T,   A [rank, in], B [out, rank],   s = alpha / rank   (rsLoRA: alpha / sqrt(rank),
//   Kalajdzievski 2023, arXiv:2312.03732)
// with A drawn as PEFT's kaiming_uniform_(a = sqrt(5)) draws it -- U(-1/sqrt(in), 1/sqrt(in)) -- and B = 0, so
// training starts from the base model exactly. The base is frozen: only A and B have gradients and AdamW moments.
//
// Targets name the linear layers that get an adapter: q, k, v, o (self_attn.{q,k,v,o}_proj), gate, up, down
// (mlp.{gate,up,down}_proj of dense layers and of a MoE layer's shared expert), experts (gate, up and down of
// every routed expert), all-linear (all of them; the MoE router and the LM head stay frozen without an adapter).
// PEFT's module names (q_proj, ...) are accepted too.
#pragma once

#include <cstdint>
#include <string>

namespace flywheel {

struct ModelConfig;

// Bits of a target set.
enum LoraTarget : unsigned {
  kLoraQ = 1,
  kLoraK = 2,
  kLoraV = 4,
  kLoraO = 8,
  kLoraGate = 16,
  kLoraUp = 32,
  kLoraDown = 64,
  kLoraExperts = 128,
};

struct LoraConfig {
  int64_t rank = 0;  // 0: no adapters (full-parameter training)
  double alpha = 16.0;
  std::string targets = "all-linear";  // comma-separated (see above)
  double dropout = 0.0;
  bool use_rslora = false;
  uint64_t seed = 0;  // draws A (counter RNG keyed by seed and the adapter's name, as weights are)

  bool enabled() const { return rank > 0; }
  // s: alpha / rank, or alpha / sqrt(rank) with use_rslora.
  float scale() const;
  // Whether `target` gets an adapter (false for every target when !enabled()).
  bool targets_kind(LoraTarget target) const;
  // Parameters of every adapter of `model`: rank x (in + out) per targeted matrix. active: count only the
  // top-k routed experts' adapters of an MoE layer (the ones a token runs through), as for FLOPs.
  int64_t adapter_params(const ModelConfig& model, bool active = false) const;
  // Throws InputError naming the [lora] key, its value and what is allowed, including a rank larger than a
  // targeted matrix's smaller side.
  void validate(const ModelConfig& model) const;

 private:
  unsigned target_mask() const;  // parses targets; throws InputError on an unknown name
};

}  // namespace flywheel
