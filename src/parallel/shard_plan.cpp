#include "parallel/shard_plan.h"

#include "core/error.h"

namespace flywheel {

MeshCoords mesh_coords(const MeshConfig& mesh, int r) {
  const int C = static_cast<int>(mesh.cp), F = static_cast<int>(mesh.fsdp), EP = static_cast<int>(mesh.ep);
  MeshCoords c;
  c.cp = r % C;
  c.fsdp = (r / C) % F;
  c.pp = r / (F * C);
  c.dp = r % (F * C);
  c.ep_group = c.dp / EP;
  c.ep = c.dp % EP;
  return c;
}

StageRange stage_range(const ModelConfig& model, const MeshConfig& mesh, int pp_rank) {
  const int per_stage = static_cast<int>(model.n_layers / mesh.pp);
  return {pp_rank * per_stage, (pp_rank + 1) * per_stage};
}

std::vector<UnitPlacement> place_units(const Transformer& model, const MeshConfig& mesh, const MeshCoords& c) {
  const ParameterSet& params = model.params();
  const int D = static_cast<int>(mesh.fsdp * mesh.cp), EP = static_cast<int>(mesh.ep);
  const int64_t experts_per_rank = model.config().moe_experts / EP;
  std::vector<UnitPlacement> placements;
  for (int unit : model.stage_units()) {
    const bool experts = params.units()[unit].experts;
    UnitPlacement p;
    p.unit = unit;
    // Dense units: the dp group (fsdp x cp). Experts: ranks with the same ep_rank (D / ep of them).
    p.group_size = experts ? D / EP : D;
    p.group_rank = experts ? c.ep_group : c.dp;
    for (int id : params.units()[unit].params) {
      const ParamInfo& info = params.info(id);
      if (experts && info.expert / experts_per_rank != c.ep) continue;  // another ep rank's expert
      p.tensors.push_back(id);
    }
    placements.push_back(std::move(p));
  }
  return placements;
}

}  // namespace flywheel
