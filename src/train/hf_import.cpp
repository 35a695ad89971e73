#include "train/hf_import.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/tensor.h"
#include "parallel/plan.h"
#include "train/trainer.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

// "a, b, c and 12 more": names in an error, without printing 300 of them.
std::string some_names(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string text;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) {
    if (i > 0) text += ", ";
    text += names[i];
  }
  if (names.size() > kShown) text += detail::concat(" and ", names.size() - kShown, " more");
  return text;
}

}  // namespace

HfWeights::HfWeights(const std::string& dir, const ParameterSet& params, bool tied)
    : model_(std::make_unique<safetensors::Model>(dir)) {
  const std::string& source = model_->source();
  std::vector<std::string> missing;
  std::set<std::string> dtypes;
  for (const ParamInfo& p : params.list()) {
    if (p.adapter) continue;  // LoRA matrices start from lora.seed, not from the base model
    if (!model_->has(p.name)) {
      missing.push_back(p.name);
      continue;
    }
    const safetensors::TensorInfo& t = model_->tensor(p.name);
    FW_INPUT_CHECK(t.shape == p.shape, source, ": tensor ", p.name, " has shape ", shape_text(t.shape),
                   "; this architecture (the model config.json describes) needs ", shape_text(p.shape));
    FW_INPUT_CHECK(t.dtype == "F32" || t.dtype == "BF16" || t.dtype == "F16", source, ": tensor ", p.name,
                   " has dtype ", t.dtype, "; weights are imported from F32, BF16 or F16");
    dtypes.insert(t.dtype);
    tensor_bytes_ += t.end - t.begin;
  }
  FW_INPUT_CHECK(missing.empty(), source, ": ", missing.size(),
                 " tensor(s) the architecture needs are missing: ", some_names(missing),
                 " (a checkpoint of another architecture, or of other dimensions?)");
  std::vector<std::string> extra;
  for (const std::string& name : model_->names()) {
    if (params.find(name) >= 0) continue;
    if (tied && name == "lm_head.weight") {
      const int embed = params.find("model.embed_tokens.weight");
      FW_INPUT_CHECK(model_->tensor(name).shape == params.info(embed).shape, source,
                     ": tensor lm_head.weight has shape ", shape_text(model_->tensor(name).shape),
                     "; tied to model.embed_tokens.weight it must be ", shape_text(params.info(embed).shape));
      continue;  // tie_word_embeddings: transformers re-ties lm_head to the embedding and ignores it
    }
    extra.push_back(name);
  }
  FW_INPUT_CHECK(extra.empty(), source, ": ", extra.size(),
                 " tensor(s) that this architecture does not have: ", some_names(extra),
                 " (a feature Flywheel does not implement, or another architecture)");
  for (const std::string& d : dtypes) dtypes_ += (dtypes_.empty() ? "" : ", ") + d;
}

void HfWeights::read_rows(const ParamInfo& info, int64_t row_begin, int64_t row_end, float* dst) const {
  model_->file_of(info.name).read_rows_into(info.name, row_begin, row_end, dst);
}

void load_hf_weights(ParameterSet& whole, const std::string& dir, bool tied) {
  const HfWeights weights(dir, whole, tied);
  for (const ParamInfo& p : whole.list())
    if (!p.adapter) weights.read_rows(p, 0, p.shape[0], whole.value(whole.find(p.name)));
}

void initialize_from_hf(Trainer& trainer, const std::string& dir) {
  const auto start = std::chrono::steady_clock::now();
  const ParameterSet& params = trainer.model().params();
  const HfWeights weights(dir, params, trainer.spec().model.tie_embeddings);
  Fsdp& shards = trainer.shards();
  // A fresh start: the AdamW moments are still the zeros Fsdp allocated them as.
  for (const ShardSlice& s : shards.slices())
    if (!params.info(s.param).adapter)
      weights.read_rows(params.info(s.param), s.row_begin, s.row_end, shards.values().data() + s.local_offset);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Comm& comm = trainer.mesh().trainers();
  double read[2] = {static_cast<double>(weights.bytes_read()), static_cast<double>(weights.bytes_read())};
  comm.control().all_reduce_sum(&read[0], 1);
  comm.control().all_reduce_max(&read[1], 1);
  const double total = static_cast<double>(weights.tensor_bytes());
  const auto imported =
      std::count_if(params.list().begin(), params.list().end(), [](const ParamInfo& p) { return !p.adapter; });
  log_info("imported ", imported, " tensors from ", weights.source(), " (", weights.dtypes(), ", ", format_bytes(total),
           ") in ", format_duration(seconds), ": this rank read ",
           format_bytes(static_cast<double>(weights.bytes_read())), " (",
           std::lround(100.0 * weights.bytes_read() / total), "% of the weights, ",
           weights.bytes_read() / 1e9 / std::max(seconds, 1e-9), " GB/s), the largest rank ", format_bytes(read[1]),
           ", all ", comm.size(), " ranks ", format_bytes(read[0]));
}

void copy_hf_files(const std::string& dir, const std::string& run_dir) {
  const fs::path target = fs::path(run_dir) / "hf";
  std::error_code ec;
  fs::create_directories(target, ec);
  FW_CHECK(!ec, "cannot create ", target.string(), ": ", ec.message());
  for (const char* name : kHfConfigFiles) {
    const fs::path from = fs::path(dir) / name;
    if (!fs::is_regular_file(from, ec)) continue;
    const fs::path to = target / name;
    const fs::path temp = target / (std::string(name) + ".tmp");
    fs::copy_file(from, temp, fs::copy_options::overwrite_existing, ec);
    FW_CHECK(!ec, "cannot copy ", from.string(), " to ", temp.string(), ": ", ec.message());
    fs::rename(temp, to, ec);
    FW_CHECK(!ec, "cannot rename ", temp.string(), " to ", to.string(), ": ", ec.message());
  }
}

}  // namespace flywheel
