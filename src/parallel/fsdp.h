// FSDP (ZeRO-3): every parameter, its gradient and its AdamW moments are sharded by rows (dim 0)
// across a group; a unit's full weights exist only between before_use() and after_forward() /
// after_backward(), and gradients leave the rank by reduce-scatter as soon as a unit's backward ends.
//
// Dense units shard over the stage's dp group (fsdp x cp ranks); expert units over the edp group,
// and each rank holds only the experts of its ep_rank. A tensor of R rows on a group of G ranks:
// rank i holds rows [R i / G, R (i+1) / G). Per-rank memory for weights + grads + Adam moments is
// 16 bytes x (parameters / G) plus the working copy of the unit in use. Frozen units (a LoRA base) hold
// weights only: 4 bytes x (their parameters / G), and no gradient ever leaves the rank for them.
//
// A group of one that holds a whole unit binds the model straight to the shard storage: single-rank
// training runs through this class with no copies.
#pragma once

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/transformer.h"
#include "parallel/mesh.h"

namespace flywheel {

// Rows [row_begin, row_end) of one tensor held by this rank, at local_offset in values() and at
// grad_offset in grads(), adam_m() and adam_v() (-1: a frozen tensor, which has none).
struct ShardSlice {
  int param = -1;
  int64_t row_begin = 0, row_end = 0, cols = 0;
  int64_t local_offset = 0;
  int64_t grad_offset = -1;
  bool trainable() const { return grad_offset >= 0; }
  int64_t numel() const { return (row_end - row_begin) * cols; }
};

class Fsdp final : public UnitHooks {
 public:
  // Shards the units of model's stage and initialises this rank's shards (same values as a
  // single-rank initialisation with `seed`; zeros without random_init, for weights read from
  // elsewhere). LoRA adapters are initialised from lora.seed either way. Installs itself as the model's hooks.
  Fsdp(Transformer& model, Mesh& mesh, uint64_t seed, bool random_init = true);
  ~Fsdp() override;

  void before_use(int unit, bool backward) override;
  void after_forward(int unit) override;
  void after_backward(int unit) override;

  Buffer<float>& values() { return values_; }
  Buffer<float>& grads() { return grads_; }
  Buffer<float>& adam_m() { return adam_m_; }
  Buffer<float>& adam_v() { return adam_v_; }
  const std::vector<ShardSlice>& slices() const { return slices_; }
  void zero_grads();

  int64_t shard_elements() const;         // parameters held here (no padding)
  int64_t trainable_elements() const;     // of those, the ones with gradients and moments
  int64_t peak_working_bytes() const { return peak_working_bytes_; }

 private:
  struct UnitShard {
    int unit = -1;
    Comm* group = nullptr;
    std::vector<int> tensors;               // param ids this group shards (owned experts only)
    std::vector<int64_t> rank_elements;     // elements held by each group rank
    size_t first_slice = 0, slice_count = 0;
    bool direct = false;                    // bound straight to the shard storage
    bool trainable = true;                  // false: weights only (no gradients, no scatter)
    Buffer<float> work_values, work_grads;  // the gathered unit, laid out like the unit's flat range
  };

  void plan_unit(const UnitPlacement& placement, Comm& group, int64_t& grad_end);
  void gather(UnitShard& u);
  void scatter_grads(UnitShard& u);
  void release(UnitShard& u);
  UnitShard& shard_of(int unit);
  void track_working_bytes();

  Transformer& model_;
  Mesh& mesh_;
  std::vector<UnitShard> units_;
  std::vector<int> unit_index_;  // model unit -> index in units_ (-1: not on this stage)
  std::vector<ShardSlice> slices_;
  Buffer<float> values_, grads_, adam_m_, adam_v_;
  int64_t working_bytes_ = 0, peak_working_bytes_ = 0;
};

}  // namespace flywheel
