#include "parallel/fsdp.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace flywheel {
namespace {
int64_t align16(int64_t n) { return (n + 15) / 16 * 16; }
}  // namespace

Fsdp::Fsdp(Transformer& model, Mesh& mesh, uint64_t seed, bool random_init) : model_(model), mesh_(mesh) {
  const ParameterSet& params = model.params();
  unit_index_.assign(params.units().size(), -1);
  int64_t grad_total = 0;
  for (const UnitPlacement& placement : place_units(model, mesh.config(), mesh.coords())) {
    const bool experts = params.units()[placement.unit].experts;
    Comm& group = experts ? mesh.edp() : mesh.dp();
    FW_CHECK(group.size() == placement.group_size && group.rank() == placement.group_rank,
             "shard plan and communicator disagree for unit ", params.units()[placement.unit].name);
    plan_unit(placement, group, grad_total);
  }
  int64_t total = 0;
  for (const ShardSlice& s : slices_) total = std::max(total, s.local_offset + s.numel());
  values_.assign(total, 0.0f);
  grads_.assign(grad_total, 0.0f);
  adam_m_.assign(grad_total, 0.0f);
  adam_v_.assign(grad_total, 0.0f);
  const ModelConfig& c = model.config();
  for (const ShardSlice& s : slices_) {
    const ParamInfo& info = params.info(s.param);
    if (random_init || info.adapter)
      initialize_elements(info, info.adapter ? c.lora.seed : seed, c.init_std, c.n_layers, s.row_begin * s.cols,
                          s.numel(), values_.data() + s.local_offset);
  }
  for (UnitShard& u : units_)
    if (u.direct) {
      const ShardSlice& first = slices_[u.first_slice];
      model_.params().bind_unit(u.unit, values_.data() + first.local_offset,
                                u.trainable ? grads_.data() + first.grad_offset : nullptr);
    }
  model_.set_hooks(this);
}

Fsdp::~Fsdp() { model_.set_hooks(nullptr); }

void Fsdp::plan_unit(const UnitPlacement& placement, Comm& group, int64_t& grad_end) {
  const ParameterSet& params = model_.params();
  UnitShard u;
  u.unit = placement.unit;
  u.group = &group;
  u.tensors = placement.tensors;
  u.trainable = params.units()[u.unit].trainable;
  const int G = placement.group_size, g = placement.group_rank;
  u.rank_elements.assign(G, 0);
  u.first_slice = slices_.size();
  int64_t offset = slices_.empty() ? 0 : align16(slices_.back().local_offset + slices_.back().numel());
  for (int id : u.tensors) {
    const ParamInfo& info = params.info(id);
    const int64_t rows = info.shape[0], cols = info.numel / rows;
    for (int r = 0; r < G; ++r) u.rank_elements[r] += (row_split(rows, r + 1, G) - row_split(rows, r, G)) * cols;
    ShardSlice s{id, row_split(rows, g, G), row_split(rows, g + 1, G), cols, offset};
    offset = align16(offset + s.numel());
    // Gradients and moments: the trainable slices only, laid out with the same alignment (a direct unit binds
    // its gradients as one range shaped like the unit).
    if (u.trainable) {
      s.grad_offset = align16(grad_end);
      grad_end = s.grad_offset + s.numel();
    }
    slices_.push_back(s);
  }
  u.slice_count = slices_.size() - u.first_slice;
  u.direct = G == 1 && u.tensors.size() == params.units()[u.unit].params.size();
  unit_index_[u.unit] = static_cast<int>(units_.size());
  units_.push_back(std::move(u));
}

Fsdp::UnitShard& Fsdp::shard_of(int unit) {
  FW_CHECK(unit >= 0 && unit < static_cast<int>(unit_index_.size()) && unit_index_[unit] >= 0, "parameter unit ",
           unit, " is not held by this pipeline stage");
  return units_[unit_index_[unit]];
}

void Fsdp::before_use(int unit, bool backward) {
  UnitShard& u = shard_of(unit);
  if (u.direct) return;
  if (u.work_values.empty()) gather(u);
  if (backward && u.trainable && u.work_grads.empty()) {
    const ParameterUnit& pu = model_.params().units()[unit];
    u.work_grads.assign(pu.end - pu.begin, 0.0f);
  }
  model_.params().bind_unit(unit, u.work_values.data(), u.trainable ? u.work_grads.data() : nullptr);
  track_working_bytes();
}

