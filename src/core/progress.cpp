#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "core/log.h"

namespace flywheel {
namespace {

// One unit for both numbers of "120/265 MiB", chosen by the total so the pair reads naturally.
struct SizeUnit {
  double scale;
  const char* name;
};
SizeUnit unit_for(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30)) return {1.0 / (1 << 30), "GiB"};
  if (bytes >= (uint64_t{1} << 20)) return {1.0 / (1 << 20), "MiB"};
  return {1.0 / 1024, "KiB"};
}

std::string format_amount(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), value < 10 ? "%.1f" : "%.0f", value);
  return text;
}

ProgressStyle resolve(ProgressStyle style, std::FILE* out) {
  if (style != ProgressStyle::kAuto) return style;
  return ::isatty(::fileno(out)) ? ProgressStyle::kTerminal : ProgressStyle::kLines;
}

}  // namespace

ProgressMeter::ProgressMeter(std::string label, uint64_t total_bytes, ProgressStyle style, std::FILE* out)
    : label_(std::move(label)), total_(total_bytes), style_(resolve(style, out)), out_(out) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressMeter::~ProgressMeter() {
  if (!finished_ && drawn_ && style_ == ProgressStyle::kTerminal) std::fputs("\n", out_);
}

std::string ProgressMeter::render(uint64_t done, uint64_t total, double seconds, int bar_width) {
  const double fraction = total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const int filled = static_cast<int>(fraction * bar_width);
  std::string bar = "[";
  for (int i = 0; i < bar_width; ++i) bar += i < filled ? '=' : (i == filled ? '>' : ' ');
  if (filled >= bar_width) bar.back() = '=';
  bar += "]";
  const SizeUnit unit = unit_for(std::max(total, done));
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  const SizeUnit rate_unit = unit_for(static_cast<uint64_t>(rate));
  const std::string eta = done >= total ? std::string("0s")
                         : rate > 0     ? format_duration(static_cast<double>(total - done) / rate)
                                        : std::string("?");
  char text[160];
  std::snprintf(text, sizeof(text), "%s %3d%% %s/%s %s %s %s/s ETA %s", bar.c_str(),
                static_cast<int>(std::floor(fraction * 100)), format_amount(done * unit.scale).c_str(),
                format_amount(total * unit.scale).c_str(), unit.name, format_amount(rate * rate_unit.scale).c_str(),
                rate_unit.name, eta.c_str());
  return text;
}

void ProgressMeter::add(uint64_t bytes) {
  if (finished_) return;
  done_ += bytes;
  total_ = std::max(total_, done_);  // an estimated total (e.g. file sizes before writing) may fall short
  const auto now = std::chrono::steady_clock::now();
  if (style_ == ProgressStyle::kTerminal) {
    // Redrawing on every 4 MiB block would flood a slow terminal; 10 Hz looks continuous.
    if (now - last_draw_ >= std::chrono::milliseconds(100)) draw(false);
  } else if (style_ == ProgressStyle::kLines) {
    const int decile =
        total_ == 0 ? 10 : static_cast<int>(std::min<uint64_t>(10, done_ * 10 / std::max<uint64_t>(total_, 1)));
    if (decile > last_decile_ && decile < 10) draw(false);  // 100% is printed once, by finish()
  }
}

void ProgressMeter::finish() {
  if (finished_) return;
  if (done_ < total_) done_ = total_;  // callers finish when the work is done, whatever they counted
  draw(true);
  finished_ = true;
}

void ProgressMeter::draw(bool final_line) {
  if (style_ == ProgressStyle::kOff) return;
  const auto now = std::chrono::steady_clock::now();
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const std::string line = label_ + " " + render(done_, total_, seconds);
  if (style_ == ProgressStyle::kTerminal) {
    // \r + clear-to-end-of-line: a shorter line fully replaces a longer one.
    std::fprintf(out_, "\r%s\033[K%s", line.c_str(), final_line ? "\n" : "");
  } else {
    last_decile_ = total_ == 0 ? 10 : static_cast<int>(std::min<uint64_t>(10, done_ * 10 / total_));
    std::fprintf(out_, "%s\n", line.c_str());
  }
  drawn_ = true;
  std::fflush(out_);
}

}  // namespace flywheel
