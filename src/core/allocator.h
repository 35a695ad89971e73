// Keeps large freed buffers in the process instead of returning them to the OS. A training step
// allocates and frees its activations (~600 MB for gpt2-124m); with glibc's defaults every buffer over
// its dynamic mmap threshold goes back to the kernel and is faulted in again next step (~181k minor
// faults, ~2 s of a 7 s step measured by bench/train_step_bench). Call once at start-up.
#pragma once

namespace flywheel {

void keep_freed_memory();

}  // namespace flywheel
