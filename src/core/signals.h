// Preemption signals. SIGTERM (Slurm's preemption and time-limit signal, also what mpirun forwards
// on termination) and SIGUSR1 (`sbatch --signal=B:USR1@<sec>`, forwarded by the batch script and by
// mpirun) only set a flag here; the trainer ranks agree on it at the next step boundary, write a
// checkpoint, and exit with kExitPreempted so the job script requeues the job.
#pragma once

namespace flywheel {

// Exit codes of `flywheel train` (documented in docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitCheckpointFailed = 74;  // EX_IOERR: a save failed; the previous checkpoint is intact
inline constexpr int kExitPreempted = 75;         // EX_TEMPFAIL: checkpointed after a signal; requeue to resume

void install_preemption_handlers();
bool preemption_requested();
const char* preemption_signal_name();  // the signal that set the flag, or ""

}  // namespace flywheel
