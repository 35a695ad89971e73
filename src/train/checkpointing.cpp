#include "train/checkpointing.h"

#include <vector>

#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/log.h"
#include "train/lora_base.h"

namespace flywheel {
namespace {

std::vector<TensorSlice> trainer_slices(Trainer& trainer, CheckpointPart part = CheckpointPart::kAll) {
  Fsdp& shards = trainer.shards();
  const ParameterSet& params = trainer.model().params();
  std::vector<TensorSlice> slices;
  for (const ShardSlice& s : shards.slices()) {
    const ParamInfo& info = params.info(s.param);
    if (part == CheckpointPart::kBaseWeights && info.adapter) continue;
    if (part == CheckpointPart::kAdapters && !info.adapter) continue;
    // A frozen base weight (LoRA) has no moments: its slice carries values only.
    const bool moments = s.trainable() && part != CheckpointPart::kBaseWeights;
    float* m = moments ? shards.adam_m().data() + s.grad_offset : nullptr;
    float* v = moments ? shards.adam_v().data() + s.grad_offset : nullptr;
    slices.push_back(
        float_slice(info.name, info.shape, s.row_begin, s.row_end, shards.values().data() + s.local_offset, m, v));
  }
  return slices;
}

nlohmann::json mesh_json(const MeshConfig& m) {
  return {{"pp", m.pp}, {"fsdp", m.fsdp}, {"cp", m.cp}, {"ep", m.ep}, {"serve", m.serve}};
}

}  // namespace

std::vector<TensorSlice> whole_tensor_slices(ParameterSet& params, float* adam_m, float* adam_v) {
  std::vector<TensorSlice> slices;
  slices.reserve(params.list().size());
  for (size_t id = 0; id < params.list().size(); ++id) {
    const ParamInfo& info = params.info(static_cast<int>(id));
    slices.push_back(float_slice(info.name, info.shape, 0, info.shape.empty() ? 1 : info.shape[0],
                                 params.value(static_cast<int>(id)), adam_m ? adam_m + info.offset : nullptr,
                                 adam_v ? adam_v + info.offset : nullptr));
  }
  return slices;
}

void save_training_checkpoint(Trainer& trainer, const std::string& run_dir, int64_t steps_done) {
  const TrainSpec& spec = trainer.spec();
  CheckpointState state;
  state.step = steps_done;
  state.seed = spec.train.seed;
  state.shape_text = spec.text;
  state.mesh = mesh_json(spec.mesh);
  state.extra = {{"data_cursor", steps_done * spec.train.global_batch()},
                 {"global_batch", spec.train.global_batch()},
                 {"rng", "counter-based (seed, purpose, step, index): nothing to restore"}};
  const bool lora = spec.model.lora.enabled();
  if (lora) state.extra["lora_base"] = lora_base_record(spec.train, lora_base_checksum(trainer));  // collective
  save_checkpoint(trainer.mesh().trainers(), run_dir, state,
                  trainer_slices(trainer, lora ? CheckpointPart::kAdapters : CheckpointPart::kAll),
                  spec.train.keep_last);
}

std::optional<ResumedCheckpoint> resume_checkpoint(Trainer& trainer, const std::string& run_dir, CheckpointPart part) {
  if (committed_steps(run_dir).empty()) return std::nullopt;
  const bool lora_resume = trainer.spec().model.lora.enabled() && part == CheckpointPart::kAll;
  if (lora_resume) part = CheckpointPart::kAdapters;
  std::vector<TensorSlice> slices = trainer_slices(trainer, part);
  const LoadResult loaded = load_checkpoint(trainer.mesh().trainers(), run_dir, std::nullopt, slices);
  if (lora_resume)
    check_lora_base(loaded.state.extra, lora_base_checksum(trainer), trainer.spec().train, loaded.step_dir);
  FW_CHECK(loaded.state.seed == trainer.spec().train.seed, "checkpoint ", loaded.step_dir, " was trained with seed ",
           loaded.state.seed, " but train.seed = ", trainer.spec().train.seed,
           ": a resumed run must keep its seed (data order depends on it); use a new train.run_name for a new run");
  FW_CHECK(loaded.step <= trainer.spec().train.steps, "checkpoint ", loaded.step_dir, " holds ", loaded.step,
           " steps, more than train.steps = ", trainer.spec().train.steps);
  log_info("resumed from ", loaded.step_dir, " (step ", loaded.step, ", written by ", loaded.world_size,
           " ranks on mesh ", loaded.state.mesh.dump(), ")");
  return ResumedCheckpoint{loaded.step, loaded.step_dir, loaded.state.shape_text};
}

std::optional<int64_t> resume_training(Trainer& trainer, const std::string& run_dir, CheckpointPart part) {
  const std::optional<ResumedCheckpoint> resumed = resume_checkpoint(trainer, run_dir, part);
  if (!resumed) return std::nullopt;
  return resumed->step;
}

}  // namespace flywheel
