// Importing a Hugging Face model's weights (`model.from_hf = DIR`, issue #10): DIR's
// model.safetensors or model.safetensors.index.json checked against the architecture, then each rank
// reads only the rows it holds.
//
// The architecture is the parameter registry (model/parameters.h): its names already are Hugging Face
// names and its shapes Hugging Face shapes (nn.Linear weights [out, in]), so a tensor maps to the
// parameter of the same name, unchanged. Before anything is read, every tensor is checked: each
// parameter present with its exact shape in F32, F16 or BF16, and nothing else in the files (a tied
// model may carry lm_head.weight, which transformers ignores when it re-ties: so do we). Every
// mismatch is an InputError that names the tensor, what the file has and what the architecture needs.
//
// Reading: a rank reads its FSDP slices' rows with pread (ckpt/safetensors.h), widening BF16/F16 to
// the fp32 master weights, so on an fsdp8 mesh a rank reads about 1/8 of the weights, and a pipeline
// stage only its layers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ckpt/safetensors_index.h"
#include "model/parameters.h"

namespace flywheel {

class Trainer;

// config.json, generation_config.json and the tokenizer files of a Hugging Face model directory,
// the ones that exist being copied into a run directory's hf/ (for `flywheel-ckpt export --format hf`).
inline constexpr const char* kHfConfigFiles[] = {"config.json",
                                                 "generation_config.json",
                                                 "tokenizer.json",
                                                 "tokenizer_config.json",
                                                 "special_tokens_map.json",
                                                 "vocab.json",
                                                 "merges.txt",
                                                 "added_tokens.json"};

class HfWeights {
 public:
  // Opens DIR's weights and checks every tensor against `params` (the full registry, whatever this
  // rank holds). `tied`: the model ties lm_head to the embedding. Throws InputError.
  HfWeights(const std::string& dir, const ParameterSet& params, bool tied);

  // Rows [row_begin, row_end) of parameter `info` into dst as fp32.
  void read_rows(const ParamInfo& info, int64_t row_begin, int64_t row_end, float* dst) const;
  uint64_t bytes_read() const { return model_->bytes_read(); }
  uint64_t tensor_bytes() const { return tensor_bytes_; }  // of the parameters, in the file's dtypes
  const std::string& source() const { return model_->source(); }
  std::string dtypes() const { return dtypes_; }  // "BF16", or "BF16, F32" when mixed

 private:
  std::unique_ptr<safetensors::Model> model_;
  uint64_t tensor_bytes_ = 0;
  std::string dtypes_;
};

// Collective over the trainer ranks, at a run's fresh start: every rank checks DIR's tensors and
// fills its shards of the parameters from them (the AdamW moments are still zero). Logs what was
// read and the rate.
void initialize_from_hf(Trainer& trainer, const std::string& dir);

// One process: fills every base (non-adapter) tensor of a ParameterSet holding whole fp32 tensors from DIR (a
// served model, a LoRA run's base rebuilt offline).
void load_hf_weights(ParameterSet& whole, const std::string& dir, bool tied);

// Rank 0 of a run that starts: copies DIR's files of kHfConfigFiles into run_dir/hf/.
void copy_hf_files(const std::string& dir, const std::string& run_dir);

}  // namespace flywheel
