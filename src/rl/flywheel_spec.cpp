#include "rl/flywheel_spec.h"

#include "core/error.h"
#include "data/tokenizer.h"

namespace flywheel {

void FlywheelSpec::validate(int64_t world_size) const {
  const TrainConfig& tc = train;
  model.validate();
  tc.validate();
  mesh.validate();
  rl.validate();
  FW_CHECK(tc.objective == "grpo", "train.objective = '", tc.objective,
           "': `flywheel run` trains grpo (set train.objective = grpo)");
  FW_CHECK(mesh.serve >= 1, "mesh.serve = ", mesh.serve, ": `flywheel run` needs at least one serving replica rank");
  FW_CHECK(rl.sft_steps < tc.steps, "rl.sft_steps = ", rl.sft_steps, " leaves no RL step of train.steps = ", tc.steps);
  const int64_t rows = rl.prompts_per_step * rl.group_size;
  FW_CHECK(tc.global_batch() == rows, "train.micro_batch x train.grad_accum = ", tc.micro_batch, " x ", tc.grad_accum,
           " = ", tc.global_batch(), " but an RL step has rl.prompts_per_step x rl.group_size = ", rows,
           " rows: make them equal (the SFT warm-up uses the same batch)");
  FW_CHECK(!(rl.exact() && !model.invariant_forward()), "rl.serve_dtype = fp32 (exact) needs model.forward_kernels = ",
           "invariant so trainer and replicas compute the same bits (or serve bf16: rl.serve_dtype = bf16)");
  FW_CHECK(tc.init_from.empty(), "train.init_from is for `flywheel train`; `flywheel run` starts from its SFT warm-up");
  // The trainer ranks' checks (as `flywheel train` makes them), on the ranks before the replicas.
  TrainSpec::validate();
  MeshConfig trainers = mesh;
  trainers.serve = 0;
  trainers.check_world(world_size - mesh.serve);
  check_byte_vocabulary(model.vocab_size);
}

}  // namespace flywheel
