// A LoRA run's frozen base is not copied into its checkpoints (docs/lora.md): a checkpoint holds the adapters and
// their AdamW moments, and names the base -- where it comes from and a checksum of its weights -- in state.extra
// "lora_base". Whoever needs the base again (a resume, `flywheel eval`, `flywheel-ckpt export`) rebuilds it the way
// the run first did (train.seed's initialisation, model.from_hf's import, or train.init_from's weights) and must
// find the same checksum, or refuses naming both.
//
// The checksum is mesh-independent: the sum (mod 2^64) over every row r of every base tensor of
// XXH3-64(row's fp32 bytes, seed = XXH64(name) + r). FSDP shards by rows, so each rank hashes its own rows and the
// trainer ranks add their sums; a single process hashes whole tensors to the same value.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/parameters.h"
#include "train/train_config.h"

namespace flywheel {

class Trainer;

// "model.from_hf = DIR" | "train.init_from = RUN" | "initialised by Flywheel from train.seed = N".
std::string lora_base_source(const TrainConfig& train);
// Collective over the trainer ranks: the checksum of the base weights they hold.
uint64_t lora_base_checksum(Trainer& trainer);
// The same over a single-process ParameterSet holding whole fp32 tensors.
uint64_t lora_base_checksum(const ParameterSet& whole);
// state.extra["lora_base"] for a checkpoint.
nlohmann::json lora_base_record(const TrainConfig& train, uint64_t checksum);
// Throws InputError when `extra` (a checkpoint's) names another base than `checksum`, or none.
void check_lora_base(const nlohmann::json& extra, uint64_t checksum, const TrainConfig& train,
                     const std::string& where);

// Fills the base weights of a single-process ParameterSet (whole fp32 tensors, allocated) as the run did; the
// adapters are left as they are.
void load_lora_base(ParameterSet& whole, const ModelConfig& model, const TrainConfig& train);

}  // namespace flywheel
