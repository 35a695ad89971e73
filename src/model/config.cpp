#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace flywheel {

void ModelConfig::validate() const {
  auto positive = [](const char* key, int64_t value) {
    FW_INPUT_CHECK(value > 0, "model.", key, " = ", value, ": must be a positive integer");
  };
  // Every floating-point key first: infinity passes "> 0" below (NaN fails every comparison, but
  // would be told "must be > 0" about a value that is not a number).
  auto finite = [](const char* key, double value) {
    FW_INPUT_CHECK(std::isfinite(value), "model.", key, " = ", value, ": must be a finite number");
  };
  finite("rope_theta", rope_theta);
  finite("rope_factor", rope_factor);
  finite("rope_low_freq_factor", rope_low_freq_factor);
  finite("rope_high_freq_factor", rope_high_freq_factor);
  finite("norm_eps", norm_eps);
  finite("init_std", init_std);
  finite("moe_aux_loss_coef", moe_aux_loss_coef);
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("d_ff", d_ff);
  positive("max_seq_len", max_seq_len);
  FW_INPUT_CHECK(head_dim >= 0, "model.head_dim = ", head_dim, ": must be 0 (derive d_model / n_heads) or positive");
  if (head_dim == 0)
    FW_INPUT_CHECK(d_model % n_heads == 0, "model.n_heads = ", n_heads, " does not divide model.d_model = ", d_model,
                   ": choose n_heads dividing d_model, or set model.head_dim explicitly");
  FW_INPUT_CHECK(resolved_head_dim() % 2 == 0, "model.head_dim = ", resolved_head_dim(),
                 head_dim == 0 ? " (d_model / n_heads)" : "",
                 " is odd: rotary embeddings rotate pairs, so head_dim must be even");
  FW_INPUT_CHECK(n_heads % n_kv_heads == 0, "model.n_kv_heads = ", n_kv_heads, " does not divide model.n_heads = ",
                 n_heads, ": each key/value head must serve a whole group of query heads");
  FW_INPUT_CHECK(rope_theta > 0, "model.rope_theta = ", rope_theta, ": must be > 0");
  FW_INPUT_CHECK(norm_eps > 0, "model.norm_eps = ", norm_eps, ": must be > 0");
  FW_INPUT_CHECK(init_std > 0, "model.init_std = ", init_std, ": must be > 0");
  FW_INPUT_CHECK(forward_kernels == "blas" || forward_kernels == "invariant", "model.forward_kernels = '",
                 forward_kernels, "': must be 'blas' (OpenBLAS) or 'invariant' (batch-invariant, bit-exact serving)");
  validate_rope_scaling();
  validate_layer_pattern();
  FW_INPUT_CHECK(moe_experts >= 0, "model.moe_experts = ", moe_experts, ": must be 0 (dense) or a positive count");
  if (is_moe()) {
    FW_INPUT_CHECK(moe_top_k >= 1 && moe_top_k <= moe_experts, "model.moe_top_k = ", moe_top_k,
                   " is not in [1, model.moe_experts = ", moe_experts,
                   "]: a token cannot pick more experts than exist");
    FW_INPUT_CHECK(moe_d_ff >= 0, "model.moe_d_ff = ", moe_d_ff, ": must be 0 (use d_ff) or positive");
    FW_INPUT_CHECK(moe_aux_loss_coef >= 0, "model.moe_aux_loss_coef = ", moe_aux_loss_coef, ": must be >= 0");
  }
  lora.validate(*this);
}

void ModelConfig::validate_rope_scaling() const {
  FW_INPUT_CHECK(rope_scaling == "none" || rope_scaling == "llama3", "model.rope_scaling = '", rope_scaling,
                 "': must be 'none' or 'llama3' (HF rope_type \"llama3\")");
  if (!llama3_rope()) return;
  FW_INPUT_CHECK(rope_factor >= 1, "model.rope_factor = ", rope_factor,
                 ": must be >= 1 (long wavelengths are divided by it)");
  FW_INPUT_CHECK(rope_low_freq_factor > 0, "model.rope_low_freq_factor = ", rope_low_freq_factor, ": must be > 0");
  FW_INPUT_CHECK(rope_high_freq_factor > rope_low_freq_factor, "model.rope_high_freq_factor = ",
                 rope_high_freq_factor, " must be > model.rope_low_freq_factor = ", rope_low_freq_factor,
                 ": the smooth band between them would be empty or reversed");
  FW_INPUT_CHECK(rope_original_max_positions > 0, "model.rope_original_max_positions = ",
                 rope_original_max_positions, ": must be a positive token count");
}

