// Adapters loaded beside a model rather than registered in it: a serving replica's LoRA adapters (serve/adapter_set.h),
// each applied to the rows of the sequences that asked for it. The model's forward takes them through
// Transformer::set_row_adapters for one forward at a time; training never uses them.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace flywheel {

// One adapter: for each adapted base parameter (by its id in the model's ParameterSet), A [rank, in] and
// B [out, rank] in the model's storage dtype, and the scale s (PEFT: lora_alpha / r, or / sqrt(r) with rsLoRA).
struct AdapterWeights {
  std::string name;
  int64_t rank = 0;
  float scale = 0.0f;
  std::unordered_map<int, std::pair<Tensor, Tensor>> by_base;
  std::vector<Tensor> storage;  // owns what by_base views
};

// An adapter and the rows of the forward's stacked batch it applies to (rows of different groups do not overlap;
// rows in no group get the base alone).
struct RowAdapterGroup {
  const AdapterWeights* adapter = nullptr;
  std::vector<int64_t> rows;
};

}  // namespace flywheel
