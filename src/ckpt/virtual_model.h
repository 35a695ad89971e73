// model.h5: one HDF5 virtual dataset per tensor array (/weight/<name>, /adam_m/<name>,
// /adam_v/<name>) of the whole global shape, mapping each row range to the shard dataset that holds
// it. Source files are named relative ("shard-00003.h5"), and HDF5 resolves relative names against
// the directory of model.h5, so the step directory can be moved or copied as a whole.
#pragma once

#include <string>

#include "ckpt/shard_layout.h"

namespace flywheel {

// Writes and closes `path` (the caller fsyncs). `index` must pass coverage_problems().
void write_virtual_model(const std::string& path, const PieceIndex& index);

}  // namespace flywheel
