#include "parallel/pipeline.h"

#include <algorithm>
#include <memory>

#include "core/error.h"

namespace flywheel {
namespace {

class StageRunner {
 public:
  StageRunner(Transformer& model, Comm& pp, const std::vector<PipelineMicroBatch>& micro, double aux_scale)
      : model_(model), pp_(pp), micro_(micro), aux_scale_(aux_scale),
        stage_(pp.rank()), stages_(pp.size()),
        width_(model.config().d_model),
        stashes_(std::max<int64_t>(1, std::min<int64_t>(static_cast<int64_t>(micro.size()), stages_ - stage_))) {}

  void forward(int64_t m) {
    const PipelineMicroBatch& mb = micro_[m];
    const int64_t n = mb.rows * mb.seq * width_;
    ActivationStash& stash = stashes_[m % stashes_.size()];
    Buffer<float> hidden;
    if (stage_ > 0) {
      hidden.resize(n);
      pp_.recv(hidden.data(), n, stage_ - 1, tag(m, kActivation));
    }
    model_.stage_forward(stash, mb.tokens, hidden.data(), mb.rows, mb.seq);
    if (stage_ + 1 < stages_) send(stash.stage_out, stage_ + 1, tag(m, kActivation));
  }

  void backward(int64_t m) {
    const PipelineMicroBatch& mb = micro_[m];
    const int64_t n = mb.rows * mb.seq * width_;
    ActivationStash& stash = stashes_[m % stashes_.size()];
    Buffer<float> dout, din(stage_ > 0 ? n : 0);
    if (stage_ + 1 < stages_) {
      dout.resize(n);
      pp_.recv(dout.data(), n, stage_ + 1, tag(m, kGradient));
    }
    const MicroBatchResult r =
        model_.stage_backward(stash, mb.targets, mb.ce_weight, dout.data(), din.data(), aux_scale_);
    result_.ce_loss += r.ce_loss;
    result_.aux_loss += r.aux_loss;
    if (stage_ > 0) send(din, stage_ - 1, tag(m, kGradient));
  }

  MicroBatchResult finish() {
    for (auto& pending : in_flight_) pending.request->wait();
    in_flight_.clear();
    return result_;
  }

 private:
  enum Kind { kActivation = 0, kGradient = 1 };
  static int tag(int64_t micro, Kind kind) { return static_cast<int>(2 * micro + kind); }

  // Non-blocking send of a copy; completed sends are reaped as new ones start.
  void send(const Buffer<float>& data, int peer, int tag) {
    Pending p{std::make_unique<Buffer<float>>(data), nullptr};
    p.request = pp_.isend(p.buffer->data(), static_cast<int64_t>(p.buffer->size()), peer, tag);
    in_flight_.push_back(std::move(p));
    if (in_flight_.size() > 2 * stashes_.size()) {
      in_flight_.front().request->wait();
      in_flight_.erase(in_flight_.begin());
    }
  }

  struct Pending {
    std::unique_ptr<Buffer<float>> buffer;
    std::unique_ptr<CommRequest> request;
  };

  Transformer& model_;
  Comm& pp_;
  const std::vector<PipelineMicroBatch>& micro_;
  double aux_scale_;
  int stage_, stages_;
  int64_t width_;
  std::vector<ActivationStash> stashes_;
  std::vector<Pending> in_flight_;
  MicroBatchResult result_;
};

}  // namespace

MicroBatchResult run_pipeline_step(Transformer& model, Comm& pp, const std::vector<PipelineMicroBatch>& micro,
                                   double aux_scale) {
  StageRunner runner(model, pp, micro, aux_scale);
  const auto M = static_cast<int64_t>(micro.size());
  const int64_t warmup = std::min<int64_t>(pp.size() - pp.rank() - 1, M);
  int64_t next_forward = 0, next_backward = 0;
  for (; next_forward < warmup; ++next_forward) runner.forward(next_forward);
  while (next_forward < M) {
    runner.forward(next_forward++);
    runner.backward(next_backward++);
  }
  while (next_backward < M) runner.backward(next_backward++);
  return runner.finish();
}

void run_pipeline_logprobs(Transformer& model, Comm& pp, const std::vector<PipelineMicroBatch>& micro,
                           const std::vector<float*>& token_logprob) {
  FW_CHECK(token_logprob.size() == micro.size(), "run_pipeline_logprobs: ", micro.size(), " micro-batches but ",
           token_logprob.size(), " logprob outputs");
  const int stage = pp.rank(), stages = pp.size();
  const int64_t width = model.config().d_model;
  ActivationStash stash;
  stash.keep_for_backward = false;
  Buffer<float> hidden;
  for (size_t m = 0; m < micro.size(); ++m) {
    const PipelineMicroBatch& mb = micro[m];
    const int64_t n = mb.rows * mb.seq * width;
    // Blocking sends suffice: activations only flow forward, so no two neighbours wait on each other.
    const int tag = static_cast<int>(2 * m);
    if (stage > 0) {
      hidden.resize(n);
      pp.recv(hidden.data(), n, stage - 1, tag);
    }
    model.stage_forward(stash, mb.tokens, hidden.data(), mb.rows, mb.seq);
    if (stage + 1 < stages)
      pp.send(stash.stage_out.data(), n, stage + 1, tag);
    else
      model.stage_logprobs(stash, mb.targets, token_logprob[m], mb.ce_weight);
  }
}

}  // namespace flywheel
