// The flywheel's console account of what makes a run's numbers suspect (rl/run_health.h): every
// hot-load fallback and every exact-mode step with k3 != 0 is a warning with its running count, and
// the end-of-run summary has the totals and the worst k3.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <unistd.h>

#include "rl/run_health.h"

namespace flywheel {
namespace {

// Runs `body` with stderr redirected to a file; returns what it printed.
template <typename Body>
std::string stderr_of(Body body) {
  std::fflush(stderr);
  std::FILE* capture = std::tmpfile();
  const int saved = ::dup(::fileno(stderr));
  ::dup2(::fileno(capture), ::fileno(stderr));
  body();
  std::fflush(stderr);
  ::dup2(saved, ::fileno(stderr));
  ::close(saved);
  std::rewind(capture);
  std::string text;
  for (int c; (c = std::fgetc(capture)) != EOF;) text += static_cast<char>(c);
  std::fclose(capture);
  return text;
}

LoadedMessage fallback(int64_t requested, int64_t served) {
  LoadedMessage m;
  m.requested = requested;
  m.step = served;
  m.replica = 0;
  m.fell_back = true;
  m.reason = "snapshot publish/step-0000000" + std::to_string(requested) +
             ".delta is corrupt: XXH3-64 of its bytes is 1 but its footer says 2; loaded step-00000004.full and "
             "replayed 0 delta(s); step " + std::to_string(requested) + " not reached, serving step 4: snapshot ...";
  return m;
}

TEST(RunHealth, EachFallbackAndEachInexactStepIsAWarningWithItsCount) {
  RunHealth health(/*exact=*/true);
  std::string out = stderr_of([&] { health.record(4, {}, 0.0, 0.0); });
  EXPECT_EQ(out, "");
  out = stderr_of([&] { health.record(5, {fallback(5, 4)}, 1.9e-6, 4.4e-3); });
  EXPECT_NE(out.find("warn] step 6: replica 0 fell back loading snapshot 5: snapshot publish/step-00000005.delta is "
                     "corrupt: XXH3-64 of its bytes is 1 but its footer says 2; loaded step-00000004.full and replayed "
                     "0 delta(s), so it serves step 4 instead; 1 hot-load fallback so far\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("warn] step 6: exact mode (rl.serve_dtype = fp32) but k3 = 1.90e-06 (max|d| 4.4e-03): the "
                     "replica served other weights than the trainer's (it fell back, above); 1 such step so far\n"),
            std::string::npos)
      << out;
  out = stderr_of([&] { health.record(7, {}, 3.0e-6, 1.0e-3); });
  EXPECT_NE(out.find("step 8: exact mode (rl.serve_dtype = fp32) but k3 = 3.00e-06 (max|d| 1.0e-03): the replica "
                     "served other weights than the trainer's (no hot-load fell back: train/serve parity broke); 2 "
                     "such steps so far"),
            std::string::npos)
      << out;
  EXPECT_TRUE(health.troubled());
  EXPECT_EQ(health.summary(),
            "flywheel summary over 3 RL steps: 1 hot-load fallback (replica 0: 1) in 1 step; 2 steps with k3 != 0 in "
            "exact mode; worst k3 3.00e-06 (max|d| 1.0e-03) at step 8 (per step: metrics.jsonl; per load: "
            "ledger.jsonl)");
  out = stderr_of([&] { health.log_summary(); });
  EXPECT_NE(out.find("warn] flywheel summary over 3 RL steps"), std::string::npos) << out;
}

TEST(RunHealth, ACleanRunAndFastModeSayWhatTheyWere) {
  RunHealth exact(true);
  exact.record(0, {}, 0.0, 0.0);
  EXPECT_FALSE(exact.troubled());
  EXPECT_EQ(exact.summary(), "flywheel summary over 1 RL step: every hot-load direct; k3 = 0 at every step (exact mode)");
  // bf16 serving: k3 > 0 is expected, so it is no warning, but the summary reports the worst.
  RunHealth fast(false);
  EXPECT_EQ(stderr_of([&] {
              fast.record(0, {}, 4.0e-6, 1.0e-2);
              fast.record(1, {}, 2.0e-6, 1.0e-2);
            }),
            "");
  EXPECT_EQ(fast.summary(), "flywheel summary over 2 RL steps: every hot-load direct; worst k3 4.00e-06 (max|d| "
                            "1.0e-02) at step 1");
}

}  // namespace
}  // namespace flywheel
