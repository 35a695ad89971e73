#include "train/resume_guard.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/collective.h"
#include "core/error.h"
#include "core/log.h"
#include "train/shape_change.h"

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

// Throws listing the changes a resume may not make, if any.
void refuse_identity_changes(const std::vector<ShapeChange>& changes, const std::string& origin, const fs::path& dir) {
  std::string refused;
  for (const ShapeChange& c : changes)
    if (!resumable_key(c.key)) refused += "\n  " + change_text(c);
  if (refused.empty()) return;
  FW_THROW("cannot resume run directory ", dir.string(), ": the shape differs from the one the run was trained with (",
           origin, ") in keys a resume must keep:", refused, "\nA resume may change only: ", resumable_keys_text(),
           ". To continue this run, resubmit it with its recorded shape (", (dir / "shape.ini").string(),
           "); to train this shape, start a new run (another train.run_name; train.init_from=", dir.string(),
           " starts it from this run's weights).");
}

void check_shape_file(const TrainSpec& spec, const fs::path& dir) {
  const fs::path file = dir / "shape.ini";
  std::ifstream in(file, std::ios::binary);
  if (!in) return;  // a run directory from before shape.ini: the checkpoint's shape text still decides
  std::ostringstream text;
  text << in.rdbuf();
  refuse_identity_changes(shape_changes(text.str(), spec.text, file.string()), file.string(), dir);
}

int64_t recorded_steps(const ShapeChange& change) {
  if (!change.before) return TrainConfig{}.steps;  // not set: the default applied
  try {
    return std::stoll(*change.before);
  } catch (const std::exception&) {
    FW_THROW("the recorded train.steps = '", *change.before, "' is not an integer");
  }
}

}  // namespace

void check_before_resume(const TrainSpec& spec, const fs::path& dir, Comm& comm) {
  run_on_root(comm, "checking run directory " + dir.string() + " before resuming", [&] {
    const std::vector<int64_t> steps = committed_steps(dir.string());
    if (steps.empty()) return std::string();
    check_latest_is_newest(dir, steps);
    check_shape_file(spec, dir);
    return std::string();
  });
}

void check_resumed_shape(const TrainSpec& spec, const fs::path& dir, const ResumedCheckpoint& resumed, Comm& comm) {
  const std::string origin = resumed.step_dir + "/state.h5";
  const std::vector<ShapeChange> changes = shape_changes(resumed.shape_text, spec.text, origin);
  refuse_identity_changes(changes, origin, dir);  // the same verdict on every rank: same inputs
  if (comm.rank() != 0) return;
  for (const ShapeChange& c : changes) {
    if (c.key == "train.steps")
      log_warn("resuming with ", schedule_change_text(spec.train, recorded_steps(c), resumed.step));
    else
      log_warn("resuming with ", change_text(c), " (a resume may change it; shape.ini records the new shape)");
  }
}

}  // namespace flywheel
