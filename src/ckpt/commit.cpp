// save_checkpoint: the commit protocol (docs/checkpoint-format.md, "Commit protocol").
//
//   1. all ranks exchange what they hold and check it covers every tensor row exactly once
//   2. rank 0 removes stale *.partial dirs and creates step-N.partial/
//   3. every rank writes shard-<rank>.h5 (hashing the tensor bytes as they are written), fsyncs it
//      and the directory
//   4. agreement that all shards are durable (the protocol's barrier); checksums go to rank 0
//   5. rank 0 writes model.h5 and state.h5, fsyncs them and the directory, renames
//      step-N.partial -> step-N, fsyncs run_dir, replaces `latest`, applies retention
// A crash before the rename in 5 leaves only a *.partial directory, which no load ever reads.
#include <xxhash.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/checksum.h"
#include "ckpt/collective.h"
#include "ckpt/durable_fs.h"
#include "ckpt/shard_file.h"
#include "ckpt/state_file.h"
#include "ckpt/virtual_model.h"
#include "core/error.h"
#include "core/fault_point.h"
#include "core/log.h"

namespace flywheel {
namespace {

uint64_t state_fingerprint(const CheckpointState& state) {
  const std::string text = nlohmann::json{
      {"step", state.step},
      {"seed", state.seed},
      {"shape", state.shape_text},
      {"mesh", state.mesh},
      {"extra", state.extra}}.dump();
  return XXH3_64bits(text.data(), text.size());
}

// Problems with this rank's slices alone.
std::vector<std::string> local_slice_problems(const std::vector<TensorSlice>& slices) {
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const TensorSlice& s : slices) {
    if (std::string p = slice_problem(s); !p.empty()) problems.push_back(std::move(p));
    if (slice_rows(s) > 0 && !seen.insert(s.name).second)
      problems.push_back("tensor " + s.name + " is passed twice; a rank saves one row range per tensor");
  }
  return problems;
}

// Step 1. Every rank gets every rank's report, so all reach the same verdict without more messages.
PieceIndex agree_on_layout(Comm& comm, const CheckpointState& state, const std::vector<TensorSlice>& slices) {
  const nlohmann::json mine = {{"state", hex64(state_fingerprint(state))},
                               {"problems", local_slice_problems(slices)},
                               {"pieces", pieces_to_json(shard_pieces(slices, comm.rank()))}};
  const std::vector<std::string> reports = gather_strings(comm, mine.dump());
  std::vector<ShardPiece> pieces;
  std::vector<std::string> problems;
  std::string state0;
  for (int r = 0; r < comm.size(); ++r) {
    const nlohmann::json report = nlohmann::json::parse(reports[r]);
    if (r == 0) state0 = report.at("state").get<std::string>();
    if (report.at("state").get<std::string>() != state0)
      problems.push_back("rank " + std::to_string(r) + " passed a different CheckpointState than rank 0");
    for (const auto& p : report.at("problems"))
      problems.push_back("rank " + std::to_string(r) + ": " + p.get<std::string>());
    std::vector<ShardPiece> rank_pieces = pieces_from_json(report.at("pieces"));
    pieces.insert(pieces.end(), rank_pieces.begin(), rank_pieces.end());
  }
  PieceIndex index = index_pieces(std::move(pieces));
  if (problems.empty()) problems = coverage_problems(index);
  if (problems.empty() && index.empty()) problems.push_back("no rank passed any tensor rows");
  if (!problems.empty()) {
    std::string message = "cannot save checkpoint step " + std::to_string(state.step) + ":";
    for (const std::string& p : problems) message += "\n  " + p;
    FW_THROW(message);
  }
  return index;
}

// Step 3, on every rank.
FileDigest write_own_shard(Comm& comm, const std::string& partial, const CheckpointState& state,
                           const std::vector<TensorSlice>& slices, std::string& error) {
  FileDigest digest;
  try {
    const std::string path = (std::filesystem::path(partial) / shard_file_name(comm.rank())).string();
    digest = write_shard_file(path, {comm.rank(), comm.size(), state.step}, slices);  // written, hashed, fsync'd
    fsync_directory(partial);  // makes this rank's directory entry durable too
    fault_point("checkpoint.shard_written", comm.rank(), state.step);
  } catch (const std::exception& e) {
    error = e.what();
  }
  return digest;
}

std::vector<FileDigest> gather_digests(Comm& comm, const FileDigest& mine) {
  const nlohmann::json json = {{"xxh3_64", hex64(mine.xxh3_64)}, {"bytes", mine.bytes}};
  std::vector<FileDigest> all;
  for (const std::string& text : gather_strings(comm, json.dump())) {
    const nlohmann::json j = nlohmann::json::parse(text);
    all.push_back({std::stoull(j.at("xxh3_64").get<std::string>(), nullptr, 16), j.at("bytes").get<uint64_t>()});
  }
  return all;
}

// Wall-clock seconds since construction / the last lap: the save logs where its time went.
class Stopwatch {
 public:
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }
  double total() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

std::string seconds_text(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f s", s);
  return text;
}

// Step 5, on rank 0. `phases` (seconds of the steps before, e.g. "shards 1.20 s") starts the timing
// breakdown in the log line.
void commit_on_root(const std::string& run_dir, const std::string& partial, const CheckpointState& state,
                    const PieceIndex& index, const std::vector<FileDigest>& digests, int keep_last,
                    Stopwatch& watch, const std::string& phases) {
  namespace fs = std::filesystem;
  const std::string model = (fs::path(partial) / "model.h5").string();
  const std::string state_path = (fs::path(partial) / "state.h5").string();
  watch.lap();
  write_virtual_model(model, index);
  fsync_file(model);
  const double model_s = watch.lap();
  write_state_file(state_path, {state, kCheckpointFormatVersion, digests});
  fsync_file(state_path);
  fsync_directory(partial);
  const double state_s = watch.lap();
  publish_step_dir(run_dir, state.step);  // the commit point
  write_latest(run_dir, state.step);
  const double publish_s = watch.lap();
  const std::vector<int64_t> deleted = apply_retention(run_dir, keep_last, state.step);
  const double retention_s = watch.lap();
  uint64_t bytes = 0;
  for (const FileDigest& d : digests) bytes += d.bytes;
  std::string deleted_text;
  for (int64_t s : deleted) deleted_text += (deleted_text.empty() ? "; deleted step " : ", ") + std::to_string(s);
  char size_text[32];
  if (bytes >= (uint64_t{1} << 30))
    std::snprintf(size_text, sizeof(size_text), "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  else
    std::snprintf(size_text, sizeof(size_text), "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  log_info("checkpoint: saved step ", state.step, " to ", step_dir_path(run_dir, state.step), " (", digests.size(),
           " shards, ", size_text, deleted_text, ") in ", seconds_text(watch.total()), ": ", phases, ", model.h5 ",
           seconds_text(model_s), ", state.h5 ", seconds_text(state_s), ", rename+latest ", seconds_text(publish_s),
           ", retention ", seconds_text(retention_s));
}

// Step 1 for one process writing every shard: the same checks agree_on_layout makes across ranks.
PieceIndex check_offline_layout(const CheckpointState& state, const std::vector<std::vector<TensorSlice>>& ranks) {
  std::vector<ShardPiece> pieces;
  std::vector<std::string> problems;
  for (size_t r = 0; r < ranks.size(); ++r) {
    for (const std::string& p : local_slice_problems(ranks[r]))
      problems.push_back("shard " + std::to_string(r) + ": " + p);
    std::vector<ShardPiece> rank_pieces = shard_pieces(ranks[r], static_cast<int>(r));
    pieces.insert(pieces.end(), rank_pieces.begin(), rank_pieces.end());
  }
  PieceIndex index = index_pieces(std::move(pieces));
  if (problems.empty()) problems = coverage_problems(index);
  if (problems.empty() && index.empty()) problems.push_back("no shard holds any tensor rows");
  if (!problems.empty()) {
    std::string message = "cannot save checkpoint step " + std::to_string(state.step) + ":";
    for (const std::string& p : problems) message += "\n  " + p;
    FW_THROW(message);
  }
  return index;
}

}  // namespace

void save_checkpoint_offline(const std::string& run_dir, const CheckpointState& state,
                             const std::vector<std::vector<TensorSlice>>& per_rank_slices, int keep_last,
                             const std::function<void(int shard, uint64_t bytes)>& on_shard_written) {
  h5_silence_error_printing();
  FW_CHECK(!per_rank_slices.empty(), "save_checkpoint_offline: no ranks to write");
  const PieceIndex index = check_offline_layout(state, per_rank_slices);
  const std::string partial = partial_dir_path(run_dir, state.step);
  std::filesystem::create_directories(run_dir);
  remove_stale_step_dirs(run_dir);
  std::filesystem::create_directory(partial);
  fsync_directory(run_dir);

  Stopwatch watch;
  const int world = static_cast<int>(per_rank_slices.size());
  std::vector<FileDigest> digests;
  for (int r = 0; r < world; ++r) {
    const std::string path = (std::filesystem::path(partial) / shard_file_name(r)).string();
    digests.push_back(write_shard_file(path, {r, world, state.step}, per_rank_slices[r]));
    if (on_shard_written) on_shard_written(r, digests.back().bytes);
  }
  fsync_directory(partial);
  const std::string phases = "shards written, hashed and fsync'd " + seconds_text(watch.lap());
  commit_on_root(run_dir, partial, state, index, digests, keep_last, watch, phases);
}

void save_checkpoint(Comm& comm, const std::string& run_dir, const CheckpointState& state,
                     const std::vector<TensorSlice>& slices, int keep_last) {
  h5_silence_error_printing();
  Stopwatch watch;
  const std::string partial = partial_dir_path(run_dir, state.step);
  const PieceIndex index = agree_on_layout(comm, state, slices);

  run_on_root(comm, "preparing checkpoint directory " + partial, [&] {
    std::filesystem::create_directories(run_dir);
    remove_stale_step_dirs(run_dir);
    std::filesystem::create_directory(partial);
    fsync_directory(run_dir);
    return std::string();
  });

  const double prepare_s = watch.lap();

  std::string error;
  const FileDigest digest = write_own_shard(comm, partial, state, slices, error);
  const double shard_s = watch.lap();
  // No rank passes this point before every shard is closed and fsync'd (or all throw).
  throw_if_any_rank_failed(comm, error, "writing checkpoint shards of step " + std::to_string(state.step));
  const std::vector<FileDigest> digests = gather_digests(comm, digest);
  const double barrier_s = watch.lap();

  run_on_root(comm, "committing checkpoint step " + std::to_string(state.step), [&] {
    const std::string phases = "layout+prepare " + seconds_text(prepare_s) + ", rank 0's shard written, hashed and " +
                               "fsync'd " + seconds_text(shard_s) + ", barrier " + seconds_text(barrier_s);
    commit_on_root(run_dir, partial, state, index, digests, keep_last, watch, phases);
    return std::string();
  });
}

}  // namespace flywheel
