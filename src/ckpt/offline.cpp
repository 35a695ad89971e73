#include "ckpt/offline.h"

#include <algorithm>
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/h5_util.h"
#include "ckpt/shard_file.h"
#include "core/error.h"

namespace flywheel {
namespace fs = std::filesystem;

namespace {

std::string state_path(const std::string& dir) { return (fs::path(dir) / "state.h5").string(); }

// The shard's own header must say it is shard `shard` of `world` at `step`: catches a shard file
// copied in from another step or job whose checksum was (wrongly) recorded along with it.
std::string shard_header_problem(const std::string& path, int shard, size_t world, int64_t step) {
  H5Handle file = h5_open_file_readonly(path);
  const int64_t version = h5_read_attr_int64(file.get(), "format_version");
  const int64_t rank = h5_read_attr_int64(file.get(), "rank");
  const int64_t world_size = h5_read_attr_int64(file.get(), "world_size");
  const int64_t shard_step = h5_read_attr_int64(file.get(), "step");
  if (version < 1 || version > kCheckpointFormatVersion)
    return detail::concat(path, ": format_version ", version, " is not supported (this build reads 1 to ",
                          kCheckpointFormatVersion, ")");
  if (rank != shard || world_size != static_cast<int64_t>(world) || shard_step != step)
    return detail::concat(path, ": header says rank ", rank, " of ", world_size, " at step ", shard_step,
                          ", expected rank ", shard, " of ", world, " at step ", step);
  return {};
}

void check_shard(ShardCheck& s, size_t world, int64_t step, const std::function<void(uint64_t)>& on_bytes) {
  std::error_code ec;
  if (!fs::exists(s.path, ec)) {
    s.problem = s.path + " is missing";
    if (on_bytes) on_bytes(s.expected.bytes);  // progress counts it as done
    return;
  }
  const FileDigest actual = digest_file_with_progress(s.path, on_bytes);
  if (actual.bytes < s.expected.bytes && on_bytes) on_bytes(s.expected.bytes - actual.bytes);
  if (actual.bytes != s.expected.bytes) {
    s.problem = detail::concat(s.path, " has ", actual.bytes, " bytes but state.h5 records ", s.expected.bytes,
                               actual.bytes < s.expected.bytes ? " (truncated)" : " (overwritten or appended to)");
  } else if (actual.xxh3_64 != s.expected.xxh3_64) {
    s.problem = detail::concat(s.path, " fails its checksum: XXH3-64 ", hex64(actual.xxh3_64), ", state.h5 records ",
                               hex64(s.expected.xxh3_64), " (corrupt)");
  } else {
    s.problem = shard_header_problem(s.path, s.shard, world, step);
    if (s.problem.empty()) s.pieces = read_shard_index(s.path, s.shard);
  }
}

}  // namespace

bool StepCheck::ok() const {
  if (!record || !problems.empty()) return false;
  return std::all_of(shards.begin(), shards.end(), [](const ShardCheck& s) { return s.problem.empty(); });
}

std::vector<std::string> StepCheck::all_problems() const {
  std::vector<std::string> all = problems;
  for (const ShardCheck& s : shards)
    if (!s.problem.empty()) all.push_back(s.problem);
  return all;
}

uint64_t step_check_bytes(const std::string& run_dir, int64_t step) {
  uint64_t total = 0;
  try {
    for (const FileDigest& d : read_state_file(state_path(step_dir_path(run_dir, step))).shards) total += d.bytes;
  } catch (const std::exception&) {
    // check_step reports the unreadable state.h5; progress just has nothing to count.
  }
  return total;
}

StepCheck check_step(const std::string& run_dir, int64_t step, const std::function<void(uint64_t)>& on_bytes) {
  h5_silence_error_printing();
  StepCheck check;
  check.step = step;
  check.dir = step_dir_path(run_dir, step);
  try {
    check.record = read_state_file(state_path(check.dir));
    if (check.record->state.step != step)
      check.problems.push_back(detail::concat(state_path(check.dir), " records step ", check.record->state.step));
  } catch (const std::exception& e) {
    check.problems.push_back(e.what());
    return check;
  }
  const size_t world = check.record->shards.size();
  std::vector<ShardPiece> pieces;
  for (size_t r = 0; r < world; ++r) {
    ShardCheck& s = check.shards.emplace_back();
    s.shard = static_cast<int>(r);
    s.path = (fs::path(check.dir) / shard_file_name(s.shard)).string();
    s.expected = check.record->shards[r];
    try {
      check_shard(s, world, step, on_bytes);
    } catch (const std::exception& e) {
      s.problem = e.what();
    }
    pieces.insert(pieces.end(), s.pieces.begin(), s.pieces.end());
  }
  check.index = index_pieces(std::move(pieces));
  // Coverage only means something once every shard's list is in.
  if (check.ok())
    for (const std::string& p : coverage_problems(check.index)) check.problems.push_back(check.dir + ": " + p);
  const std::string model = (fs::path(check.dir) / "model.h5").string();
  std::error_code ec;
  if (!fs::exists(model, ec)) check.view_problem = model + " is missing (the shards are still loadable)";
  return check;
}

StepReader::StepReader(StepCheck checked) : check_(std::move(checked)) {
  if (check_.ok()) return;
  std::string message = detail::concat("checkpoint step ", check_.step, " (", check_.dir, ") fails verification:");
  for (const std::string& p : check_.all_problems()) message += "\n  " + p;
  FW_INPUT_THROW(message);
}

std::vector<std::string> StepReader::names(const std::string& group) const {
  std::vector<std::string> out;
  for (const auto& [key, list] : check_.index)
    if (key.first == group) out.push_back(key.second);
  return out;  // PieceIndex is an ordered map: already sorted
}

bool StepReader::has(const std::string& group, const std::string& name) const {
  return check_.index.count({group, name}) > 0;
}

const std::vector<ShardPiece>& StepReader::pieces(const std::string& group, const std::string& name) const {
  const auto found = check_.index.find({group, name});
  FW_CHECK(found != check_.index.end(), "/", group, "/", name, " is not in checkpoint ", check_.dir);
  return found->second;
}

const std::vector<int64_t>& StepReader::global_shape(const std::string& group, const std::string& name) const {
  return pieces(group, name).front().global_shape;
}

hid_t StepReader::shard_file(int shard) {
  auto found = open_.find(shard);
  if (found == open_.end())
    found = open_.emplace(shard, h5_open_file_readonly(check_.shards.at(shard).path)).first;
  return found->second.get();
}

void StepReader::read_rows(const std::string& group, const std::string& name, int64_t row_begin, int64_t row_end,
                           float* dst) {
  const std::vector<ShardPiece>& list = pieces(group, name);
  const std::vector<int64_t>& shape = list.front().global_shape;
  FW_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= shape[0], "/", group, "/", name, ": rows [",
           row_begin, ", ", row_end, ") are not inside its ", shape[0], " rows");
  const int64_t row_size = row_elements(shape);
  for (const ShardPiece& p : list) {
    const int64_t begin = std::max(p.row_begin, row_begin), end = std::min(p.row_end, row_end);
    if (begin >= end) continue;
    try {
      read_piece_rows(shard_file(p.shard), p, begin, end - begin, dst + (begin - row_begin) * row_size);
    } catch (const std::exception& e) {
      FW_THROW("reading /", group, "/", name, " from ", check_.shards.at(p.shard).path, ": ", e.what());
    }
  }
}

std::vector<float> StepReader::read(const std::string& group, const std::string& name) {
  const std::vector<int64_t>& shape = global_shape(group, name);
  std::vector<float> data(static_cast<size_t>(shape[0] * row_elements(shape)));
  read_rows(group, name, 0, shape[0], data.data());
  return data;
}

}  // namespace flywheel
