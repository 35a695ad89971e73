// The analytic plan of one optimizer step on a mesh: per-rank memory, per-rank communication by
// collective and by communicator, and an estimated step time; plus a search over meshes for a world
// size (`flywheel plan`, src/launch/plan_command.cpp).
//
// What is exact and what is an estimate:
//   exact     weights, grads, AdamW m and v (held shard elements x 4 B each, from place_units over the
//             real parameter registry); FSDP working copies (peak of the gather/release sequence the
//             hooks in transformer.cpp drive, as Fsdp::peak_working_bytes() measures it); every
//             communicated byte except the expert all-to-all, counted as mpi_comm.cpp counts it.
//   stash     activations kept per micro-batch, the buffers of ActivationStash: exact for dense layers,
//             +0.3% for MoE (ExpertDispatch's private tables are counted; tests can't see them).
//   estimate  expert all-to-all rows (uniform routing: each slot lands off-rank with probability
//             (ep-1)/ep), backward temporaries ("workspace"), comm scratch peaks, FLOPs and step time.
// Everything is fp32, as the trainer is today. tests/mpi/comm_volume.cpp checks the exact figures
// against the trainer's counters on real meshes; tests/unit/test_plan.cpp checks memory.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "model/config.h"
#include "parallel/mesh_config.h"
#include "parallel/shard_plan.h"
#include "parallel/mesh_rules.h"

namespace flywheel {

// Knobs of the step-time estimate (never of the exact figures).
struct PlanOptions {
  // Dense bf16-class accelerator: 400 TFLOP/s is a round figure below an H100 SXM's 989 TFLOP/s
  // dense bf16 peak; at 50% MFU the estimate uses 200 TFLOP/s of useful work per device.
  double peak_flops = 400e12;  // FLOP/s per device
  double mfu = 0.5;            // achieved fraction of peak on the model's matmuls and attention
  // 25 GB/s per rank: one 200 Gb/s InfiniBand NIC per GPU, the inter-node bottleneck. Every
  // communicated byte is charged at this rate and nothing overlaps compute: the trainer's
  // collectives are blocking today, so this is the pessimistic, simple bound.
  double link_bytes_per_s = 25e9;
  // Fsdp gathers a unit on first use and frees it right after: no prefetch. true adds the largest
  // unit's values once more, the cost of gathering the next unit while this one computes.
  bool fsdp_prefetch = false;
};

// The communicators of a trainer rank that carry traffic in a step (see parallel/mesh.h).
enum class MeshGroup { kTrainers, kPp, kDp, kCp, kEp, kEdp, kCount };
const char* mesh_group_name(MeshGroup group);
constexpr size_t kCommOps = static_cast<size_t>(CommOp::kCount);
constexpr size_t kMeshGroups = static_cast<size_t>(MeshGroup::kCount);

// Bytes one rank sends in one step, under the counting convention of mpi_comm.cpp.
struct CommPlan {
  std::array<uint64_t, kCommOps> by_op{};
  std::array<uint64_t, kMeshGroups> by_group{};
  bool all_to_all_estimated = false;  // ep > 1: the routed rows are a uniform-routing estimate
  void add(MeshGroup group, CommOp op, uint64_t bytes);
  uint64_t op(CommOp o) const { return by_op[static_cast<size_t>(o)]; }
  uint64_t group(MeshGroup g) const { return by_group[static_cast<size_t>(g)]; }
  uint64_t total() const;
};

// Peak bytes on one rank during the step.
struct MemoryPlan {
  int64_t weights = 0, grads = 0, optimizer = 0;  // exact, excluding the <= 15-float alignment pads
  int64_t working = 0;                             // FSDP gathered units (values + grads), peak
  int64_t activations_per_micro_batch = 0;         // one ActivationStash
  int64_t in_flight = 1;                           // stashes alive under 1F1B: min(grad_accum, pp - stage)
  int64_t activations = 0;                         // in_flight x activations_per_micro_batch
  int64_t workspace = 0;     // estimate: backward temporaries + the LM head's logits chunk
  int64_t comm_buffers = 0;  // estimate: pipeline send copies + the largest of FSDP pack/unpack,
                             // CP gathered K/V (and their grads), expert dispatch buffers
  int64_t total() const;
};

struct RankPlan {
  int trainer_rank = 0;
  MeshCoords coords;
  StageRange stage;
  int64_t shard_elements = 0;      // parameters held (as Fsdp::shard_elements())
  int64_t largest_unit_bytes = 0;  // values of the largest unit Fsdp gathers (0: none gathered)
  MemoryPlan memory;
  CommPlan comm;
  double flops = 0;  // model FLOPs this rank computes in a step (estimate: 6 N tokens + attention)
};

// Step time on a mesh: compute of the slowest rank stretched by the 1F1B bubble, plus its bytes over
// the link. The bubble: the step takes M + P - 1 micro-batch slots for M micro-batches of work, so a
// fraction (P - 1) / (M + P - 1) of it idles.
struct StepEstimate {
  double compute_s = 0, bubble_fraction = 0, comm_s = 0, step_s = 0, tokens_per_s = 0;
};

struct StepPlan {
  int64_t total_params = 0, active_params = 0;  // active: top-k (+ shared) experts per token
  std::vector<RankPlan> ranks;                  // every trainer rank
  int worst_memory_rank = 0, worst_comm_rank = 0;
  StepEstimate estimate;
  const RankPlan& worst_memory() const { return ranks[worst_memory_rank]; }
  const RankPlan& worst_comm() const { return ranks[worst_comm_rank]; }
};

// One trainer rank's plan (model, batch and mesh must pass mesh_is_legal). The second form reuses a
// registry built for the rank's stage: Transformer(model, /*allocate_full=*/false, stage_range(...)).
RankPlan plan_rank(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh, int trainer_rank);
RankPlan plan_rank(const Transformer& stage_model, const BatchShape& batch, const MeshConfig& mesh,
                   int trainer_rank);
// Every trainer rank, the worst ones and the step-time estimate.
StepPlan plan_step(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh,
                   const PlanOptions& options = {});

// Parameter counts from the registry: all of them, and those one token uses.
int64_t registry_params(const ModelConfig& model);
int64_t active_params(const ModelConfig& model);

struct MeshProposal {
  MeshConfig mesh;
  int64_t peak_bytes = 0;  // worst rank's MemoryPlan::total()
  int worst_rank = 0;
  StepEstimate estimate;
};

// Legal meshes (pp x fsdp x cp == world_size, the divisibility rules of check_mesh_fits, ep over every
// divisor allowed) whose worst rank fits device_mem_bytes, fastest estimated step first. When none
// fits and why_none is given, it says so with the smallest peak found.
std::vector<MeshProposal> propose_meshes(const ModelConfig& model, const BatchShape& batch, int64_t world_size,
                                         int64_t device_mem_bytes, const PlanOptions& options = {},
                                         std::string* why_none = nullptr);

// "812 B", "3.20 MiB", "17.53 GiB": bytes in the largest binary unit that keeps the figure >= 1.
std::string format_bytes(double bytes);

// Whether mesh is legal for model and batch (the sections valid and check_mesh_fits); why: the reason
// when not.
bool mesh_is_legal(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh,
                   std::string* why = nullptr);

}  // namespace flywheel
