#include "train/run_weights.h"

#include <memory>
#include <vector>

#include "ckpt/checkpoint.h"
#include "comm/comm.h"
#include "core/error.h"
#include "train/checkpointing.h"
#include "train/lora_base.h"

namespace flywheel {

void load_run_step(ParameterSet& whole, const ModelConfig& model, const TrainConfig& train, const std::string& run_dir,
                   int64_t step, bool& base_loaded) {
  const bool lora = model.lora.enabled();
  if (lora && !base_loaded) {
    load_lora_base(whole, model, train);
    base_loaded = true;
  }
  std::unique_ptr<Comm> comm = make_local_comm("weights");
  std::vector<TensorSlice> slices;
  for (TensorSlice& s : whole_tensor_slices(whole, nullptr, nullptr))
    if (!lora || whole.info(whole.find(s.name)).adapter) slices.push_back(std::move(s));
  const LoadResult loaded = load_checkpoint(*comm, run_dir, step, slices);
  FW_INPUT_CHECK(loaded.step == step, "step ", step, " of ", run_dir, " is not loadable (it fell back to step ",
                 loaded.step, "): run flywheel-ckpt verify ", run_dir, " --step ", step);
  if (lora) check_lora_base(loaded.state.extra, lora_base_checksum(whole), train, loaded.step_dir);
}

}  // namespace flywheel
