// How a run ended, for an operator: <run>/status.json, written by trainer rank 0.
//
//   {"state": "running", "step": 0, "train_steps": 200, "since": "2026-12-01T12:00:00Z"}
//   {"state": "preempted", "step": 120, "train_steps": 200, "exit_code": 75, "signal": "SIGTERM", ...}
//
// States: running (written once the run directory is prepared), finished (exit 0), preempted
// (checkpointed after a signal, exit 75: requeue to resume), checkpoint_failed (exit 74), failed (an
// error ended the run; "detail" holds its message). A "running" file whose run directory lock
// (train/run_lock.h) nobody holds means the job ended without writing its end: killed (SIGKILL, the
// OOM killer, a node failure) or a second signal's immediate stop. `flywheel-ckpt list` reads it.
//
// Best effort: the file is replaced atomically, and failing to write it only warns; it is a record
// of the run, not part of the checkpoint protocol (ckpt/commit.cpp), which never reads it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace flywheel {

struct RunStatus {
  std::string state;        // running | finished | preempted | checkpoint_failed | failed
  int64_t step = 0;         // the last committed step when written (running: the step it starts from)
  int64_t train_steps = 0;  // the run's target
  std::string since;        // UTC time of writing, "2026-12-01T12:00:00Z"
  std::optional<int> exit_code;
  std::string signal;  // preempted: the signal that asked for the stop, when this rank saw it
  std::string detail;  // failed: the error message
};

inline constexpr const char* kRunStatusFile = "status.json";

// Replaces <dir>/status.json (since is filled in); warns instead of throwing.
void write_run_status(const std::filesystem::path& dir, RunStatus status);
// nullopt when the file is missing or not a status record (a run from before status.json).
std::optional<RunStatus> read_run_status(const std::filesystem::path& dir);

// The end state of a run loop's exit code: 0 finished, 75 preempted, 74 checkpoint_failed.
std::string run_state_of_exit(int code);

}  // namespace flywheel
