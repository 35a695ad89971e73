// A command's output directory (flywheel-ckpt export --format hf), built under a temporary name beside
// it and moved into place only once every file in it is complete and durable, so a reader never sees
// a directory that looks whole but is not. The temporary directory never outlives the command: it is
// removed when the command fails (the destructor, as the error unwinds to main) and when SIGINT,
// SIGTERM or SIGHUP ends the tool (a handler removes its files and itself with async-signal-safe
// system calls, then the signal's default action ends the process). The directory is flat: the
// handler removes the files directly inside it, which is all its writers create (ckpt/cleanup_on_signal.h);
// a TemporaryOutput (ckpt/temp_output.h) for a file inside it may be active at the same time.
#pragma once

#include <memory>
#include <string>

#include "ckpt/cleanup_on_signal.h"

namespace flywheel {

class TemporaryDirectory {
 public:
  // Creates final_path + ".tmp-<pid>" (final_path's parent must exist; a directory of that name
  // left by a killed export is removed first). Throws naming the path when it cannot.
  explicit TemporaryDirectory(std::string final_path);
  ~TemporaryDirectory();
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

  const std::string& path() const { return tmp_; }
  // fsyncs the directory and moves it to the final path: by rename(2) when the final path is absent
  // or an empty directory; with `replace`, over a non-empty directory by exchanging the two
  // (renameat2 RENAME_EXCHANGE, so the final path always names a whole directory, old or new) and
  // then deleting the old one. Throws naming both paths when the move fails.
  void commit(bool replace);

 private:
  std::string final_, tmp_;
  bool committed_ = false;
  std::unique_ptr<CleanupOnSignal> cleanup_;  // from the moment the directory exists
};

}  // namespace flywheel
