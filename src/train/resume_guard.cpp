#include "train/resume_guard.h"

#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/collective.h"
#include "core/error.h"

namespace flywheel {
namespace fs = std::filesystem;
namespace {

std::string steps_text(const std::vector<int64_t>& steps) {
  std::string text;
  for (int64_t s : steps) text += (text.empty() ? "" : ", ") + std::to_string(s);
  return text;
}

// `latest` older than the newest committed step. Resuming from `latest` would save the newer steps'
// numbers again, and each save replaces (deletes) the committed step of its number. We refuse
// rather than pick, because the two ways to get here want opposite things:
//  - a person rewrote `latest` to go back (a rollback), or rewrote it by mistake;
//  - a crash between the rename that commits step N and the write of `latest` (commit.cpp, step 5):
//    step N is complete and is the one to continue from.
// Resuming from either step unasked would lose the newer steps or ignore the rollback; moving the
// newer steps aside unasked would keep them, but would quietly throw away their training time in
// the crash case. A refusal costs one resubmission, and the message gives the command for each
// choice; a requeue loop stops on it (exit 1), which is right, since a person has to choose.
void check_latest_is_newest(const fs::path& dir, const std::vector<int64_t>& steps) {
  const std::optional<int64_t> latest = read_latest_step(dir.string());
  if (!latest || *latest >= steps.back()) return;
  std::vector<int64_t> newer;
  for (int64_t s : steps)
    if (s > *latest) newer.push_back(s);
  FW_THROW("run directory ", dir.string(), ": `latest` names step ", *latest, ", but step(s) ", steps_text(newer),
           " are committed after it; resuming from step ", *latest,
           " would overwrite them, so the run does not start. To continue from the newest step: flywheel-ckpt "
           "rollback ", dir.string(), " --step ", steps.back(), " (rewrites `latest` only). To go back to step ",
           *latest, " on purpose: flywheel-ckpt rollback ", dir.string(), " --step ", *latest, " (moves step(s) ",
           steps_text(newer), " and a copy of metrics.jsonl into ", dir.string(),
           "/rolled-back-<time>/; nothing is deleted)");
}

}  // namespace

void check_before_resume(const TrainSpec& spec, const fs::path& dir, Comm& comm) {
  run_on_root(comm, "checking run directory " + dir.string() + " before resuming", [&] {
    const std::vector<int64_t> steps = committed_steps(dir.string());
    if (steps.empty()) return std::string();
    check_latest_is_newest(dir, steps);
    return std::string();
  });
}

}  // namespace flywheel
