// A command's output file, written under a temporary name and renamed into place once complete
// (the safetensors writer, ckpt/safetensors.h, for flywheel-ckpt export), so an interrupted command never
// leaves a file that looks whole. The
// temporary file never outlives the command either: it is removed when the command fails (the
// destructor, as the error unwinds to main) and when SIGINT, SIGTERM or SIGHUP ends the tool (a
// handler removes it, then the signal's default action ends the process, so the exit status still
// says which signal it was; ckpt/cleanup_on_signal.h). A TemporaryDirectory
// (ckpt/temp_dir.h) the file is written into is cleaned up after it.
#pragma once

#include <string>

#include "ckpt/cleanup_on_signal.h"

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
  CleanupOnSignal cleanup_;  // after tmp_, whose path it holds
};

}  // namespace flywheel
