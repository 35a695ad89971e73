#include "rl/flywheel_spec.h"

#include <algorithm>

#include "core/error.h"
#include "data/text_codec.h"
#include "rl/rl_prompts.h"

namespace flywheel {
namespace {

// A rollout is the prompt (BOS or chat template included) + up to rl.max_new_tokens sampled tokens:
// the replica's KV cache holds model.max_seq_len positions and a training row seq_len + 1 tokens, so
// the longest prompt the run can draw must leave max_new_tokens of both.
void check_rollout_room(const FlywheelSpec& spec) {
  const RlConfig& rl = spec.rl;
  const RlPrompts prompts(spec, TextCodec::open(spec.data));
  const int64_t prompt = prompts.max_prompt_tokens();
  const int64_t room = std::min(spec.model.max_seq_len, spec.train.seq_len + 1) - prompt;
  FW_INPUT_CHECK(rl.max_new_tokens <= room, "rl.max_new_tokens = ", rl.max_new_tokens,
                 " does not fit: ", prompts.longest_source(), " draws prompts of up to ", prompt,
                 " tokens, and prompt + completion must fit in model.max_seq_len = ", spec.model.max_seq_len,
                 " (a replica's KV cache) and in train.seq_len + 1 = ", spec.train.seq_len + 1, " (a training row); ",
                 room > 0 ? detail::concat("allowed: rl.max_new_tokens <= ", room)
                          : detail::concat("no completion fits: raise train.seq_len and model.max_seq_len to at least ",
                                           prompt + rl.max_new_tokens));
}

}  // namespace

void FlywheelSpec::validate(int64_t world_size) const {
  const TrainConfig& tc = train;
  model.validate();
  tc.validate();
  mesh.validate();
  rl.validate();
  FW_INPUT_CHECK(tc.objective == "grpo", "train.objective = '", tc.objective,
                 "': `flywheel run` trains grpo (set train.objective = grpo)");
  FW_INPUT_CHECK(mesh.serve >= 1, "mesh.serve = ", mesh.serve,
                 ": `flywheel run` needs at least one serving replica rank");
  FW_INPUT_CHECK(rl.sft_steps < tc.steps, "rl.sft_steps = ", rl.sft_steps, " leaves no RL step of train.steps = ",
                 tc.steps);
  const int64_t rows = rl.prompts_per_step * rl.group_size;
  FW_INPUT_CHECK(tc.global_batch() == rows, "train.micro_batch x train.grad_accum = ", tc.micro_batch, " x ",
                 tc.grad_accum, " = ", tc.global_batch(), " but an RL step has rl.prompts_per_step x rl.group_size = ",
                 rows, " rows: make them equal (the SFT warm-up uses the same batch)");
  FW_INPUT_CHECK(!(rl.exact() && !model.invariant_forward()),
                 "rl.serve_dtype = fp32 (exact) needs model.forward_kernels = invariant so trainer and replicas ",
                 "compute the same bits (or serve bf16: rl.serve_dtype = bf16)");
  FW_INPUT_CHECK(tc.init_from.empty(),
                 "train.init_from is for `flywheel train`; `flywheel run` starts from its SFT warm-up");
  check_rollout_room(*this);
  // The trainer ranks' checks (as `flywheel train` makes them), on the ranks before the replicas.
  TrainSpec::validate();
  mesh.check_world(world_size);  // the whole job, replicas included: its message counts every rank
  TextCodec::open(data)->check_model_vocabulary(model.vocab_size);
}

}  // namespace flywheel
