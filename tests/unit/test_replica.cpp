// The serving replica's swap policies, driven by a scripted order of events (no MPI): in async mode
// sequences in flight continue on the new snapshot and record both steps; in sync mode they finish on
// the old one, and sequences waiting behind the swap run wholly on the new one. Every logprob the
// replica reports equals the trainer-side full-sequence score at the snapshot it was sampled under.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/transformer.h"
#include "rl/publish_fault.h"
#include "serve/replica_protocol.h"
#include "serve/replica.h"
#include "serve/snapshot_publisher.h"

namespace flywheel {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.d_ff = 64;
  c.max_seq_len = 64;
  c.init_std = 0.2;  // peaked enough that samples differ between the two snapshots
  c.forward_kernels = "invariant";
  return c;
}

GenerateMessage batch_of(int64_t step, int64_t first_id, int count, int64_t max_new_tokens) {
  GenerateMessage m;
  m.step = step;
  for (int i = 0; i < count; ++i) {
    GenerationRequest r;
    r.id = first_id + i;
    r.prompt = {256, 97 + i, 98};
    r.seed = 100 + static_cast<uint64_t>(i);
    r.sampling.max_new_tokens = max_new_tokens;  // no stop tokens: every sequence runs its full length
    m.requests.push_back(r);
  }
  return m;
}

class ReplicaSwapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("flywheel-replica-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "publish");
    SnapshotPublisher publisher((dir_ / "publish").string(), ServeDtype::kFp32, 10);
    for (int step = 0; step < 2; ++step) {
      models_.push_back(std::make_unique<Transformer>(tiny_config()));
      models_.back()->initialize(1234 + step);  // step 1: different weights, published as a delta
      publisher.publish(step, parameter_tensors(models_.back()->params()));
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ReplicaOptions options(bool async) const {
    ReplicaOptions o;
    o.model = tiny_config();
    o.max_batch = 4;
    o.async_swap = async;
    o.publish_dir = (dir_ / "publish").string();
    o.ledger_path = (dir_ / "ledger.jsonl").string();
    return o;
  }

  // Runs until every batch is answered; returns the results by request id.
  static std::map<int64_t, GenerationResult> drain(ReplicaServer& server) {
    std::map<int64_t, GenerationResult> out;
    for (int guard = 0; guard < 1000 && server.has_work(); ++guard)
      for (ResultsMessage& m : server.pump().finished)
        for (GenerationResult& r : m.results) out[r.id] = r;
    return out;
  }

  // The replica's logprobs equal the trainer model's full-sequence score under the recorded step.
  void expect_exact(const GenerationRequest& request, const GenerationResult& result) {
    ASSERT_FALSE(result.snapshot_steps.empty());
    const int64_t step = result.snapshot_steps.front();
    ASSERT_TRUE(std::all_of(result.snapshot_steps.begin(), result.snapshot_steps.end(),
                            [&](int64_t s) { return s == step; }));
    std::vector<int32_t> tokens = request.prompt;
    tokens.insert(tokens.end(), result.tokens.begin(), result.tokens.end());
    const std::vector<float> expected =
        score_tokens(*models_[step], tokens, static_cast<int64_t>(request.prompt.size()));
    ASSERT_EQ(expected.size(), result.logprobs.size());
    EXPECT_EQ(0, std::memcmp(expected.data(), result.logprobs.data(), expected.size() * sizeof(float)))
        << "request " << request.id << " under snapshot " << step;
  }

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<Transformer>> models_;
};

TEST_F(ReplicaSwapTest, NothingDecodesBeforeTheFirstSnapshot) {
  ReplicaServer server(options(false));
  server.add_batch(batch_of(0, 0, 2, 4));
  EXPECT_FALSE(server.has_work());  // requests wait for weights
  server.notify_snapshot(0);
  const auto results = drain(server);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& [id, r] : results) EXPECT_EQ(r.snapshot_steps, std::vector<int64_t>(4, 0));
}

TEST_F(ReplicaSwapTest, AsyncSwapContinuesSequencesOnNewWeights) {
  ReplicaServer server(options(true));
  const GenerateMessage first = batch_of(0, 0, 4, 12);
  server.add_batch(first);
  server.notify_snapshot(0);
  for (int i = 0; i < 4; ++i) server.pump();  // load + prefill + a few decode steps
  server.notify_snapshot(1);
  const auto results = drain(server);
  ASSERT_EQ(results.size(), 4u);
  for (const auto& [id, r] : results) {
    EXPECT_EQ(r.snapshot_steps.front(), 0) << "request " << id;
    EXPECT_EQ(r.snapshot_steps.back(), 1) << "request " << id << " should span the swap";
  }
  EXPECT_EQ(server.loaded_step(), 1);
}

TEST_F(ReplicaSwapTest, SyncSwapFinishesInFlightOnOldWeightsAndStartsWaitingOnNew) {
  ReplicaServer server(options(false));
  const GenerateMessage first = batch_of(0, 0, 4, 12), second = batch_of(1, 100, 3, 6);
  server.add_batch(first);
  server.notify_snapshot(0);
  for (int i = 0; i < 4; ++i) server.pump();
  server.notify_snapshot(1);
  server.add_batch(second);  // waits behind the swap
  const auto results = drain(server);
  ASSERT_EQ(results.size(), 7u);
  for (const GenerationRequest& q : first.requests) {
    EXPECT_EQ(results.at(q.id).snapshot_steps, std::vector<int64_t>(12, 0));
    expect_exact(q, results.at(q.id));
  }
  for (const GenerationRequest& q : second.requests) {
    EXPECT_EQ(results.at(q.id).snapshot_steps, std::vector<int64_t>(6, 1));
    expect_exact(q, results.at(q.id));
  }
}

TEST_F(ReplicaSwapTest, CorruptDeltaFallsBackToTheFullSnapshotAndSaysSo) {
  // Flip one payload byte of step 1's delta: the replica must notice, record the fallback in the
  // ledger and keep serving from the newest intact full snapshot (step 0).
  const std::filesystem::path delta = dir_ / "publish" / "step-00000001.delta";
  ASSERT_TRUE(std::filesystem::exists(delta)) << "the publisher should have written step 1 as a delta";
  flip_byte_near_end(delta.string());
  ReplicaServer server(options(false));
  server.notify_snapshot(0);
  server.pump();
  server.notify_snapshot(1);
  const ReplicaServer::Progress progress = server.pump();
  ASSERT_EQ(progress.loads.size(), 1u);
  EXPECT_TRUE(progress.loads[0].fell_back);
  EXPECT_NE(progress.loads[0].reason.find("step-00000001.delta"), std::string::npos) << progress.loads[0].reason;
  EXPECT_EQ(server.loaded_step(), 0);
  server.add_batch(batch_of(1, 0, 2, 4));  // serving continues on what is loaded
  const auto results = drain(server);
  ASSERT_EQ(results.size(), 2u);
  std::ifstream ledger(dir_ / "ledger.jsonl");
  const std::string text((std::istreambuf_iterator<char>(ledger)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("fell_back"), std::string::npos) << text;
}

}  // namespace
}  // namespace flywheel
