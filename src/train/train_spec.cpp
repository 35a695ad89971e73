#include "train/train_spec.h"

#include "core/error.h"
#include "parallel/mesh_rules.h"
#include "parallel/plan.h"

namespace flywheel {

void TrainSpec::validate() const {
  model.validate();
  train.validate();
  mesh.validate();
  FW_INPUT_CHECK(train.seq_len <= model.max_seq_len, "train.seq_len = ", train.seq_len,
                 " exceeds model.max_seq_len = ", model.max_seq_len, ": raise max_seq_len or shorten the sequences");
  check_mesh_fits(model, train.batch(), mesh);
}

double rope_table_bytes(const ModelConfig& model) {
  return static_cast<double>(model.max_seq_len) * static_cast<double>(model.resolved_head_dim()) * sizeof(float);
}

MemoryNeed trainer_memory_need(const TrainSpec& spec, int trainer_rank) {
  const ModelConfig& m = spec.model;
  const TrainConfig& t = spec.train;
  MemoryNeed need{"trainer rank " + std::to_string(trainer_rank), {}};
  // Past 2^60 bytes the plan's int64 sums could wrap: no machine holds that much anyway.
  constexpr double kPlannable = 1.15e18;
  const double state = 16.0 * m.approx_total_params();
  const double activation_scale = 4.0 * static_cast<double>(t.micro_batch) * static_cast<double>(t.seq_len) *
                                  (static_cast<double>(m.n_layers) * 32 * static_cast<double>(m.d_model) +
                                   static_cast<double>(m.vocab_size));
  if (state > kPlannable || activation_scale > kPlannable) {
    need.parts = {{"weights, grads and AdamW moments alone", state / static_cast<double>(spec.mesh.trainer_ranks())}};
    return need;
  }
  // The plan builds the rank's parameter registry, RoPE table included: sized to the batch's
  // positions (all the plan reads), planning never allocates the table it is asked to count.
  ModelConfig planned = m;
  planned.max_seq_len = t.seq_len;
  const MemoryPlan p = plan_rank(planned, t.batch(), spec.mesh, trainer_rank).memory;
  const auto bytes = [](int64_t b) { return static_cast<double>(b); };
  need.parts = {{"weights", bytes(p.weights)},
                {"grads", bytes(p.grads)},
                {"AdamW moments", bytes(p.optimizer)},
                {"FSDP working copies", bytes(p.working)},
                {"activations", bytes(p.activations)},
                {"workspace and buffers", bytes(p.workspace + p.comm_buffers)},
                {"RoPE table", rope_table_bytes(m)}};
  // DPO's frozen reference copy; under LoRA the reference is the base itself (adapters off).
  if (t.objective == "dpo" && !m.lora.enabled()) need.parts.emplace_back("reference weights", bytes(p.weights));
  return need;
}

}  // namespace flywheel
