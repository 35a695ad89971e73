#include "serve/replica.h"

#include "core/error.h"

namespace flywheel {

std::vector<NamedTensor> parameter_tensors(const ParameterSet& params) {
  std::vector<NamedTensor> tensors;
  for (size_t id = 0; id < params.list().size(); ++id)
    tensors.push_back({params.info(static_cast<int>(id)).name, params.tensor(static_cast<int>(id))});
  return tensors;
}

ReplicaServer::ReplicaServer(const ReplicaOptions& options)
    : options_(options),
      engine_(options.model, options.max_batch, storage_dtype(options.dtype)),
      loader_(options.publish_dir, options.dtype) {
  if (!options.ledger_path.empty()) ledger_ = std::make_unique<Ledger>(options.ledger_path);
  weights_ = parameter_tensors(engine_.model().params());
  engine_.set_admitting(false);  // nothing starts before the first snapshot is in
}

void ReplicaServer::add_batch(GenerateMessage batch) {
  FW_CHECK(!open_batches_.count(batch.step), "replica ", options_.replica, ": a second request batch for RL step ",
           batch.step, " arrived before the first was answered");
  OpenBatch& open = open_batches_[batch.step];
  open.step = batch.step;
  open.expected = batch.requests.size();
  for (GenerationRequest& request : batch.requests) {
    FW_CHECK(batch_of_request_.emplace(request.id, batch.step).second, "replica ", options_.replica,
             ": request id ", request.id, " is already in flight");
    engine_.submit(std::move(request));
  }
}

void ReplicaServer::notify_snapshot(int64_t step) { pending_step_ = std::max(pending_step_, step); }

bool ReplicaServer::has_work() const {
  return pending_step_ > attempted_step_ || (!engine_.idle() && loader_.loaded_step() >= 0);
}

LoadedMessage ReplicaServer::swap_in(int64_t step) {
  LoadInfo info;
  try {
    info = loader_.load(step, weights_);
  } catch (const std::exception& e) {
    if (ledger_) ledger_->append(ledger_failure_event(step, options_.replica, e.what()));
    throw;
  }
  if (ledger_) ledger_->append(ledger_event(info, options_.replica));
  engine_.set_snapshot_step(info.step);
  return {info.step, step, options_.replica, info.ms, info.bytes_read, info.applied_delta, info.fell_back, info.reason};
}

ReplicaServer::Progress ReplicaServer::pump() {
  Progress progress;
  if (pending_step_ > attempted_step_) {
    // async swaps at once; sync waits until the sequences in flight have finished on the old weights.
    // A load that could not reach the step (fell back to an older full snapshot) is not retried:
    // the trainer publishes a full snapshot next (it sees the fallback in the load report).
    if (options_.async_swap || engine_.active() == 0 || loader_.loaded_step() < 0) {
      attempted_step_ = pending_step_;
      progress.loads.push_back(swap_in(pending_step_));
      engine_.set_admitting(true);
    } else {
      engine_.set_admitting(false);
    }
  }
  if (loader_.loaded_step() >= 0 && !engine_.idle()) {
    progress.stepped = true;
    collect(engine_.step(), progress);
  }
  return progress;
}

void ReplicaServer::collect(std::vector<GenerationResult> done, Progress& progress) {
  for (GenerationResult& result : done) {
    if (result.id >= kClientRequestIdBase) {
      progress.client_results.push_back(std::move(result));
      continue;
    }
    const auto where = batch_of_request_.find(result.id);
    FW_CHECK(where != batch_of_request_.end(), "replica ", options_.replica, ": finished request ", result.id,
             " belongs to no open batch");
    OpenBatch& open = open_batches_.at(where->second);
    batch_of_request_.erase(where);
    open.results.push_back(std::move(result));
    if (open.results.size() < open.expected) continue;
    const int64_t step = open.step;
    ResultsMessage message;
    message.step = step;
    message.replica = options_.replica;
    message.results = std::move(open.results);
    message.tokens = engine_.tokens_generated() - tokens_at_last_report_;
    message.decode_seconds = engine_.busy_seconds() - busy_at_last_report_;
    tokens_at_last_report_ = engine_.tokens_generated();
    busy_at_last_report_ = engine_.busy_seconds();
    progress.finished.push_back(std::move(message));
    open_batches_.erase(step);
  }
}

}  // namespace flywheel
