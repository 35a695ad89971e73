#include "train/train_spec.h"

#include "core/error.h"
#include "parallel/mesh_rules.h"

namespace flywheel {

void TrainSpec::validate() const {
  model.validate();
  train.validate();
  mesh.validate();
  FW_INPUT_CHECK(train.seq_len <= model.max_seq_len, "train.seq_len = ", train.seq_len,
                 " exceeds model.max_seq_len = ", model.max_seq_len, ": raise max_seq_len or shorten the sequences");
  check_mesh_fits(model, train.batch(), mesh);
}

}  // namespace flywheel
