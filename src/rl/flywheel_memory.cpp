#include "rl/flywheel_memory.h"

#include <string>

#include "serve/snapshot_format.h"

namespace flywheel {

MemoryNeed flywheel_memory_need(const FlywheelSpec& spec, int world_rank) {
  const ModelConfig& m = spec.model;
  const double params = m.approx_total_params();
  const double serve_bytes = static_cast<double>(serve_dtype_bytes(parse_serve_dtype(spec.rl.serve_dtype)));
  const auto trainers = static_cast<int>(spec.mesh.trainer_ranks());
  if (world_rank < trainers) {
    MemoryNeed need = trainer_memory_need(spec, world_rank);
    // A frozen copy of the weights, unless LoRA makes the base the reference (adapters off: no copy).
    if (spec.rl.kl_beta > 0 && !spec.model.lora.enabled())
      need.parts.emplace_back("reference weights", need.parts.front().second);
    if (world_rank == 0) {
      need.parts.emplace_back("full fp32 copy to publish from", 4 * params);
      need.parts.emplace_back("last published snapshot", serve_bytes * params);
    }
    return need;
  }
  const double kv_cache = 2.0 * static_cast<double>(m.n_layers) * static_cast<double>(spec.rl.max_batch) *
                          static_cast<double>(m.max_seq_len) * static_cast<double>(m.n_kv_heads) *
                          static_cast<double>(m.resolved_head_dim()) * sizeof(float);
  return {"replica " + std::to_string(world_rank - trainers),
          {{"weights (" + spec.rl.serve_dtype + ")", serve_bytes * params},
           {"KV cache", kv_cache},
           {"RoPE table", rope_table_bytes(m)}}};
}

}  // namespace flywheel
