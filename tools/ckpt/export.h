// flywheel-ckpt export's formats: one safetensors file (export.cpp, which also parses the command line), a
// Hugging Face model directory (export_hf.cpp; a LoRA run's merged), and a PEFT adapter directory
// (export_peft.cpp). What they share: the step's weights as streaming safetensors sources, and the
// __metadata__ that records where they came from.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/offline.h"
#include "ckpt/safetensors.h"
#include "core/progress.h"
#include "launch/shape.h"
#include "model/config.h"
#include "model/transformer.h"

namespace flywheel::ckpt_tool {

// Every weight of the step, read one tensor at a time when the writer reaches it.
std::vector<safetensors::Source> weight_sources(StepReader& reader);

// A LoRA run's base, which its checkpoints name but do not hold: rebuilt as the run built it (train/lora_base.h:
// train.seed, model.from_hf or train.init_from, as the recorded shape says) and checked against the step's record.
// A single-process fp32 model: memory = the base's fp32 bytes.
std::unique_ptr<Transformer> rebuilt_lora_base(StepReader& reader, const Shape& shape);
// The base's weights (from `base`) as sources, one tensor at a time.
std::vector<safetensors::Source> base_sources(const Transformer& base);

// __metadata__: producer, step, checkpoint format version, mesh, tie_word_embeddings (+ a note that
// lm_head.weight is not stored when tied), and the model summary when there is one.
std::map<std::string, std::string> export_metadata(const StepReader& reader, bool tied, const std::string& model_note);

// What `export --format hf | peft` was asked for (export.cpp checks the options; export_hf.cpp and
// export_peft.cpp do the rest).
struct HfExportRequest {
  std::string run_dir, out;
  std::optional<int64_t> step;
  DType dtype = DType::kF32;
  uint64_t max_shard_bytes = 0;
  bool force = false;
  bool merge = false;  // hf: fold a LoRA run's adapters into the base weights (W + s B A)
  ProgressStyle style = ProgressStyle::kOff;
};
// Before the (long) verification: refuses an --out that is a file, lies in a missing directory, is
// non-empty without --force, or (with --force) does not hold `marker` (config.json: a model directory;
// adapter_config.json: an adapter directory).
void check_out_dir(const HfExportRequest& request, const std::string& marker);
// The step's model from its recorded shape, checked against the step's tensors (hf and peft need it).
ModelConfig step_model(StepReader& reader);
// Writes the directory; returns the exit code.
int export_hf(const HfExportRequest& request);
int export_peft(const HfExportRequest& request);

}  // namespace flywheel::ckpt_tool
