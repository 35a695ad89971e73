// The parameter registry: every weight has a stable global name in the Hugging Face style
// ("model.layers.3.mlp.experts.2.down_proj.weight"), a shape, and a slice of one flat fp32 buffer.
// Gradients live in a second flat buffer with the same layout, so the optimizer, gradient
// clipping, checkpoints and (later) FSDP sharding all work on contiguous memory.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/buffer.h"

namespace flywheel {

enum class ParamInit {
  kNormal,        // N(0, init_std)
  kNormalScaled,  // N(0, init_std / sqrt(2 n_layers)): projections that write into the residual stream
  kOnes,          // norm gains
};

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // elements from the start of the flat buffer
  int64_t numel = 0;
  ParamInit init = ParamInit::kNormal;
  bool weight_decay = true;  // AdamW decay applies to matrices, not to norm gains
};

class ParameterSet {
 public:
  // Register before allocate(); returns the parameter's id (its index in list()).
  int add(const std::string& name, std::vector<int64_t> shape, ParamInit init);
  void allocate();  // values and grads, zero-filled

  int find(const std::string& name) const;  // -1 when absent
  const std::vector<ParamInfo>& list() const { return params_; }
  const ParamInfo& info(int id) const { return params_[id]; }
  float* value(int id) { return values_.data() + params_[id].offset; }
  const float* value(int id) const { return values_.data() + params_[id].offset; }
  float* grad(int id) { return grads_.data() + params_[id].offset; }
  const float* grad(int id) const { return grads_.data() + params_[id].offset; }

  int64_t numel() const { return total_; }
  Buffer<float>& values() { return values_; }
  const Buffer<float>& values() const { return values_; }
  Buffer<float>& grads() { return grads_; }
  const Buffer<float>& grads() const { return grads_; }
  void zero_grads();

  // Deterministic initialisation: element i of parameter "name" draws from the counter RNG keyed by
  // (seed, kWeightInit, xxh64(name), i), so weights do not depend on registration order or the mesh.
  void initialize(uint64_t seed, double init_std, int64_t n_layers);

 private:
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, int> by_name_;
  Buffer<float> values_, grads_;
  int64_t total_ = 0;
};

}  // namespace flywheel
