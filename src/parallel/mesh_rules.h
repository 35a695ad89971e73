// What a mesh must divide: the rules that decide whether a model and a batch can be laid out on a
// mesh (`flywheel train`, `flywheel run` and `flywheel plan`'s mesh search all apply these).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "parallel/mesh_config.h"

namespace flywheel {

// The batch dimensions of one optimizer step ([train] seq_len, micro_batch, grad_accum).
struct BatchShape {
  int64_t seq_len = 128;    // tokens per row
  int64_t micro_batch = 8;  // rows per micro-batch
  int64_t grad_accum = 1;   // micro-batches per optimizer step
  int64_t global_batch() const { return micro_batch * grad_accum; }
};

// Throws flywheel::Error naming the keys and numbers when `mesh` cannot lay out `model` and `batch`:
// fsdp must divide the micro-batch's rows, pp the layers, 2 x cp the sequence, ep the experts; a tied
// embedding cannot span two pipeline stages. The sections validate themselves separately.
void check_mesh_fits(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh);

}  // namespace flywheel
