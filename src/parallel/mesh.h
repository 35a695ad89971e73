// The 4D mesh: which trainer rank holds what, and a communicator per mesh dimension.
//
// Trainer world rank r (0 <= r < pp * fsdp * cp), cp innermost and pp outermost:
//   cp_rank = r % cp,  fsdp_rank = (r / cp) % fsdp,  pp_rank = r / (cp * fsdp)
//   dp_rank = r % (fsdp * cp)  -- position in the data-parallel group (fsdp x cp) of its stage
// Expert parallelism folds over each stage's dp group in blocks of ep consecutive dp ranks:
//   ep_group = dp_rank / ep,  ep_rank = dp_rank % ep   (expert e lives on ep_rank e / (E / ep))
// and the ranks of a stage with the same ep_rank form the expert-data-parallel (edp) group,
// over which those experts' weights are FSDP-sharded. World ranks >= pp * fsdp * cp serve.
#pragma once

#include <memory>

#include "comm/comm.h"
#include "parallel/mesh_config.h"
#include "parallel/shard_plan.h"

namespace flywheel {

class Mesh {
 public:
  // Collective over `world`: every world rank must construct its Mesh.
  Mesh(const MeshConfig& config, Comm& world);

  const MeshConfig& config() const { return config_; }
  bool is_trainer() const { return trainer_; }
  const MeshCoords& coords() const { return coords_; }
  Comm& world() { return world_; }
  // Trainer-only groups (null on serving ranks).
  Comm& trainers() { return *trainers_; }
  Comm& pp() { return *pp_; }      // same (fsdp, cp): the pipeline of this rank's data shard
  Comm& dp() { return *dp_; }      // same stage: fsdp x cp ranks that shard dense weights
  Comm& fsdp() { return *fsdp_; }  // same (pp, cp)
  Comm& cp() { return *cp_; }      // same (pp, fsdp): the ranks holding one sequence
  Comm& ep() { return *ep_; }      // same stage and ep_group: token all-to-all
  Comm& edp() { return *edp_; }    // same stage and ep_rank: shards of the same experts

 private:
  MeshConfig config_;
  Comm& world_;
  bool trainer_ = false;
  MeshCoords coords_;
  std::unique_ptr<Comm> trainers_, pp_, dp_, fsdp_, cp_, ep_, edp_;
};

}  // namespace flywheel
