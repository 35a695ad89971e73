// A command's output file, written under a temporary name and renamed into place once complete
// (the safetensors writer, ckpt/safetensors.h, for flywheel-ckpt export), so an interrupted command never
// leaves a file that looks whole. The
// temporary file never outlives the command either: it is removed when the command fails (the
// destructor, as the error unwinds to main) and when SIGINT, SIGTERM or SIGHUP ends the tool (a
// handler removes it, then the signal's default action ends the process, so the exit status still
// says which signal it was). One at a time per process. A cleanup handler installed before it (a
// TemporaryDirectory, ckpt/temp_dir.h, the file is written into) runs after its own.
#pragma once

#include <signal.h>

#include <string>

namespace flywheel {

class TemporaryOutput {
 public:
  explicit TemporaryOutput(std::string final_path);  // the temporary file is final_path + ".tmp"
  ~TemporaryOutput();
  TemporaryOutput(const TemporaryOutput&) = delete;
  TemporaryOutput& operator=(const TemporaryOutput&) = delete;

  const std::string& path() const { return tmp_; }
  // fsyncs the temporary file and renames it over the final path, durably.
  void commit();

 private:
  std::string final_, tmp_;
  bool committed_ = false;
  struct sigaction previous_[3] = {};
};

}  // namespace flywheel
