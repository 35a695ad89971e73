#include "model/parameters.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace flywheel {

int ParameterSet::add(const std::string& name, std::vector<int64_t> shape, ParamInit init) {
  FW_CHECK(values_.empty(), "parameter ", name, " registered after allocate()");
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
  total_ = info.offset + info.numel;
  by_name_[name] = static_cast<int>(params_.size());
  params_.push_back(std::move(info));
  return static_cast<int>(params_.size()) - 1;
}

void ParameterSet::allocate() {
  values_.assign(static_cast<size_t>(total_), 0.0f);
  grads_.assign(static_cast<size_t>(total_), 0.0f);
}

int ParameterSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

void ParameterSet::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void ParameterSet::initialize(uint64_t seed, double init_std, int64_t n_layers) {
  for (size_t id = 0; id < params_.size(); ++id) {
    const ParamInfo& p = params_[id];
    float* dst = values_.data() + p.offset;
    if (p.init == ParamInit::kOnes) {
      std::fill(dst, dst + p.numel, 1.0f);
      continue;
    }
    const double std_dev =
        p.init == ParamInit::kNormalScaled ? init_std / std::sqrt(2.0 * static_cast<double>(n_layers)) : init_std;
    const RngKey base{seed, RngPurpose::kWeightInit, XXH64(p.name.data(), p.name.size(), 0), 0};
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < p.numel; ++i) {
      RngKey key = base;
      key.index = static_cast<uint64_t>(i);
      CounterRng rng(key);
      dst[i] = static_cast<float>(std_dev * rng.normal());
    }
  }
}

}  // namespace flywheel
