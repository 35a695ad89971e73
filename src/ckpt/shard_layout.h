// Which shard holds which rows of which tensor array: the metadata the ranks exchange when saving
// (to check coverage and to write model.h5's virtual datasets) and when loading (to find the
// shards overlapping a requested row range).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace flywheel {

// Rows [row_begin, row_end) of array `group` ("weight", "adam_m", "adam_v") of tensor `name`,
// stored in shard file number `shard` as dataset /<group>/<name>.
struct ShardPiece {
  int shard = 0;
  std::string group;
  std::string name;
  std::vector<int64_t> global_shape;
  int64_t row_begin = 0, row_end = 0;
};

nlohmann::json pieces_to_json(const std::vector<ShardPiece>& pieces);
std::vector<ShardPiece> pieces_from_json(const nlohmann::json& json);

// Pieces grouped by (group, name), each list sorted by row_begin.
using PieceIndex = std::map<std::pair<std::string, std::string>, std::vector<ShardPiece>>;
PieceIndex index_pieces(std::vector<ShardPiece> pieces);

// Problems with a save's pieces: a tensor whose ranks disagree on its global shape, or whose rows
// are not covered exactly once (a gap or an overlap, named with the rows and shards). Empty: fine.
std::vector<std::string> coverage_problems(const PieceIndex& index);

}  // namespace flywheel