void ModelConfig::validate_layer_pattern() const {
  FW_INPUT_CHECK(moe_decoder_sparse_step >= 1, "model.moe_decoder_sparse_step = ", moe_decoder_sparse_step,
                 ": must be >= 1 (every k-th layer is MoE)");
  for (size_t i = 0; i < moe_mlp_only_layers.size(); ++i) {
    const int64_t layer = moe_mlp_only_layers[i];
    FW_INPUT_CHECK(layer >= 0 && layer < n_layers, "model.moe_mlp_only_layers: layer ", layer,
                   " is not in [0, model.n_layers = ", n_layers, ")");
    for (size_t j = 0; j < i; ++j)
      FW_INPUT_CHECK(moe_mlp_only_layers[j] != layer, "model.moe_mlp_only_layers: layer ", layer, " is listed twice");
  }
}

ops::RopeScaling ModelConfig::rope_scaling_params() const {
  ops::RopeScaling s;
  if (!llama3_rope()) return s;
  s.type = ops::RopeScaling::Type::kLlama3;
  s.factor = rope_factor;
  s.low_freq_factor = rope_low_freq_factor;
  s.high_freq_factor = rope_high_freq_factor;
  s.original_max_positions = static_cast<double>(rope_original_max_positions);
  return s;
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (!is_moe() || (layer + 1) % moe_decoder_sparse_step != 0) return false;
  for (int64_t dense : moe_mlp_only_layers)
    if (dense == layer) return false;
  return true;
}

int64_t ModelConfig::moe_layer_count() const {
  int64_t count = 0;
  for (int64_t l = 0; l < n_layers; ++l) count += is_moe_layer(l) ? 1 : 0;
  return count;
}

namespace {
// Matrix parameters of one layer when `experts_run` SwiGLU experts of width moe_d_ff run per token
// (an MoE layer), or the dense SwiGLU: q, o [H hd, d]; k, v [Hkv hd, d]; 3 SwiGLU matrices; the router
// [E, d]. T = double counts sizes whose int64 products would overflow.
template <typename T>
T layer_matrix_params(const ModelConfig& c, bool moe_layer, int64_t experts_run) {
  const auto n = [](int64_t v) { return static_cast<T>(v); };
  const T attention = n(c.d_model) * n(c.resolved_head_dim()) * (2 * n(c.n_heads) + 2 * n(c.n_kv_heads));
  if (!moe_layer) return attention + 3 * n(c.d_model) * n(c.d_ff);
  return attention + n(experts_run) * 3 * n(c.d_model) * n(c.resolved_moe_d_ff()) + n(c.moe_experts) * n(c.d_model);
}
int64_t shared_experts(const ModelConfig& c) { return c.moe_shared_expert ? 1 : 0; }

// Sum over layers: MoE layers running `experts_run` experts, the dense rest.
template <typename T>
T all_layers_matrix_params(const ModelConfig& c, int64_t experts_run) {
  const auto n = [](int64_t v) { return static_cast<T>(v); };
  const int64_t moe_layers = c.moe_layer_count(), dense_layers = c.n_layers - moe_layers;
  T sum = n(moe_layers) * layer_matrix_params<T>(c, true, experts_run);
  if (dense_layers > 0) sum += n(dense_layers) * layer_matrix_params<T>(c, false, 0);
  return sum;
}

// Vectors per layer: two norm gains [d]; qk_norm's two [hd]; attention_bias's q, k, v, o biases.
template <typename T>
T layer_vector_params(const ModelConfig& c) {
  const auto n = [](int64_t v) { return static_cast<T>(v); };
  const T hd = n(c.resolved_head_dim());
  T sum = 2 * n(c.d_model);
  if (c.qk_norm) sum += 2 * hd;
  if (c.attention_bias) sum += hd * (n(c.n_heads) + 2 * n(c.n_kv_heads)) + n(c.d_model);
  return sum;
}

template <typename T>
T count_total_params(const ModelConfig& c) {
  const auto n = [](int64_t v) { return static_cast<T>(v); };
  const T vectors = n(c.n_layers) * layer_vector_params<T>(c) + n(c.d_model);
  const T embeddings = n(c.vocab_size) * n(c.d_model) * (c.tie_embeddings ? 1 : 2);
  return all_layers_matrix_params<T>(c, c.moe_experts + shared_experts(c)) + vectors + embeddings;
}
}  // namespace

int64_t ModelConfig::active_matmul_params() const {
  return all_layers_matrix_params<int64_t>(*this, moe_top_k + shared_experts(*this)) + vocab_size * d_model;
}

int64_t ModelConfig::total_params() const { return count_total_params<int64_t>(*this); }

double ModelConfig::approx_total_params() const { return count_total_params<double>(*this); }

}  // namespace flywheel
