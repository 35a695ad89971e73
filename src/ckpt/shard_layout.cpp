#include "ckpt/shard_layout.h"

#include <algorithm>

#include "ckpt/tensor_slice.h"
#include "core/error.h"

namespace flywheel {

nlohmann::json pieces_to_json(const std::vector<ShardPiece>& pieces) {
  nlohmann::json list = nlohmann::json::array();
  for (const ShardPiece& p : pieces)
    list.push_back({{"shard", p.shard},
                    {"group", p.group},
                    {"name", p.name},
                    {"global_shape", p.global_shape},
                    {"row_begin", p.row_begin},
                    {"row_end", p.row_end}});
  return list;
}

std::vector<ShardPiece> pieces_from_json(const nlohmann::json& json) {
  std::vector<ShardPiece> pieces;
  for (const nlohmann::json& item : json) {
    ShardPiece p;
    p.shard = item.at("shard").get<int>();
    p.group = item.at("group").get<std::string>();
    p.name = item.at("name").get<std::string>();
    p.global_shape = item.at("global_shape").get<std::vector<int64_t>>();
    p.row_begin = item.at("row_begin").get<int64_t>();
    p.row_end = item.at("row_end").get<int64_t>();
    pieces.push_back(std::move(p));
  }
  return pieces;
}

PieceIndex index_pieces(std::vector<ShardPiece> pieces) {
  PieceIndex index;
  for (ShardPiece& p : pieces) index[{p.group, p.name}].push_back(std::move(p));
  for (auto& [key, list] : index)
    std::sort(list.begin(), list.end(), [](const ShardPiece& a, const ShardPiece& b) {
      return a.row_begin != b.row_begin ? a.row_begin < b.row_begin : a.shard < b.shard;
    });
  return index;
}

std::vector<std::string> coverage_problems(const PieceIndex& index) {
  std::vector<std::string> problems;
  for (const auto& [key, list] : index) {
    const auto& [group, name] = key;
    const std::string what = "/" + group + "/" + name;
    const ShardPiece& first = list.front();
    int64_t covered = 0;  // rows [0, covered) are held exactly once so far
    int last_shard = -1;
    for (const ShardPiece& p : list) {
      if (p.global_shape != first.global_shape) {
        problems.push_back(detail::concat(what, ": rank ", first.shard, " says global shape ",
                                          shape_text(first.global_shape), " but rank ", p.shard, " says ",
                                          shape_text(p.global_shape)));
        break;
      }
      if (p.row_begin > covered)
        problems.push_back(detail::concat(what, ": rows [", covered, ", ", p.row_begin, ") are held by no rank"));
      else if (p.row_begin < covered)
        problems.push_back(detail::concat(what, ": rows [", p.row_begin, ", ", std::min(covered, p.row_end),
                                          ") are held by ranks ", last_shard, " and ", p.shard,
                                          "; each row must be saved by exactly one rank"));
      covered = std::max(covered, p.row_end);
      last_shard = p.shard;
    }
    if (covered < first.global_shape[0])
      problems.push_back(
          detail::concat(what, ": rows [", covered, ", ", first.global_shape[0], ") are held by no rank"));
  }
  return problems;
}

}  // namespace flywheel
