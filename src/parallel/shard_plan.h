// Where every parameter row lives on a mesh: a pure function of (model, mesh, trainer rank), shared
// by the trainer (Fsdp), the checkpoint tools (offline resharding) and `flywheel plan`.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/transformer.h"
#include "parallel/mesh_config.h"

namespace flywheel {

struct MeshCoords {
  int pp = 0, fsdp = 0, cp = 0;
  int dp = 0;  // fsdp * cp_size + cp
  int ep_group = 0, ep = 0;
};

// Coordinates of trainer rank r (cp innermost, pp outermost; see mesh.h).
MeshCoords mesh_coords(const MeshConfig& mesh, int trainer_rank);
// Layers of pipeline stage pp_rank: n_layers / pp consecutive layers.
StageRange stage_range(const ModelConfig& model, const MeshConfig& mesh, int pp_rank);
// Rows [row_split(R, i, G), row_split(R, i + 1, G)) of a tensor with R rows go to group rank i of G.
inline int64_t row_split(int64_t rows, int rank, int group_size) { return rows * rank / group_size; }

// One unit as sharded on one rank: its group (dense: the stage's dp group; experts: the edp group)
// and the tensors that group shards (for experts, only the experts of this rank's ep_rank).
struct UnitPlacement {
  int unit = -1;
  int group_size = 1, group_rank = 0;
  std::vector<int> tensors;
};

// The units of `model`'s stage (model must be built with that stage) as held by a rank at `coords`.
std::vector<UnitPlacement> place_units(const Transformer& model, const MeshConfig& mesh, const MeshCoords& coords);

}  // namespace flywheel
