#include "model/parameters.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace flywheel {

int ParameterSet::begin_unit(const std::string& name, int layer, bool experts, bool trainable) {
  FW_CHECK(unit_values_.empty(), "unit ", name, " opened after allocate()");
  ParameterUnit unit;
  unit.name = name;
  unit.layer = layer;
  unit.experts = experts;
  unit.trainable = trainable;
  unit.begin = unit.end = (total_ + 15) / 16 * 16;
  units_.push_back(std::move(unit));
  return static_cast<int>(units_.size()) - 1;
}

int ParameterSet::add(const std::string& name, std::vector<int64_t> shape, ParamInit init, int expert, bool adapter) {
  FW_CHECK(unit_values_.empty(), "parameter ", name, " registered after allocate()");
  FW_CHECK(!units_.empty(), "parameter ", name, " registered before any begin_unit()");
  FW_CHECK(!by_name_.count(name), "parameter ", name, " registered twice");
  ParamInfo info;
  info.name = name;
  info.numel = 1;
  for (int64_t extent : shape) info.numel *= extent;
  info.shape = std::move(shape);
  // Start every tensor on a 16-float (64-byte) boundary so vector loads stay aligned.
  info.offset = (total_ + 15) / 16 * 16;
  info.init = init;
  info.weight_decay = info.shape.size() >= 2;
  info.unit = static_cast<int>(units_.size()) - 1;
  info.expert = expert;
  info.adapter = adapter;
  total_ = info.offset + info.numel;
  units_.back().params.push_back(static_cast<int>(params_.size()));
  units_.back().end = total_;
  by_name_[name] = static_cast<int>(params_.size());
  params_.push_back(std::move(info));
  return static_cast<int>(params_.size()) - 1;
}

void ParameterSet::allocate(DType dtype, bool with_grads) {
  FW_CHECK(dtype == DType::kF32 || dtype == DType::kBF16, "parameters stored in ", dtype_name(dtype),
           "; allowed: f32, bf16");
  FW_CHECK(with_grads ? dtype == DType::kF32 : true, "gradients need f32 parameter storage");
  dtype_ = dtype;
  uint8_t* base = nullptr;
  if (dtype == DType::kF32) {
    values_.assign(static_cast<size_t>(total_), 0.0f);
    base = reinterpret_cast<uint8_t*>(values_.data());
  } else {
    narrow_values_ = Tensor::zeros(dtype, {total_});
    base = static_cast<uint8_t*>(narrow_values_.raw());
  }
  if (with_grads) grads_.assign(static_cast<size_t>(total_), 0.0f);
  unit_values_.assign(units_.size(), nullptr);
  unit_grads_.assign(units_.size(), nullptr);
  for (size_t u = 0; u < units_.size(); ++u) {
    unit_values_[u] = base + static_cast<size_t>(units_[u].begin) * dtype_bytes(dtype);
    unit_grads_[u] = with_grads && units_[u].trainable ? grads_.data() + units_[u].begin : nullptr;
  }
}

Tensor ParameterSet::tensor(int id) const {
  const ParamInfo& p = params_[id];
  auto* unit = static_cast<uint8_t*>(unit_values_[p.unit]);
  return Tensor::view(unit + static_cast<size_t>(p.offset - unit_begin(id)) * dtype_bytes(dtype_), dtype_, p.shape);
}

int64_t ParameterSet::storage_bytes() const {
  return static_cast<int64_t>((values_.size() + grads_.size()) * sizeof(float) + narrow_values_.nbytes());
}

void ParameterSet::bind_unit(int unit, float* values, float* grads) {
  FW_CHECK(dtype_ == DType::kF32, "bind_unit: units bind fp32 training storage");
  unit_values_.resize(units_.size(), nullptr);
  unit_grads_.resize(units_.size(), nullptr);
  unit_values_[unit] = values;
  unit_grads_[unit] = grads;
}

int ParameterSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

bool ParameterSet::any_frozen() const {
  return std::any_of(units_.begin(), units_.end(), [](const ParameterUnit& u) { return !u.trainable; });
}

void ParameterSet::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void initialize_elements(const ParamInfo& p, uint64_t seed, double init_std, int64_t n_layers,
                         int64_t first_element, int64_t count, float* dst) {
  if (p.init == ParamInit::kOnes || p.init == ParamInit::kZeros) {
    std::fill(dst, dst + count, p.init == ParamInit::kOnes ? 1.0f : 0.0f);
    return;
  }
  const RngKey base{seed, RngPurpose::kWeightInit, XXH64(p.name.data(), p.name.size(), 0), 0};
  if (p.init == ParamInit::kFanInUniform) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.numel / p.shape[0]));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      RngKey key = base;
      key.index = static_cast<uint64_t>(first_element + i);
      CounterRng rng(key);
      dst[i] = static_cast<float>(bound * (2.0 * rng.uniform() - 1.0));
    }
    return;
  }
  const double std_dev =
      p.init == ParamInit::kNormalScaled ? init_std / std::sqrt(2.0 * static_cast<double>(n_layers)) : init_std;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    RngKey key = base;
    key.index = static_cast<uint64_t>(first_element + i);
    CounterRng rng(key);
    dst[i] = static_cast<float>(std_dev * rng.normal());
  }
}

void ParameterSet::initialize(uint64_t seed, double init_std, int64_t n_layers, uint64_t adapter_seed) {
  for (size_t id = 0; id < params_.size(); ++id)
    initialize_elements(params_[id], params_[id].adapter ? adapter_seed : seed, init_std, n_layers, 0,
                        params_[id].numel, value(static_cast<int>(id)));
}

}  // namespace flywheel
