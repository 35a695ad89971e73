#include "parallel/mesh_rules.h"

#include "core/error.h"

namespace flywheel {

void check_mesh_fits(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh) {
  FW_INPUT_CHECK(batch.micro_batch % mesh.fsdp == 0, "train.micro_batch = ", batch.micro_batch,
                 " is not divisible by mesh.fsdp = ", mesh.fsdp,
                 ": every data-parallel rank takes the same number of rows");
  FW_INPUT_CHECK(model.n_layers % mesh.pp == 0, "model.n_layers = ", model.n_layers, " is not divisible by mesh.pp = ",
                 mesh.pp, ": every pipeline stage holds the same number of layers");
  FW_INPUT_CHECK(!(model.tie_embeddings && mesh.pp > 1), "model.tie_embeddings = true with mesh.pp = ", mesh.pp,
                 ": a tied embedding would live on the first and the last stage; untie it or use mesh.pp = 1");
  FW_INPUT_CHECK(batch.seq_len % (2 * mesh.cp) == 0 || mesh.cp == 1, "train.seq_len = ", batch.seq_len,
                 " is not divisible by 2 x mesh.cp = ", 2 * mesh.cp,
                 ": the load-balanced causal split cuts 2 cp chunks");
  FW_INPUT_CHECK(!model.is_moe() || model.moe_experts % mesh.ep == 0, "model.moe_experts = ", model.moe_experts,
                 " is not divisible by mesh.ep = ", mesh.ep,
                 ": each expert-parallel rank owns the same number of experts");
}

}  // namespace flywheel
