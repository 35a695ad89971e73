// Pipeline parallelism: the 1F1B schedule (Narayanan et al., PipeDream-Flush / Megatron-LM 2021)
// over the micro-batches of one optimizer step.
//
// Stage s of P runs min(P - s - 1, M) warm-up forwards, then alternates one forward and one
// backward, then drains the remaining backwards. Activations go to stage s+1 and their gradients
// come back to stage s-1 by point-to-point messages on the pp communicator (tag = micro-batch,
// non-blocking sends so neighbours never deadlock). At most P - s micro-batches are in flight on
// stage s, so that many activation stashes suffice. The loss lives on the last stage. With P = 1
// the schedule is forward, backward, forward, backward: plain gradient accumulation.
#pragma once

#include <cstdint>
#include <vector>

#include "model/transformer.h"
#include "parallel/mesh.h"

namespace flywheel {

// One micro-batch as this rank sees it: its rows x seq tokens (the first stage reads tokens, the last
// targets and ce_weight).
struct PipelineMicroBatch {
  const int32_t* tokens = nullptr;
  const int32_t* targets = nullptr;
  const float* ce_weight = nullptr;
  int64_t rows = 0, seq = 0;
};

// Runs forward and backward of every micro-batch on this rank's stage; gradients accumulate via the
// model's hooks. Returns the sums over micro-batches of this stage's ce_loss and aux_loss.
MicroBatchResult run_pipeline_step(Transformer& model, Comm& pp, const std::vector<PipelineMicroBatch>& micro,
                                   double aux_scale);

// Forward only (no activations kept beyond one micro-batch, no gradients): the last stage writes
// log p(target) of micro-batch m's tokens into token_logprob[m] ([rows * seq]): of every token, or,
// when the micro-batch has ce_weight, of those with ce_weight != 0 (the others get 0). Other stages
// pass activations on and leave token_logprob alone. The values are bit-identical to the
// token_logprob a forward_backward of the same micro-batch reports for the same positions.
void run_pipeline_logprobs(Transformer& model, Comm& pp, const std::vector<PipelineMicroBatch>& micro,
                           const std::vector<float*>& token_logprob);

}  // namespace flywheel
