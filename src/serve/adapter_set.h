// Many LoRA adapters for one served base model (multi-LoRA serving): loaded from PEFT adapter directories or given
// as tensors, checked against the base, held in the base's storage dtype, at most `capacity` at a time with the
// least recently used evicted. The decode engine applies each sequence's adapter to that sequence's rows only
// (model/row_adapters.h), so one decode batch mixes adapters; with the batch-invariant kernels a sequence's tokens
// and logprobs are the bits it gets served alone. An adapter some sequence still uses is pinned: it is neither
// evicted nor unloaded (vLLM calls these max_loras / max_cpu_loras; here one number, host memory).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/parameters.h"
#include "model/row_adapters.h"

namespace flywheel {

class AdapterSet {
 public:
  // base: the served model's registry (names, shapes, storage dtype); it must outlive the set.
  AdapterSet(const ParameterSet& base, int64_t capacity);

  // Loads the PEFT directory `dir` (adapter_config.json: r, lora_alpha, use_rslora; adapter_model.safetensors:
  // base_model.model.<module>.lora_A.weight / lora_B.weight) as `name`, replacing an unpinned adapter of that
  // name. Throws InputError naming the directory, the tensor or key and what the base needs: an adapter for
  // another base (a module it lacks, a shape that does not fit), a missing half, a rank that disagrees with r.
  void load_peft(const std::string& name, const std::string& dir);
  // The same from tensors named as the model's registry names them (<module>.lora_A.weight, fp32).
  void add(const std::string& name, const std::vector<NamedTensor>& tensors, int64_t rank, float scale);
  // Removes `name`; throws when it is pinned or absent.
  void unload(const std::string& name);

  // The adapter (marking it most recently used), or null.
  const AdapterWeights* find(const std::string& name);
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  void pin(const std::string& name);    // a sequence starts using it
  void unpin(const std::string& name);  // one has finished
  std::vector<std::string> names() const;
  int64_t capacity() const { return capacity_; }
  int64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::unique_ptr<AdapterWeights> weights;  // stable address while loaded
    int64_t pins = 0;
    uint64_t last_used = 0;
  };
  // Makes room for one more (evicting the least recently used unpinned adapter); throws when all are pinned.
  void make_room(const std::string& incoming);
  void insert(const std::string& name, std::unique_ptr<AdapterWeights> weights);
  std::unique_ptr<AdapterWeights> build(const std::string& name, const std::string& origin,
                                        const std::map<std::string, Tensor>& tensors, int64_t rank, float scale) const;

  const ParameterSet& base_;
  int64_t capacity_;
  std::map<std::string, Entry> entries_;
  uint64_t clock_ = 0;
  int64_t evictions_ = 0;
};

}  // namespace flywheel
