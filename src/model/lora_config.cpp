#include "model/lora_config.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "model/config.h"

namespace flywheel {
namespace {

constexpr unsigned kAllLinear = 255;

struct TargetName {
  const char* name;
  const char* peft_name;  // PEFT target_modules spelling
  unsigned mask;
};
constexpr TargetName kTargetNames[] = {
    {"q", "q_proj", kLoraQ},
    {"k", "k_proj", kLoraK},
    {"v", "v_proj", kLoraV},
    {"o", "o_proj", kLoraO},
    {"gate", "gate_proj", kLoraGate},
    {"up", "up_proj", kLoraUp},
    {"down", "down_proj", kLoraDown},
    {"experts", "experts", kLoraExperts},
    {"all-linear", "all-linear", kAllLinear},
};

std::string trimmed(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t"), end = s.find_last_not_of(" \t");
  return begin == std::string::npos ? std::string() : s.substr(begin, end - begin + 1);
}

}  // namespace

float LoraConfig::scale() const {
  const double r = static_cast<double>(rank);
  return static_cast<float>(use_rslora ? alpha / std::sqrt(r) : alpha / r);
}

unsigned LoraConfig::target_mask() const {
  unsigned mask = 0;
  size_t begin = 0;
  while (begin <= targets.size()) {
    const size_t comma = std::min(targets.find(',', begin), targets.size());
    const std::string name = trimmed(targets.substr(begin, comma - begin));
    const auto* known = std::find_if(std::begin(kTargetNames), std::end(kTargetNames),
                                     [&](const TargetName& t) { return name == t.name || name == t.peft_name; });
    FW_INPUT_CHECK(known != std::end(kTargetNames), "lora.targets = '", targets, "': unknown target '", name,
                   "'; allowed: a comma-separated list of q, k, v, o, gate, up, down, experts, or all-linear");
    mask |= known->mask;
    begin = comma + 1;
  }
  return mask;
}

bool LoraConfig::targets_kind(LoraTarget target) const { return enabled() && (target_mask() & target) != 0; }

int64_t LoraConfig::adapter_params(const ModelConfig& m, bool active) const {
  if (!enabled()) return 0;
  const int64_t hd = m.resolved_head_dim(), q = m.n_heads * hd, kv = m.n_kv_heads * hd, d = m.d_model;
  // One SwiGLU's three matrices of hidden width ff: gate, up [ff, d], down [d, ff].
  const auto swiglu = [&](int64_t ff, bool gate, bool up, bool down) { return (gate + up + down) * rank * (d + ff); };
  const bool g = targets_kind(kLoraGate), u = targets_kind(kLoraUp), dn = targets_kind(kLoraDown);
  int64_t per_layer_attention = 0;
  for (const auto& [kind, out] : {std::pair{kLoraQ, q}, {kLoraK, kv}, {kLoraV, kv}, {kLoraO, q}})
    if (targets_kind(kind)) per_layer_attention += rank * (d + out);
  int64_t total = 0;
  for (int64_t l = 0; l < m.n_layers; ++l) {
    total += per_layer_attention;
    if (!m.is_moe_layer(l)) {
      total += swiglu(m.d_ff, g, u, dn);
      continue;
    }
    const int64_t ff = m.resolved_moe_d_ff();
    if (m.moe_shared_expert) total += swiglu(ff, g, u, dn);
    if (targets_kind(kLoraExperts)) total += (active ? m.moe_top_k : m.moe_experts) * swiglu(ff, true, true, true);
  }
  return total;
}

void LoraConfig::validate(const ModelConfig& m) const {
  FW_INPUT_CHECK(rank >= 0, "lora.rank = ", rank, ": must be >= 1 (0: no adapters, full-parameter training)");
  // The other keys are checked with rank 0 too: a [lora] section with a typo is refused, not ignored.
  FW_INPUT_CHECK(std::isfinite(alpha) && alpha > 0, "lora.alpha = ", alpha, ": must be a finite number > 0");
  // Dropout on the adapter's input needs a mask that is a pure function of (seed, step, sample, position)
  // on every mesh; until that exists a rate other than 0 is refused rather than silently ignored.
  FW_INPUT_CHECK(dropout == 0.0, "lora.dropout = ", dropout, ": not supported yet; allowed: 0");
  const unsigned mask = target_mask();
  if (!enabled()) return;
  const int64_t hd = m.resolved_head_dim(), q = m.n_heads * hd, kv = m.n_kv_heads * hd, d = m.d_model;
  const bool dense_layers = m.moe_layer_count() < m.n_layers;
  // (target, the smaller side of the matrix it adapts, whether the model has that matrix)
  const std::vector<std::tuple<const char*, unsigned, int64_t, bool>> sides = {
      {"q", kLoraQ, std::min(q, d), true},
      {"k", kLoraK, std::min(kv, d), true},
      {"v", kLoraV, std::min(kv, d), true},
      {"o", kLoraO, std::min(q, d), true},
      {"gate/up/down (dense MLP)", kLoraGate | kLoraUp | kLoraDown, std::min(m.d_ff, d), dense_layers},
      {"gate/up/down (shared expert)", kLoraGate | kLoraUp | kLoraDown, std::min(m.resolved_moe_d_ff(), d),
       m.is_moe() && m.moe_shared_expert},
      {"experts", kLoraExperts, std::min(m.resolved_moe_d_ff(), d), m.is_moe()},
  };
  FW_INPUT_CHECK(adapter_params(m) > 0, "lora.targets = '", targets, "' adapts no matrix of this model (",
                 m.is_moe() ? "a mixture of experts" : "dense: no experts",
                 "); allowed: q, k, v, o, gate, up, down, experts, all-linear");
  for (const auto& [name, kinds, side, present] : sides)
    FW_INPUT_CHECK(!present || (mask & kinds) == 0 || rank <= side, "lora.rank = ", rank,
                   " is larger than the smaller side (", side, ") of the ", name,
                   " matrices it adapts; allowed: lora.rank <= ", side);
}

}  // namespace flywheel
