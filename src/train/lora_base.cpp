#include "train/lora_base.h"

#include <xxhash.h>

#include <cstdio>
#include <vector>

#include "ckpt/checkpoint.h"
#include "comm/comm.h"
#include "core/error.h"
#include "train/hf_import.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

// Rows [row_begin, row_end) of tensor `name`, `cols` floats each, starting at `values`.
uint64_t rows_checksum(const std::string& name, const float* values, int64_t row_begin, int64_t row_end,
                       int64_t cols) {
  const uint64_t name_seed = XXH64(name.data(), name.size(), 0);
  uint64_t sum = 0;
  for (int64_t r = row_begin; r < row_end; ++r)
    sum += XXH3_64bits_withSeed(values + (r - row_begin) * cols, static_cast<size_t>(cols) * sizeof(float),
                                name_seed + static_cast<uint64_t>(r));
  return sum;
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

std::string lora_base_source(const TrainConfig& train) {
  if (!train.from_hf.empty()) return "model.from_hf = " + train.from_hf;
  if (!train.init_from.empty()) return "train.init_from = " + train.init_from;
  return "initialised by Flywheel from train.seed = " + std::to_string(train.seed);
}

uint64_t lora_base_checksum(Trainer& trainer) {
  const ParameterSet& params = trainer.model().params();
  Fsdp& shards = trainer.shards();
  uint64_t mine = 0;
  for (const ShardSlice& s : shards.slices()) {
    const ParamInfo& info = params.info(s.param);
    if (!info.adapter)
      mine += rows_checksum(info.name, shards.values().data() + s.local_offset, s.row_begin, s.row_end, s.cols);
  }
  Comm& comm = trainer.mesh().trainers();
  std::vector<int64_t> all(static_cast<size_t>(comm.size()));
  const auto as_signed = static_cast<int64_t>(mine);
  comm.all_gather(&as_signed, 1, all.data());
  uint64_t sum = 0;
  for (int64_t v : all) sum += static_cast<uint64_t>(v);
  return sum;
}

uint64_t lora_base_checksum(const ParameterSet& whole) {
  uint64_t sum = 0;
  for (size_t id = 0; id < whole.list().size(); ++id) {
    const ParamInfo& info = whole.info(static_cast<int>(id));
    if (info.adapter) continue;
    const int64_t rows = info.shape[0];
    sum += rows_checksum(info.name, whole.value(static_cast<int>(id)), 0, rows, info.numel / rows);
  }
  return sum;
}

nlohmann::json lora_base_record(const TrainConfig& train, uint64_t checksum) {
  return {{"source", lora_base_source(train)}, {"checksum", hex64(checksum)}};
}

void check_lora_base(const nlohmann::json& extra, uint64_t checksum, const TrainConfig& train,
                     const std::string& where) {
  FW_INPUT_CHECK(extra.contains("lora_base") && extra["lora_base"].contains("checksum"), where,
                 " names no LoRA base (no lora_base in its state): it was not written by a LoRA run");
  const nlohmann::json& base = extra["lora_base"];
  const std::string recorded = base["checksum"].get<std::string>();
  FW_INPUT_CHECK(recorded == hex64(checksum), where, " holds adapters for another base: it records base checksum ",
                 recorded, " (", base.value("source", std::string("?")), ") but the base rebuilt from ",
                 lora_base_source(train), " has checksum ", hex64(checksum),
                 "; restore that base (the same Hugging Face files, or the init_from run as it was) to use it");
}

void load_lora_base(ParameterSet& whole, const ModelConfig& model, const TrainConfig& train) {
  if (!train.from_hf.empty()) {
    load_hf_weights(whole, train.from_hf, model.tie_embeddings);
    return;
  }
  if (!train.init_from.empty()) {  // as initialize_from: the newest good checkpoint's weights
    std::vector<TensorSlice> slices;
    for (const ParamInfo& p : whole.list())
      if (!p.adapter) slices.push_back(float_slice(p.name, p.shape, 0, p.shape[0], whole.value(whole.find(p.name))));
    std::unique_ptr<Comm> comm = make_local_comm("lora-base");
    load_checkpoint(*comm, train.init_from, std::nullopt, slices);
    return;
  }
  for (const ParamInfo& p : whole.list())
    if (!p.adapter)
      initialize_elements(p, train.seed, model.init_std, model.n_layers, 0, p.numel, whole.value(whole.find(p.name)));
}

}  // namespace flywheel
