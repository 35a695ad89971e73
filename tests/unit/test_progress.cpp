// Progress meters (core/progress.h) off a terminal: one plain line per ~10% and the final 100%, no
// carriage returns, whatever sizes the additions come in.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/progress.h"

namespace flywheel {
namespace {

// The lines `feed` makes a meter print into a file (not a terminal: ProgressStyle::kAuto picks lines).
template <typename Feed>
std::vector<std::string> lines_of(uint64_t total, Feed feed) {
  std::FILE* out = std::tmpfile();
  {
    ProgressMeter meter("verify", total, ProgressStyle::kAuto, out);
    feed(meter);
    meter.finish();
  }
  std::rewind(out);
  std::vector<std::string> lines;
  std::string line;
  for (int c; (c = std::fgetc(out)) != EOF;) {
    if (c == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line += static_cast<char>(c);
    }
  }
  std::fclose(out);
  EXPECT_EQ(line, "") << "an unterminated line";
  return lines;
}

// The percentage a line shows: "verify [===>   ]  40% ..." -> 40.
int percent(const std::string& line) {
  const size_t bar_end = line.find("] ");
  return std::stoi(line.substr(bar_end + 2, line.find('%') - bar_end - 2));
}

TEST(Progress, OffATerminalOneLinePerTenthAndTheFinalOne) {
  const std::vector<std::string> lines = lines_of(1000, [](ProgressMeter& m) {
    for (int i = 0; i < 1000; ++i) m.add(1);
  });
  ASSERT_EQ(lines.size(), 10u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(percent(lines[i]), static_cast<int>(10 * (i + 1))) << lines[i];
    EXPECT_EQ(lines[i].find('\r'), std::string::npos) << lines[i];
    EXPECT_EQ(lines[i].rfind("verify [", 0), 0u) << lines[i];
  }
}

TEST(Progress, LargeAdditionsPrintOneLineForTheTenthsTheySkip) {
  const std::vector<std::string> lines = lines_of(100, [](ProgressMeter& m) {
    m.add(35);  // 35%: one line, not three
    m.add(60);  // 95%
    m.add(5);   // 100%: printed once, by finish()
  });
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(percent(lines[0]), 35);
  EXPECT_EQ(percent(lines[1]), 95);
  EXPECT_EQ(percent(lines[2]), 100);
}

TEST(Progress, AnEstimatedTotalThatFallsShortStillEndsAtOneHundred) {
  const std::vector<std::string> lines = lines_of(10, [](ProgressMeter& m) {
    for (int i = 0; i < 40; ++i) m.add(1);
  });
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(percent(lines.back()), 100);
  EXPECT_LE(lines.size(), 11u);
  EXPECT_TRUE(lines_of(0, [](ProgressMeter&) {}).size() == 1u);
}

}  // namespace
}  // namespace flywheel
