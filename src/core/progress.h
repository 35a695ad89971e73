// A byte-count progress meter for long offline passes (checkpoint verify / diff / reshard / export).
//
// On a terminal it redraws one line in place, at most ~10 times a second:
//   verify [=====>    ] 45% 120/265 MiB 85 MiB/s ETA 2s
// Otherwise (a log file, a pipe, CI) it prints a plain line each time another ~10% is done, so logs
// show progress without carriage-return noise. Single-threaded: call add() from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace flywheel {

enum class ProgressStyle { kAuto, kTerminal, kLines, kOff };

class ProgressMeter {
 public:
  // kAuto: kTerminal when `out` is a TTY, else kLines. total_bytes 0 is allowed (shows 100%).
  ProgressMeter(std::string label, uint64_t total_bytes, ProgressStyle style = ProgressStyle::kAuto,
                std::FILE* out = stderr);
  // Without finish() (an exception unwound past the meter) only ends a drawn terminal line: a
  // failed pass must not claim 100%.
  ~ProgressMeter();
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  void add(uint64_t bytes);
  // Prints the final 100% state (terminal: ends the line). Idempotent.
  void finish();

  uint64_t done() const { return done_; }
  uint64_t total() const { return total_; }

  // The text after the label, e.g. "[=====>    ] 45% 120/265 MiB 85 MiB/s ETA 2s" (for tests).
  static std::string render(uint64_t done, uint64_t total, double seconds, int bar_width = 20);

 private:
  void draw(bool final_line);

  std::string label_;
  uint64_t total_ = 0, done_ = 0;
  ProgressStyle style_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = 0;  // lines style: the last tenth printed
  bool finished_ = false, drawn_ = false;
};

}  // namespace flywheel
