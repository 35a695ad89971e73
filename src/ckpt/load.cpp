// load_checkpoint: pick a step, verify it (falling back to older committed steps), then copy into
// each requested slice the rows it overlaps from whichever shards hold them. Because the reader
// works in global row ranges, a checkpoint saved on one row split loads onto any other.
#include <algorithm>
#include <filesystem>
#include <map>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/collective.h"
#include "ckpt/h5_util.h"
#include "ckpt/shard_file.h"
#include "ckpt/step_verify.h"
#include "core/error.h"
#include "core/log.h"

namespace flywheel {
namespace {

std::string steps_text(const std::vector<int64_t>& steps) {
  std::string text;
  for (int64_t s : steps) text += (text.empty() ? "" : ", ") + std::to_string(s);
  return text.empty() ? "none" : text;
}

// On rank 0: the steps to try, best first. Also removes what interrupted saves left behind.
std::vector<int64_t> candidate_steps(const std::string& run_dir, std::optional<int64_t> requested) {
  remove_stale_step_dirs(run_dir);
  const std::vector<int64_t> steps = committed_steps(run_dir);
  FW_CHECK(!steps.empty(), "no committed checkpoint in ", run_dir, " (no step-NNNNNNNN directory)");
  int64_t first = steps.back();
  if (requested) {
    FW_CHECK(std::binary_search(steps.begin(), steps.end(), *requested), "step ", *requested,
             " is not a committed checkpoint in ", run_dir, " (committed steps: ", steps_text(steps), ")");
    first = *requested;
  } else if (const std::optional<int64_t> latest = read_latest_step(run_dir)) {
    if (std::binary_search(steps.begin(), steps.end(), *latest))
      first = *latest;
    else
      log_warn("checkpoint: ", run_dir, "/latest names step ", *latest, ", which is not committed; using step ",
               first);
  }
  std::vector<int64_t> candidates;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it)
    if (*it <= first) candidates.push_back(*it);
  return candidates;
}

// One copy: rows [first_row, first_row + rows) of `piece` into dst.
struct RowCopy {
  const ShardPiece* piece;
  int64_t first_row, rows;
  float* dst;
};

// Plans every copy for this rank's slices; returns what makes the request unsatisfiable (or "").
std::string plan_copies(const VerifiedStep& step, const std::vector<TensorSlice>& slices,
                        std::vector<RowCopy>& copies) {
  for (const TensorSlice& s : slices) {
    if (std::string problem = slice_problem(s); !problem.empty()) return problem;
    for (SliceArray array : kSliceArrays) {
      const Tensor& rows = slice_array(s, array);
      if (!rows.defined() || slice_rows(s) == 0) continue;
      float* dst = rows.data<float>();
      const std::string what = detail::concat("/", slice_array_group(array), "/", s.name);
      const auto found = step.index.find({slice_array_group(array), s.name});
      if (found == step.index.end()) return detail::concat(what, " is not in checkpoint ", step.dir);
      const std::vector<ShardPiece>& pieces = found->second;
      if (pieces.front().global_shape != s.global_shape)
        return detail::concat(what, ": checkpoint ", step.dir, " has global shape ",
                              shape_text(pieces.front().global_shape), ", the requested slice has ",
                              shape_text(s.global_shape));
      const int64_t row_size = row_elements(s.global_shape);
      int64_t covered = 0;
      for (const ShardPiece& p : pieces) {
        const int64_t begin = std::max(p.row_begin, s.row_begin), end = std::min(p.row_end, s.row_end);
        if (begin >= end) continue;
        copies.push_back({&p, begin, end - begin, dst + (begin - s.row_begin) * row_size});
        covered += end - begin;
      }
      if (covered != slice_rows(s))
        return detail::concat(what, ": checkpoint ", step.dir, " holds ", covered, " of the requested rows [",
                              s.row_begin, ", ", s.row_end, ")");
    }
  }
  return {};
}

// Performs the copies, opening each shard file once.
std::string run_copies(const std::string& dir, const std::vector<RowCopy>& copies) {
  std::map<int, std::vector<const RowCopy*>> by_shard;
  for (const RowCopy& c : copies) by_shard[c.piece->shard].push_back(&c);
  for (const auto& [shard, list] : by_shard) {
    const std::string path = (std::filesystem::path(dir) / shard_file_name(shard)).string();
    try {
      H5Handle file = h5_open_file_readonly(path);
      for (const RowCopy* c : list) read_piece_rows(file.get(), *c->piece, c->first_row, c->rows, c->dst);
    } catch (const std::exception& e) {
      return detail::concat("reading ", path, ": ", e.what());
    }
  }
  return {};
}

void fill_slices(Comm& comm, const VerifiedStep& step, const std::vector<TensorSlice>& slices) {
  std::vector<RowCopy> copies;
  throw_if_any_rank_failed(comm, plan_copies(step, slices, copies),
                           "matching the requested tensors to checkpoint step " + std::to_string(step.step),
                           /*input=*/true);
  throw_if_any_rank_failed(comm, run_copies(step.dir, copies),
                           "reading checkpoint step " + std::to_string(step.step));
}

}  // namespace

LoadResult load_checkpoint(Comm& comm, const std::string& run_dir, std::optional<int64_t> step,
                           std::vector<TensorSlice>& slices) {
  h5_silence_error_printing();
  const std::string reply = run_on_root(comm, "choosing a checkpoint in " + run_dir,
                                        [&] { return nlohmann::json(candidate_steps(run_dir, step)).dump(); });
  const std::vector<int64_t> candidates = nlohmann::json::parse(reply).get<std::vector<int64_t>>();

  std::vector<std::string> rejected;
  for (size_t i = 0; i < candidates.size(); ++i) {
    std::string reason;
    std::optional<VerifiedStep> verified = verify_step(comm, run_dir, candidates[i], reason);
    if (!verified) {
      rejected.push_back(detail::concat("step ", candidates[i], ": ", reason));
      if (comm.rank() == 0 && i + 1 < candidates.size())
        log_warn("checkpoint: step ", candidates[i], " is not loadable (", reason, "); falling back to step ",
                 candidates[i + 1]);
      continue;
    }
    fill_slices(comm, *verified, slices);
    log_info("checkpoint: loaded step ", verified->step, " from ", verified->dir, " (",
             verified->record.shards.size(), " shards verified)");
    return {verified->record.state, verified->step, verified->dir,
            static_cast<int64_t>(verified->record.shards.size())};
  }
  std::string message = "no loadable checkpoint in " + run_dir + "; every committed step failed verification:";
  for (const std::string& r : rejected) message += "\n  " + r;
  FW_INPUT_THROW(message);
}

}  // namespace flywheel
