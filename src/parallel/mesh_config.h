// The [mesh] section of a training shape: trainer ranks = pp x fsdp x cp, experts folded over
// fsdp x cp in groups of ep, then `serve` replica ranks. See docs/architecture.md, "The mesh".
#pragma once

#include <cstdint>

namespace flywheel {

struct MeshConfig {
  int64_t pp = 1;
  int64_t fsdp = 1;
  int64_t cp = 1;
  int64_t ep = 1;
  int64_t serve = 0;

  int64_t trainer_ranks() const { return pp * fsdp * cp; }
  int64_t world_size() const { return trainer_ranks() + serve; }
  // Checks the sizes against each other; errors name the numbers.
  void validate() const;
  // Checks that the job has the ranks the mesh needs.
  void check_world(int64_t world_size) const;
};

}  // namespace flywheel
