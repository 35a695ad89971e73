// flywheel-ckpt export's two formats: one safetensors file (export.cpp, which also parses the command
// line) and a Hugging Face model directory (export_hf.cpp). What they share: the step's weights as
// streaming safetensors sources, and the __metadata__ that records where they came from.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/offline.h"
#include "ckpt/safetensors.h"
#include "core/progress.h"

namespace flywheel::ckpt_tool {

// Every weight of the step, read one tensor at a time when the writer reaches it.
std::vector<safetensors::Source> weight_sources(StepReader& reader);

// __metadata__: producer, step, checkpoint format version, mesh, tie_word_embeddings (+ a note that
// lm_head.weight is not stored when tied), and the model summary when there is one.
std::map<std::string, std::string> export_metadata(const StepReader& reader, bool tied, const std::string& model_note);

// What `export --format hf` was asked for (export.cpp checks the options; export_hf.cpp does the rest).
struct HfExportRequest {
  std::string run_dir, out;
  std::optional<int64_t> step;
  DType dtype = DType::kF32;
  uint64_t max_shard_bytes = 0;
  bool force = false;
  ProgressStyle style = ProgressStyle::kOff;
};
// Before the (long) verification: refuses an --out that is a file, lies in a missing directory, is
// non-empty without --force, or (with --force) does not look like a model directory.
void check_hf_out_dir(const HfExportRequest& request);
// Writes the directory; returns the exit code.
int export_hf(const HfExportRequest& request);

}  // namespace flywheel::ckpt_tool
