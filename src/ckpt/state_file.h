// state.h5: everything a step needs besides tensors, and the shard checksums that define a valid
// step. Root attributes: format_version, step, seed, world_size, shape_text, mesh (JSON text),
// extra (JSON text). Datasets: /shard_xxh3_64 and /shard_bytes (uint64[world_size], index = rank).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/checksum.h"

namespace flywheel {

struct StateRecord {
  CheckpointState state;
  int64_t format_version = kCheckpointFormatVersion;
  std::vector<FileDigest> shards;  // index = rank = shard number; size = world size
};

// Writes and closes `path` (the caller fsyncs).
void write_state_file(const std::string& path, const StateRecord& record);
// Throws naming the file when it is missing, unreadable, or of a newer format version.
StateRecord read_state_file(const std::string& path);

// For sending a record between ranks.
nlohmann::json state_record_to_json(const StateRecord& record);
StateRecord state_record_from_json(const nlohmann::json& json);

}  // namespace flywheel