void Fsdp::after_forward(int unit) {
  UnitShard& u = shard_of(unit);
  if (!u.direct) release(u);
}

void Fsdp::after_backward(int unit) {
  UnitShard& u = shard_of(unit);
  if (u.direct) return;
  if (u.trainable) scatter_grads(u);
  release(u);
}

// All-gather every rank's rows of every tensor, then place them at their rows in the unit layout.
void Fsdp::gather(UnitShard& u) {
  const ParameterSet& params = model_.params();
  const ParameterUnit& pu = params.units()[u.unit];
  const int G = u.group->size(), g = u.group->rank();
  Buffer<float> send(u.rank_elements[g]);
  int64_t pos = 0;
  for (size_t i = 0; i < u.slice_count; ++i) {
    const ShardSlice& s = slices_[u.first_slice + i];
    std::memcpy(send.data() + pos, values_.data() + s.local_offset, sizeof(float) * s.numel());
    pos += s.numel();
  }
  int64_t total = 0;
  for (int64_t n : u.rank_elements) total += n;
  Buffer<float> recv(total);
  u.group->all_gather_v(send.data(), recv.data(), u.rank_elements);
  u.work_values.assign(pu.end - pu.begin, 0.0f);
  pos = 0;
  for (int r = 0; r < G; ++r)
    for (int id : u.tensors) {
      const ParamInfo& info = params.info(id);
      const int64_t rows = info.shape[0], cols = info.numel / rows;
      const int64_t begin = row_split(rows, r, G), count = (row_split(rows, r + 1, G) - begin) * cols;
      std::memcpy(u.work_values.data() + (info.offset - pu.begin) + begin * cols, recv.data() + pos,
                  sizeof(float) * count);
      pos += count;
    }
}

// Pack the unit's gradients rank by rank, reduce-scatter, and add this rank's rows to its shard.
void Fsdp::scatter_grads(UnitShard& u) {
  const ParameterSet& params = model_.params();
  const ParameterUnit& pu = params.units()[u.unit];
  const int G = u.group->size(), g = u.group->rank();
  int64_t total = 0;
  for (int64_t n : u.rank_elements) total += n;
  Buffer<float> send(total);
  int64_t pos = 0;
  for (int r = 0; r < G; ++r)
    for (int id : u.tensors) {
      const ParamInfo& info = params.info(id);
      const int64_t rows = info.shape[0], cols = info.numel / rows;
      const int64_t begin = row_split(rows, r, G), count = (row_split(rows, r + 1, G) - begin) * cols;
      std::memcpy(send.data() + pos, u.work_grads.data() + (info.offset - pu.begin) + begin * cols,
                  sizeof(float) * count);
      pos += count;
    }
  Buffer<float> mine(u.rank_elements[g]);
  u.group->reduce_scatter_v(send.data(), mine.data(), u.rank_elements);
  pos = 0;
  for (size_t i = 0; i < u.slice_count; ++i) {
    const ShardSlice& s = slices_[u.first_slice + i];
    float* dst = grads_.data() + s.grad_offset;
    for (int64_t k = 0; k < s.numel(); ++k) dst[k] += mine[pos + k];
    pos += s.numel();
  }
}

void Fsdp::release(UnitShard& u) {
  Buffer<float>().swap(u.work_values);
  Buffer<float>().swap(u.work_grads);
  model_.params().bind_unit(u.unit, nullptr, nullptr);
  track_working_bytes();
}

void Fsdp::track_working_bytes() {
  working_bytes_ = 0;
  for (const UnitShard& u : units_)
    working_bytes_ += static_cast<int64_t>((u.work_values.size() + u.work_grads.size()) * sizeof(float));
  peak_working_bytes_ = std::max(peak_working_bytes_, working_bytes_);
}

void Fsdp::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

int64_t Fsdp::trainable_elements() const {
  int64_t n = 0;
  for (const ShardSlice& s : slices_)
    if (s.trainable()) n += s.numel();
  return n;
}

int64_t Fsdp::shard_elements() const {
  int64_t n = 0;
  for (const ShardSlice& s : slices_) n += s.numel();
  return n;
}

}  // namespace flywheel
