// The parameter registry: every weight has a stable global name in the Hugging Face style
// ("model.layers.3.mlp.experts.2.down_proj.weight"), a shape, and a slice of one flat buffer.
// Gradients live in a second flat fp32 buffer with the same layout, so the optimizer, gradient
// clipping, checkpoints and FSDP sharding all work on contiguous memory. Training storage is fp32
// with gradients; a serving replica holds weights only, in fp32 or bf16 (2 bytes a parameter), and
// hands them out as typed Tensors.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "core/tensor.h"

namespace flywheel {

enum class ParamInit {
  kNormal,        // N(0, init_std)
  kNormalScaled,  // N(0, init_std / sqrt(2 n_layers)): projections that write into the residual stream
  kOnes,          // norm gains
  kZeros,         // biases (as Hugging Face initialises nn.Linear biases for these models); LoRA B
  kFanInUniform,  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = columns: LoRA A, as PEFT's kaiming_uniform_(a=sqrt(5))
};

struct ParamInfo {
  std::string name;
  int unit = 0;          // the FSDP unit (see ParameterUnit) this tensor belongs to
  std::vector<int64_t> shape;
  int64_t offset = 0;  // elements from the start of the flat buffer
  int64_t numel = 0;
  ParamInit init = ParamInit::kNormal;
  bool weight_decay = true;  // AdamW decay applies to matrices, not to norm gains
  int expert = -1;           // MoE expert index for expert weights, else -1
  bool adapter = false;      // a LoRA matrix (model/lora_config.h): initialised from lora.seed, never imported
};

// A unit is a contiguous run of parameters that is gathered, used and released together under
// FSDP: the embedding, one layer's dense weights, one layer's experts, the final norm + LM head.
struct ParameterUnit {
  std::string name;         // "embed", "layers.3", "layers.3.experts", "head"
  int layer = -1;           // decoder layer, or -1
  bool experts = false;     // expert weights: sharded over the expert-data-parallel group
  bool trainable = true;    // false: frozen (a LoRA base): no gradients, no optimizer state
  std::vector<int> params;  // ids, in registration (= flat) order
  int64_t begin = 0, end = 0;  // flat element range [begin, end)
};

class ParameterSet {
 public:
  // Units partition the parameters: begin_unit() opens a unit that add() appends to.
  int begin_unit(const std::string& name, int layer, bool experts, bool trainable = true);
  // Register before allocate(); returns the parameter's id (its index in list()).
  int add(const std::string& name, std::vector<int64_t> shape, ParamInit init, int expert = -1, bool adapter = false);
  // Single-rank storage, zero-filled, every unit bound into it: values in `dtype` (f32, or bf16 for
  // serving) and, with_grads, fp32 gradients of the trainable units (frozen units bind none).
  void allocate(DType dtype = DType::kF32, bool with_grads = true);
  // Points a unit's values/grads at other storage laid out like the unit's flat range
  // (FSDP binds gathered working buffers here). value(id) then reads from that storage. grads is null
  // for a frozen unit.
  void bind_unit(int unit, float* values, float* grads);
  const std::vector<ParameterUnit>& units() const { return units_; }

  int find(const std::string& name) const;  // -1 when absent
  const std::vector<ParamInfo>& list() const { return params_; }
  const ParamInfo& info(int id) const { return params_[id]; }
  DType dtype() const { return dtype_; }
  // Parameter id's bound values as a typed view of its registered shape.
  Tensor tensor(int id) const;
  // fp32 values and gradients of parameter id (fp32 storage; gradients only when allocated).
  float* value(int id) const {
    FW_CHECK(dtype_ == DType::kF32, "parameter ", params_[id].name, " is stored in ", dtype_name(dtype_),
             ", not read as f32 (use tensor())");
    return static_cast<float*>(unit_values_[params_[id].unit]) + (params_[id].offset - unit_begin(id));
  }
  // Null for a frozen parameter (and while its unit has no gradients bound): backward skips its gradient.
  float* grad(int id) const {
    float* unit = unit_grads_[params_[id].unit];
    return unit ? unit + (params_[id].offset - unit_begin(id)) : nullptr;
  }
  bool trainable(int id) const { return units_[params_[id].unit].trainable; }
  bool any_frozen() const;

  int64_t numel() const { return total_; }
  // The single-rank full fp32 buffers (empty when units are bound elsewhere or stored in bf16).
  Buffer<float>& values() { return values_; }
  const Buffer<float>& values() const { return values_; }
  Buffer<float>& grads() { return grads_; }
  const Buffer<float>& grads() const { return grads_; }
  void zero_grads();
  // Bytes of the single-rank storage this set allocated (values + gradients).
  int64_t storage_bytes() const;

  // Deterministic initialisation (of the single-rank full buffers): element i of parameter "name" draws from the
  // counter RNG keyed by (seed, kWeightInit, xxh64(name), i), so weights do not depend on registration order or the
  // mesh; adapters draw from adapter_seed (lora.seed) instead.
  void initialize(uint64_t seed, double init_std, int64_t n_layers, uint64_t adapter_seed = 0);

 private:
  int64_t unit_begin(int id) const { return units_[params_[id].unit].begin; }

  std::vector<ParamInfo> params_;
  std::vector<ParameterUnit> units_;
  DType dtype_ = DType::kF32;
  std::vector<void*> unit_values_;
  std::vector<float*> unit_grads_;
  std::unordered_map<std::string, int> by_name_;
  Buffer<float> values_, grads_;
  Tensor narrow_values_;  // the single-rank values when stored in bf16
  int64_t total_ = 0;
};

// Fills dst[0, count) with elements [first_element, first_element + count) of the flattened
// tensor `info` as initialize() would: lets a rank initialise just its shard.
void initialize_elements(const ParamInfo& info, uint64_t seed, double init_std, int64_t n_layers,
                         int64_t first_element, int64_t count, float* dst);

}  // namespace flywheel
