#include "ckpt/step_verify.h"

#include <filesystem>

#include "ckpt/checkpoint_dir.h"
#include "ckpt/checksum.h"
#include "ckpt/collective.h"
#include "ckpt/shard_file.h"
#include "core/error.h"
#include "core/log.h"

namespace flywheel {
namespace {

// Rank 0 reads state.h5 and sends it to all: "1<json>" or "0<error>".
std::optional<StateRecord> read_state_everywhere(Comm& comm, const std::string& path, std::string& reason) {
  std::string message;
  if (comm.rank() == 0) {
    try {
      message = "1" + state_record_to_json(read_state_file(path)).dump();
    } catch (const std::exception& e) {
      message = std::string("0") + e.what();
      log_warn("checkpoint: ", path, " is unusable: ", e.what());
    }
  }
  broadcast_string(comm, message, 0);
  if (message.empty() || message[0] != '1') {
    reason = message.empty() ? "no reply from rank 0" : message.substr(1);
    return std::nullopt;
  }
  return state_record_from_json(nlohmann::json::parse(message.substr(1)));
}

// Empty when the file matches; otherwise what is wrong with it.
std::string shard_file_problem(const std::string& path, const FileDigest& expected) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return path + " is missing";
  const FileDigest actual = digest_file(path);
  if (actual.bytes != expected.bytes)
    return detail::concat(path, " has ", actual.bytes, " bytes but state.h5 records ", expected.bytes,
                          " (truncated or overwritten)");
  if (actual.xxh3_64 != expected.xxh3_64)
    return detail::concat(path, " fails its checksum: XXH3-64 ", hex64(actual.xxh3_64), ", state.h5 records ",
                          hex64(expected.xxh3_64), " (corrupt)");
  return {};
}

// This rank's share of the shards: {"problems": [...], "pieces": [...]}.
nlohmann::json check_my_shards(Comm& comm, const std::string& dir, const StateRecord& record) {
  nlohmann::json problems = nlohmann::json::array();
  std::vector<ShardPiece> pieces;
  for (size_t shard = comm.rank(); shard < record.shards.size(); shard += comm.size()) {
    const std::string path = (std::filesystem::path(dir) / shard_file_name(static_cast<int>(shard))).string();
    std::string problem;
    try {
      problem = shard_file_problem(path, record.shards[shard]);
      if (problem.empty()) {
        std::vector<ShardPiece> found = read_shard_index(path, static_cast<int>(shard));
        pieces.insert(pieces.end(), found.begin(), found.end());
      }
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      log_warn("checkpoint: ", problem);
      problems.push_back(problem);
    }
  }
  return {{"problems", problems}, {"pieces", pieces_to_json(pieces)}};
}

}  // namespace

std::optional<VerifiedStep> verify_step(Comm& comm, const std::string& run_dir, int64_t step, std::string& reason) {
  VerifiedStep verified;
  verified.step = step;
  verified.dir = step_dir_path(run_dir, step);
  std::optional<StateRecord> record =
      read_state_everywhere(comm, (std::filesystem::path(verified.dir) / "state.h5").string(), reason);
  if (!record) return std::nullopt;
  if (record->state.step != step) {
    reason = detail::concat(verified.dir, "/state.h5 records step ", record->state.step);
    return std::nullopt;
  }
  verified.record = std::move(*record);

  const std::vector<std::string> reports =
      gather_strings(comm, check_my_shards(comm, verified.dir, verified.record).dump());
  std::vector<std::string> problems;
  std::vector<ShardPiece> pieces;
  for (const std::string& text : reports) {
    const nlohmann::json report = nlohmann::json::parse(text);
    for (const auto& p : report.at("problems")) problems.push_back(p.get<std::string>());
    std::vector<ShardPiece> found = pieces_from_json(report.at("pieces"));
    pieces.insert(pieces.end(), found.begin(), found.end());
  }
  verified.index = index_pieces(std::move(pieces));
  // Checksums passed, so this only fires for a step whose writer was broken or foreign.
  if (problems.empty())
    for (std::string& p : coverage_problems(verified.index)) problems.push_back(verified.dir + ": " + p);
  if (!problems.empty()) {
    reason = problems.front();
    if (problems.size() > 1) reason += detail::concat(" (and ", problems.size() - 1, " more problem(s))");
    return std::nullopt;
  }
  return verified;
}

}  // namespace flywheel
