// Whole-mesh plans: every rank's plan, FLOPs and the step-time estimate, and the mesh search.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "core/error.h"
#include "model/transformer.h"
#include "parallel/plan.h"

namespace flywheel {
namespace {

int64_t sum_numel(const Transformer& model) {
  int64_t n = 0;
  for (const ParamInfo& info : model.params().list()) n += info.numel;
  return n;
}

// Model FLOPs of one token through a stage, forward + backward counted as 3 x forward at 2 FLOPs per
// multiply-add: 6 x (matmul parameters the token uses), plus causal attention, whose scores QK^T and
// values PV cost 4 hd FLOPs per (query, key, head) over T/2 keys on average (also under CP: a rank's
// chunk pair c, 2C-1-c averages T/2): forward 2 T q_width per layer, 6 T q_width with backward.
// The flash backward's recomputation of scores is not counted (the MFU convention). LoRA: the frozen base costs
// 4 x (no weight gradients) and the adapters 6 x their parameters a token uses (spread evenly over the layers).
double stage_flops_per_token(const ModelConfig& m, const StageRange& st, int64_t seq_len) {
  const int64_t d = m.d_model, hd = m.resolved_head_dim(), qw = m.n_heads * hd;
  const double attention = static_cast<double>(d * hd * (2 * m.n_heads + 2 * m.n_kv_heads));
  const int64_t experts_used = m.moe_top_k + (m.moe_shared_expert ? 1 : 0);
  const double moe_layer =
      attention + static_cast<double>(experts_used * 3 * d * m.resolved_moe_d_ff() + m.moe_experts * d);
  const double dense_layer = attention + static_cast<double>(3 * d * m.d_ff);
  double moe_layers = 0;
  for (int l = st.first_layer; l < st.end_layer; ++l) moe_layers += m.is_moe_layer(l) ? 1 : 0;
  const double layers = st.end_layer - st.first_layer, dense_layers = layers - moe_layers;
  const double attention_scores = 6.0 * static_cast<double>(seq_len * qw);
  const double base = m.lora.enabled() ? 4.0 : 6.0;
  double flops = 0;
  if (moe_layers > 0) flops += moe_layers * (base * moe_layer + attention_scores);
  if (dense_layers > 0) flops += dense_layers * (base * dense_layer + attention_scores);
  if (st.has_head(m.n_layers)) flops += base * static_cast<double>(m.vocab_size * d);  // LM head
  const double adapters_per_layer =
      static_cast<double>(m.lora.adapter_params(m, /*active=*/true)) / static_cast<double>(m.n_layers);
  return flops + 6.0 * adapters_per_layer * layers;
}

StepEstimate estimate_step(const std::vector<RankPlan>& ranks, const BatchShape& batch, const MeshConfig& mesh,
                           const PlanOptions& o) {
  double worst_flops = 0, worst_bytes = 0;
  for (const RankPlan& r : ranks) {
    worst_flops = std::max(worst_flops, r.flops);
    worst_bytes = std::max(worst_bytes, static_cast<double>(r.comm.total()));
  }
  const double M = static_cast<double>(batch.grad_accum), P = static_cast<double>(mesh.pp);
  StepEstimate e;
  e.bubble_fraction = (P - 1) / (M + P - 1);
  // The slowest stage's M micro-batches spread over M + P - 1 slots of the 1F1B schedule.
  e.compute_s = worst_flops / (o.peak_flops * o.mfu) * (M + P - 1) / M;
  e.comm_s = worst_bytes / o.link_bytes_per_s;
  e.step_s = e.compute_s + e.comm_s;
  e.tokens_per_s = static_cast<double>(batch.global_batch() * batch.seq_len) / e.step_s;
  return e;
}

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0) out.push_back(i);
  return out;
}

std::string describe_mesh(const MeshConfig& m) {
  char text[128];
  std::snprintf(text, sizeof(text), "pp %lld x fsdp %lld x cp %lld, ep %lld", static_cast<long long>(m.pp),
                static_cast<long long>(m.fsdp), static_cast<long long>(m.cp), static_cast<long long>(m.ep));
  return text;
}

}  // namespace

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) bytes /= 1024, ++u;
  char text[32];
  std::snprintf(text, sizeof(text), u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return text;
}

namespace {
// Expert parameters a token does not use: (E - k) experts of 3 d hidden per layer.
int64_t unused_expert_params(const ModelConfig& m) {
  return m.is_moe() ? m.moe_layer_count() * (m.moe_experts - m.moe_top_k) * 3 * m.d_model * m.resolved_moe_d_ff() : 0;
}
}  // namespace

int64_t registry_params(const ModelConfig& model) { return sum_numel(Transformer(model, /*allocate_full=*/false)); }

int64_t active_params(const ModelConfig& model) { return registry_params(model) - unused_expert_params(model); }

