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
  FW_INPUT_CHECK(moe_experts >= 0, "model.moe_experts = ", moe_experts, ": must be 0 (dense) or a positive count");
  if (is_moe()) {
    FW_INPUT_CHECK(moe_top_k >= 1 && moe_top_k <= moe_experts, "model.moe_top_k = ", moe_top_k,
                   " is not in [1, model.moe_experts = ", moe_experts,
                   "]: a token cannot pick more experts than exist");
    FW_INPUT_CHECK(moe_d_ff >= 0, "model.moe_d_ff = ", moe_d_ff, ": must be 0 (use d_ff) or positive");
    FW_INPUT_CHECK(moe_aux_loss_coef >= 0, "model.moe_aux_loss_coef = ", moe_aux_loss_coef, ": must be >= 0");
  }
}

namespace {
// Matrix parameters of one layer when `experts_run` SwiGLU experts of width moe_d_ff run per token
// (MoE), or the dense SwiGLU: q, o [H hd, d]; k, v [Hkv hd, d]; 3 SwiGLU matrices; the router [E, d].
// T = double counts sizes whose int64 products would overflow.
template <typename T>
T layer_matrix_params(const ModelConfig& c, int64_t experts_run) {
  const auto n = [](int64_t v) { return static_cast<T>(v); };
  const T attention = n(c.d_model) * n(c.resolved_head_dim()) * (2 * n(c.n_heads) + 2 * n(c.n_kv_heads));
  if (!c.is_moe()) return attention + 3 * n(c.d_model) * n(c.d_ff);
  return attention + n(experts_run) * 3 * n(c.d_model) * n(c.resolved_moe_d_ff()) + n(c.moe_experts) * n(c.d_model);
}
int64_t shared_experts(const ModelConfig& c) { return c.moe_shared_expert ? 1 : 0; }

template <typename T>
T count_total_params(const ModelConfig& c) {
  const auto n = [](int64_t v) { return static_cast<T>(v); };
  const T per_layer = layer_matrix_params<T>(c, c.moe_experts + shared_experts(c));
  const T norms = n(c.n_layers) * 2 * n(c.d_model) + n(c.d_model);
  const T embeddings = n(c.vocab_size) * n(c.d_model) * (c.tie_embeddings ? 1 : 2);
  return n(c.n_layers) * per_layer + norms + embeddings;
}
}  // namespace

int64_t ModelConfig::active_matmul_params() const {
  const int64_t per_layer = layer_matrix_params<int64_t>(*this, moe_top_k + shared_experts(*this));
  return n_layers * per_layer + vocab_size * d_model;  // + LM head
}

int64_t ModelConfig::total_params() const { return count_total_params<int64_t>(*this); }

double ModelConfig::approx_total_params() const { return count_total_params<double>(*this); }

}  // namespace flywheel
