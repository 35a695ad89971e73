#include "train/checkpointing.h"

#include <vector>

#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/log.h"

namespace flywheel {
namespace {

std::vector<TensorSlice> trainer_slices(Trainer& trainer) {
  Fsdp& shards = trainer.shards();
  const ParameterSet& params = trainer.model().params();
  std::vector<TensorSlice> slices;
  for (const ShardSlice& s : shards.slices()) {
    const ParamInfo& info = params.info(s.param);
    slices.push_back({info.name, info.shape, s.row_begin, s.row_end, shards.values().data() + s.local_offset,
                      shards.adam_m().data() + s.local_offset, shards.adam_v().data() + s.local_offset});
  }
  return slices;
}

nlohmann::json mesh_json(const MeshConfig& m) {
  return {{"pp", m.pp}, {"fsdp", m.fsdp}, {"cp", m.cp}, {"ep", m.ep}, {"serve", m.serve}};
}

}  // namespace

void save_training_checkpoint(Trainer& trainer, const std::string& run_dir, int64_t steps_done) {
  const Shape& shape = trainer.shape();
  CheckpointState state;
  state.step = steps_done;
  state.seed = shape.train.seed;
  state.shape_text = shape.text;
  state.mesh = mesh_json(shape.mesh);
  state.extra = {{"data_cursor", steps_done * shape.train.global_batch()},
                 {"global_batch", shape.train.global_batch()},
                 {"rng", "counter-based (seed, purpose, step, index): nothing to restore"}};
  save_checkpoint(trainer.mesh().trainers(), run_dir, state, trainer_slices(trainer), shape.train.keep_last);
}

std::optional<int64_t> resume_training(Trainer& trainer, const std::string& run_dir) {
  if (committed_steps(run_dir).empty()) return std::nullopt;
  std::vector<TensorSlice> slices = trainer_slices(trainer);
  const LoadResult loaded = load_checkpoint(trainer.mesh().trainers(), run_dir, std::nullopt, slices);
  FW_CHECK(loaded.state.seed == trainer.shape().train.seed, "checkpoint ", loaded.step_dir, " was trained with seed ",
           loaded.state.seed, " but train.seed = ", trainer.shape().train.seed,
           ": a resumed run must keep its seed (data order depends on it); use a new train.run_name for a new run");
  FW_CHECK(loaded.step <= trainer.shape().train.steps, "checkpoint ", loaded.step_dir, " holds ", loaded.step,
           " steps, more than train.steps = ", trainer.shape().train.steps);
  log_info("resumed from ", loaded.step_dir, " (step ", loaded.step, ", written by ", loaded.world_size,
           " ranks on mesh ", loaded.state.mesh.dump(), ")");
  return loaded.step;
}

}  // namespace flywheel