namespace {
// Stage registries by layer range: registering a 30B-A3B model's 18k tensors costs milliseconds, and a
// mesh search meets the same stages again and again.
using StageCache = std::map<std::pair<int, int>, std::unique_ptr<Transformer>>;

const Transformer& stage_model_of(const ModelConfig& model, const StageRange& st, StageCache& cache) {
  std::unique_ptr<Transformer>& slot = cache[{st.first_layer, st.end_layer}];
  if (!slot) slot = std::make_unique<Transformer>(model, /*allocate_full=*/false, st);
  return *slot;
}

StepPlan plan_step_cached(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh,
                          const PlanOptions& options, StageCache& cache) {
  StepPlan plan;
  const int64_t D = mesh.fsdp * mesh.cp;
  const int64_t local_tokens = batch.grad_accum * (batch.micro_batch / mesh.fsdp) * (batch.seq_len / mesh.cp);
  for (int stage = 0; stage < mesh.pp; ++stage) {
    const Transformer& stage_model = stage_model_of(model, stage_range(model, mesh, stage), cache);
    if (stage == 0) plan.total_params = sum_numel(stage_model);  // every stage registers the whole model
    const double flops = static_cast<double>(local_tokens) *
                         stage_flops_per_token(model, stage_model.stage(), batch.seq_len);
    for (int64_t dp = 0; dp < D; ++dp) {  // pp is outermost: the stage's ranks are consecutive
      RankPlan r = plan_rank(stage_model, batch, mesh, static_cast<int>(stage * D + dp));
      if (options.fsdp_prefetch) r.memory.working += r.largest_unit_bytes;
      r.flops = flops;
      plan.ranks.push_back(std::move(r));
    }
  }
  plan.active_params = plan.total_params - unused_expert_params(model);
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    if (plan.ranks[i].memory.total() > plan.worst_memory().memory.total()) plan.worst_memory_rank = static_cast<int>(i);
    if (plan.ranks[i].comm.total() > plan.worst_comm().comm.total()) plan.worst_comm_rank = static_cast<int>(i);
  }
  plan.estimate = estimate_step(plan.ranks, batch, mesh, options);
  return plan;
}
}  // namespace

StepPlan plan_step(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh,
                   const PlanOptions& options) {
  StageCache cache;
  return plan_step_cached(model, batch, mesh, options, cache);
}

bool mesh_is_legal(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh, std::string* why) {
  try {
    model.validate();
    mesh.validate();
    FW_CHECK(batch.seq_len <= model.max_seq_len, "train.seq_len = ", batch.seq_len, " exceeds model.max_seq_len = ",
             model.max_seq_len);
    check_mesh_fits(model, batch, mesh);  // the very rules `flywheel train` applies
    return true;
  } catch (const Error& e) {
    if (why) *why = e.what();
    return false;
  }
}

std::vector<MeshProposal> propose_meshes(const ModelConfig& model, const BatchShape& batch, int64_t world_size,
                                         int64_t device_mem_bytes, const PlanOptions& options,
                                         std::string* why_none) {
  FW_CHECK(world_size > 0, "plan: --ranks = ", world_size, ": must be a positive number of trainer ranks");
  std::vector<MeshProposal> fits;
  MeshProposal smallest;
  smallest.peak_bytes = -1;
  int legal = 0;
  StageCache cache;
  for (int64_t pp : divisors(world_size))
    for (int64_t fsdp : divisors(world_size / pp)) {
      const int64_t cp = world_size / pp / fsdp;
      for (int64_t ep : model.is_moe() ? divisors(fsdp * cp) : std::vector<int64_t>{1}) {
        const MeshConfig mesh{pp, fsdp, cp, ep, 0};
        if (!mesh_is_legal(model, batch, mesh)) continue;
        ++legal;
        const StepPlan plan = plan_step_cached(model, batch, mesh, options, cache);
        MeshProposal p{mesh, plan.worst_memory().memory.total(), plan.worst_memory_rank, plan.estimate};
        if (smallest.peak_bytes < 0 || p.peak_bytes < smallest.peak_bytes) smallest = p;
        if (p.peak_bytes <= device_mem_bytes) fits.push_back(p);
      }
    }
  std::sort(fits.begin(), fits.end(), [](const MeshProposal& a, const MeshProposal& b) {
    return a.estimate.step_s != b.estimate.step_s ? a.estimate.step_s < b.estimate.step_s
                                                  : a.peak_bytes < b.peak_bytes;
  });
  if (fits.empty() && why_none) {
    char text[512];
    if (legal == 0)
      std::snprintf(text, sizeof(text),
                    "no legal mesh of %lld trainer ranks for this shape: pp must divide model.n_layers = %lld, "
                    "fsdp divide train.micro_batch = %lld, 2 x cp divide train.seq_len = %lld",
                    static_cast<long long>(world_size), static_cast<long long>(model.n_layers),
                    static_cast<long long>(batch.micro_batch), static_cast<long long>(batch.seq_len));
    else
      std::snprintf(text, sizeof(text),
                    "no legal mesh of %lld trainer ranks fits in %s per rank: the smallest worst-rank peak "
                    "is %s (%s); add ranks or device memory, or cut train.micro_batch or train.seq_len",
                    static_cast<long long>(world_size), format_bytes(static_cast<double>(device_mem_bytes)).c_str(),
                    format_bytes(static_cast<double>(smallest.peak_bytes)).c_str(),
                    describe_mesh(smallest.mesh).c_str());
    *why_none = text;
  }
  return fits;
}

}  // namespace flywheel
