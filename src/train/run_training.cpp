#include "train/run_training.h"

#include <filesystem>

#include "train/run_loop.h"
#include "train/run_support.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

class SftSteps final : public RunSteps {
 public:
  SftSteps(Trainer& trainer, const DataSource& source) : trainer_(trainer), source_(source) {}
  std::string describe() const override { return "data " + source_.describe(); }
  StepReport step(int64_t step) override { return sft_report(trainer_.train_step(step), ""); }

 private:
  Trainer& trainer_;
  const DataSource& source_;
};

}  // namespace

int run_training(const TrainSpec& spec, const DataSource& source, Mesh& mesh) {
  Trainer trainer(spec, source, mesh);  // builds and initialises before anything is written
  const std::filesystem::path dir =
      std::filesystem::path(spec.train.out_dir) / agree_on_run_name(spec, mesh.trainers());
  SftSteps steps(trainer, source);
  return run_loop(trainer, steps, dir);
}

}  // namespace flywheel
