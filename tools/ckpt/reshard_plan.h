// Where every tensor row goes on a target mesh, for `flywheel-ckpt reshard`: the rows each
// trainer rank of that mesh would hold (parallel/shard_plan.h, the same function Fsdp uses), so a
// job started on the target mesh finds its own rows in its own shard file.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "parallel/mesh_config.h"
#include "parallel/shard_plan.h"

namespace flywheel::ckpt_tool {

// "pp=2,fsdp=2,cp=1,ep=1" (any order, any subset; keys pp fsdp cp ep serve; unset keys: pp, fsdp,
// cp, ep = 1, serve = 0). Throws UsageError naming the bad item.
MeshConfig parse_mesh_spec(const std::string& spec);
std::string mesh_spec_text(const MeshConfig& mesh);  // "pp=2 fsdp=2 cp=1 ep=1 serve=0"

// Whether a trainer on `mesh` can hold this model: the mesh's own rules (MeshConfig::validate)
// plus layers divisible by pp, experts by ep, no tied embedding across pipeline stages. Throws
// flywheel::Error naming the numbers and what is allowed.
void check_mesh_for_model(const ModelConfig& model, const MeshConfig& mesh);

struct RowRange {
  std::string name;
  std::vector<int64_t> shape;
  int64_t row_begin = 0, row_end = 0;
};

struct RankPlan {
  int rank = 0;
  MeshCoords coords;
  StageRange stage;
  std::vector<RowRange> tensors;  // rows of each tensor this rank holds (possibly zero rows)
};

// One entry per trainer rank of `mesh` (pp x fsdp x cp of them), in rank order. A tensor that two
// ranks would both hold whole-and-identical (none today: tied embeddings across stages are refused)
// is assigned to the first only, so every row is written exactly once.
std::vector<RankPlan> plan_target_mesh(const ModelConfig& model, const MeshConfig& mesh);

}  // namespace flywheel::ckpt_tool
