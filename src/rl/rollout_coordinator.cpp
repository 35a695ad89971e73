#include "rl/rollout_coordinator.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "data/text_codec.h"

namespace flywheel {

RolloutCoordinator::RolloutCoordinator(const FlywheelSpec& spec, Comm& world)
    : spec_(spec),
      world_(world),
      codec_(TextCodec::open(spec.data)),
      stream_(spec, codec_),
      prompts_(spec.rl.prompts_per_step),
      group_(spec.rl.group_size),
      trainers_(static_cast<int>(spec.mesh.trainer_ranks())),
      replicas_(static_cast<int>(spec.mesh.serve)) {
  FW_CHECK(replicas_ > 0, "flywheel run needs serving ranks: set mesh.serve >= 1");
}

int RolloutCoordinator::replica_rank(int64_t prompt_index) const {
  return trainers_ + static_cast<int>(prompt_index % replicas_);
}

void RolloutCoordinator::request(int64_t step) {
  const RlConfig& rl = spec_.rl;
  std::vector<GenerateMessage> batches(replicas_);
  for (int r = 0; r < replicas_; ++r) batches[r].step = step;
  for (int64_t i = 0; i < prompts_; ++i) {
    const std::vector<int32_t> prompt = stream_.prompt(step, i).tokens;
    for (int64_t g = 0; g < group_; ++g) {
      GenerationRequest q;
      q.id = step * prompts_ * group_ + i * group_ + g;
      q.prompt = prompt;
      q.seed = random_u64({spec_.train.seed, RngPurpose::kSampling, static_cast<uint64_t>(step),
                           static_cast<uint64_t>(i * group_ + g)}, 0);
      q.sampling.temperature = static_cast<float>(rl.temperature);
      q.sampling.top_p = static_cast<float>(rl.top_p);
      q.sampling.top_k = rl.top_k;
      q.sampling.max_new_tokens = rl.max_new_tokens;
      q.sampling.stop_tokens = codec_->stop_tokens();
      batches[replica_rank(i) - trainers_].requests.push_back(std::move(q));
    }
  }
  for (int r = 0; r < replicas_; ++r)
    if (!batches[r].requests.empty()) send_message(world_.control(), encode(batches[r]), trainers_ + r, kTagGenerate);
  requested_.push_back(step);
}

void RolloutCoordinator::notify_snapshot(int64_t step) {
  for (int r = 0; r < replicas_; ++r) send_message(world_.control(), encode_step(step), trainers_ + r, kTagSnapshot);
}

void RolloutCoordinator::receive_one() {
  ControlChannel::Envelope envelope;
  const std::vector<uint8_t> bytes = world_.control().recv(ControlChannel::kAnySource, ControlChannel::kAnyTag, &envelope);
  FW_CHECK(envelope.source >= trainers_, "trainer rank 0 got rollout traffic (tag ", envelope.tag,
           ") from trainer rank ", envelope.source);
  if (envelope.tag == kTagResults)
    arrived_.push_back(decode_results(bytes));
  else if (envelope.tag == kTagLoaded)
    loads_.push_back(decode_loaded(bytes));
  else
    FW_THROW("trainer rank 0: unexpected message tag ", envelope.tag, " from replica rank ", envelope.source);
}

std::vector<RolloutSample> RolloutCoordinator::collect(int64_t step, RolloutStats& stats) {
  FW_CHECK(std::count(requested_.begin(), requested_.end(), step) == 1, "collect(", step,
           "): that step's rollouts were never requested");
  const int expected = static_cast<int>(std::min<int64_t>(replicas_, prompts_));
  auto of_step = [&] {
    return std::count_if(arrived_.begin(), arrived_.end(), [&](const ResultsMessage& m) { return m.step == step; });
  };
  while (of_step() < expected) receive_one();

  std::vector<RolloutSample> rollouts(prompts_ * group_);
  double slowest = 0;
  stats = {};
  for (auto it = arrived_.begin(); it != arrived_.end();) {
    if (it->step != step) {
      ++it;
      continue;
    }
    stats.tokens += it->tokens;
    stats.decode_seconds += it->decode_seconds;
    slowest = std::max(slowest, it->decode_seconds);
    for (GenerationResult& result : it->results) {
      const int64_t local = result.id - step * prompts_ * group_;
      FW_CHECK(local >= 0 && local < prompts_ * group_, "replica ", it->replica, " answered request ", result.id,
               ", which is not one of step ", step, "'s");
      RolloutSample& r = rollouts[local];
      r.prompt_index = local / group_;
      r.sample = local % group_;
      r.result = std::move(result);
    }
    it = arrived_.erase(it);
  }
  for (RolloutSample& r : rollouts) {
    RlPrompt prompt = stream_.prompt(step, r.prompt_index);
    r.example = std::move(prompt.example);
    r.prompt_tokens = std::move(prompt.tokens);
    r.chat = std::move(prompt.chat);
    const auto& steps = r.result.snapshot_steps;
    if (!steps.empty() && std::any_of(steps.begin(), steps.end(), [&](int64_t s) { return s != steps.front(); }))
      ++stats.spanning;
  }
  stats.tokens_per_second = slowest > 0 ? static_cast<double>(stats.tokens) / slowest : 0.0;
  for (const LoadedMessage& load : loads_) {
    stats.last_load_ms = std::max(stats.last_load_ms, load.ms);
    stats.fell_back += load.fell_back ? 1 : 0;
    if (load.fell_back) stats.fallbacks.push_back(load);
    stats.replica_behind = stats.replica_behind || load.step < load.requested;
  }
  loads_.clear();
  requested_.erase(std::find(requested_.begin(), requested_.end(), step));
  return rollouts;
}

void RolloutCoordinator::drain() {
  RolloutStats ignored;
  while (!requested_.empty()) collect(requested_.front(), ignored);
}

void RolloutCoordinator::shutdown() {
  const std::vector<uint8_t> none = encode_step(-1);
  for (int r = 0; r < replicas_; ++r) send_message(world_.control(), none, trainers_ + r, kTagShutdown);
}

}  // namespace flywheel
