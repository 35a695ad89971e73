// Stop requests. SIGTERM (Slurm: scancel, preemption, the time limit; mpirun's abort), SIGINT (Ctrl-C,
// `kill -INT`) and SIGUSR1 (`sbatch --signal=B:USR1@<sec>` forwarded by the job script; mpirun and
// jobs/mpirun.sh forward it) set a flag and print one line at once; the trainer ranks agree on the
// flag at the next step boundary, write a checkpoint, and exit with kExitPreempted.
//
// A second signal, kRepeatSeconds or more after the first, ends the process at once with kExitStopped
// (a checkpoint being written then is never committed: ckpt/commit.cpp keeps the last committed one
// intact). A repeat within kRepeatSeconds is the same request: Slurm delivers a preemption's SIGTERM
// twice, ~20 ms apart (measured), and must not turn a checkpoint into a stop.
//
// SIGINT is caught even when it arrives ignored (a script's background job `flywheel ... &` starts with
// SIGINT ignored): a Ctrl-C or `kill -INT` that reaches a run checkpoints it rather than being lost.
// SIGHUP keeps its default, so `nohup` still protects a run from a closing terminal.
#pragma once

namespace flywheel {

// Exit codes of `flywheel train` and `flywheel run` (documented in docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitCheckpointFailed = 74;  // EX_IOERR: a save failed; the previous checkpoint is intact
inline constexpr int kExitPreempted = 75;         // EX_TEMPFAIL: checkpointed after a signal; requeue to resume
inline constexpr int kExitStopped = 130;          // a second signal: stopped at once; last committed checkpoint intact

inline constexpr int kRepeatSeconds = 1;

// `rank` < 0: one process (as configure_logging); the handler's line carries the rank otherwise.
// `first_action`: what the first signal's line says happens next (a static string).
inline constexpr const char* kCheckpointAction =
    ": checkpointing at the next step boundary (a second signal stops at once)";
void install_preemption_handlers(int rank, const char* first_action = kCheckpointAction);
bool preemption_requested();
const char* preemption_signal_name();  // the signal that set the flag, or ""

}  // namespace flywheel
