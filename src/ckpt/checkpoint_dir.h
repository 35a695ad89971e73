// The run directory's checkpoint layout: step directory names, `latest`, publishing a finished
// step, cleaning up what a crash left, and retention. Only rank 0 calls these (except the pure
// name functions and committed_steps in checkpoint.h).
//
//   step-00000120/           committed (complete: renamed only after every file was durable)
//   step-00000130.partial/   being written, or left by a crash: never loaded, removed by the next save/load
//   step-00000120.replaced/  a committed step being replaced by a re-save of the same step (transient)
//   step-00000100.deleting/  a step being deleted by retention (transient)
//   latest                   "step-00000120\n"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flywheel {

std::string step_dir_name(int64_t step);  // "step-00000120" (at least 8 digits)
std::string step_dir_path(const std::string& run_dir, int64_t step);
std::string partial_dir_path(const std::string& run_dir, int64_t step);
std::string shard_file_name(int rank);  // "shard-00003.h5"
// "step-00000120" -> 120; nullopt for anything else (including *.partial).
std::optional<int64_t> parse_step_dir_name(const std::string& name);

// The step `latest` names, when the file exists and names a step (a warning otherwise).
std::optional<int64_t> read_latest_step(const std::string& run_dir);
void write_latest(const std::string& run_dir, int64_t step);

// Removes *.partial, *.replaced and *.deleting step directories, with a warning for each (after
// waiting for the background deletions apply_retention started).
void remove_stale_step_dirs(const std::string& run_dir);

// Renames step-N.partial to step-N (moving an existing committed step-N aside and deleting it
// afterwards), durably (the run directory is fsync'd).
void publish_step_dir(const std::string& run_dir, int64_t step);

// Deletes the oldest committed steps until keep_last remain (keep_last <= 0: none deleted), never
// `keep_step`. Each is first renamed to *.deleting (durably) so a crash mid-delete cannot leave a
// committed directory with files missing; the files are then removed on a background thread, off the
// training path. Returns the deleted steps (no longer committed when this returns).
std::vector<int64_t> apply_retention(const std::string& run_dir, int keep_last, int64_t keep_step);

// Blocks until the background deletions started by apply_retention are done (the next save or load
// waits for them anyway; benchmarks call it to keep them out of the next measurement).
void wait_for_step_deletions();

}  // namespace flywheel
