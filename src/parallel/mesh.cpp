#include "parallel/mesh.h"

#include "core/error.h"

namespace flywheel {

Mesh::Mesh(const MeshConfig& config, Comm& world) : config_(config), world_(world) {
  FW_CHECK(world.size() == config.world_size(), "the mesh needs ", config.world_size(), " ranks, the world has ",
           world.size());
  const int r = world.rank();
  const int C = static_cast<int>(config.cp), F = static_cast<int>(config.fsdp);
  const int D = F * C, EP = static_cast<int>(config.ep);
  trainer_ = r < config.trainer_ranks();
  if (trainer_) coords_ = mesh_coords(config, r);
  // Every world rank takes part in every split; serving ranks pass a negative colour (no group).
  const MeshCoords& c = coords_;
  auto color = [&](int value) { return trainer_ ? value : -1; };
  trainers_ = world.split(color(0), r, "trainers");
  pp_ = world.split(color(c.dp), c.pp, "pp");
  dp_ = world.split(color(c.pp), c.dp, "dp");
  fsdp_ = world.split(color(c.pp * C + c.cp), c.fsdp, "fsdp");
  cp_ = world.split(color(c.pp * F + c.fsdp), c.cp, "cp");
  ep_ = world.split(color(c.pp * (D / EP) + c.ep_group), c.ep, "ep");
  edp_ = world.split(color(c.pp * EP + c.ep), c.ep_group, "edp");
}

}  // namespace flywheel
