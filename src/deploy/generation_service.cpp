#include "deploy/generation_service.h"

#include <exception>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

namespace flywheel {

SequenceStream::Update SequenceStream::take(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  arrived_.wait_for(lock, timeout, [&] { return done_ || !pending_.empty(); });
  Update update;
  update.tokens.swap(pending_);
  update.done = done_;
  update.error = error_;
  return update;
}

void SequenceStream::push(const SampledToken& token) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(token);
    if (token.finished) done_ = true;
  }
  arrived_.notify_all();
}

void SequenceStream::close(const std::string& error) {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
    if (error_.empty()) error_ = error;
  }
  arrived_.notify_all();
}

GenerationService::GenerationService(DecodeEngine& engine, int64_t max_waiting, Driver driver, int64_t first_id)
    : engine_(engine), max_waiting_(max_waiting), driver_(driver), next_id_(first_id) {
  if (driver == Driver::kExternal) return;
  // OpenMP's thread count is per thread (omp_set_num_threads sets the caller's): the engine thread takes the
  // creator's, or it would run with the default (every core) whatever --threads said.
  const int threads = thread_count();
  thread_ = std::thread([this, threads] {
    set_thread_count(threads);
    run();
  });
}

GenerationService::~GenerationService() { stop(); }

std::shared_ptr<SequenceStream> GenerationService::submit(GenerationRequest request) {
  auto stream = std::make_shared<SequenceStream>();
  std::lock_guard lock(mutex_);
  const int64_t waiting = engine_waiting_.load() + static_cast<int64_t>(incoming_.size());
  if (waiting >= max_waiting_) throw QueueFull{waiting};
  FW_CHECK(!stopping_, "the generation service is stopping");
  request.id = next_id_++;
  engine_.check(request);
  streams_[request.id] = stream;
  ids_[stream.get()] = request.id;
  incoming_.push_back(std::move(request));
  work_.notify_one();
  return stream;
}

void GenerationService::cancel(const std::shared_ptr<SequenceStream>& stream) {
  {
    std::lock_guard lock(mutex_);
    auto it = ids_.find(stream.get());
    if (it == ids_.end()) return;  // finished already
    cancels_.push_back(it->second);
    work_.notify_one();
  }
  stream->close("");
}

ServiceStats GenerationService::stats() const {
  ServiceStats s;
  {
    std::lock_guard lock(mutex_);
    s.waiting = engine_waiting_.load() + static_cast<int64_t>(incoming_.size());
  }
  s.active = engine_active_.load();
  s.max_batch = engine_.max_batch();
  s.tokens_generated = tokens_generated_.load();
  s.steps = steps_.load();
  s.busy_seconds = busy_seconds_.load();
  return s;
}

void GenerationService::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  if (pending_swap_) {  // never run: its caller is told
    pending_swap_->error = std::make_exception_ptr(Error("the server stopped before the swap"));
    pending_swap_->done = true;
    pending_swap_ = nullptr;
    sync_swapping_ = false;
    swap_done_.notify_all();
  }
  for (auto& [id, stream] : streams_) stream->close("the server is shutting down");
  streams_.clear();
  ids_.clear();
}

void GenerationService::swap_weights(SwapMode mode, const std::function<void(DecodeEngine&)>& swap) {
  FW_CHECK(driver_ == Driver::kOwnThread, "swap_weights: the engine is stepped by someone else, who swaps");
  PendingSwap pending{mode, &swap, false, nullptr};
  std::unique_lock lock(mutex_);
  FW_CHECK(!stopping_, "the generation service is stopping");
  FW_CHECK(pending_swap_ == nullptr, "a weight swap is already in progress");
  pending_swap_ = &pending;
  if (mode == SwapMode::kSync) sync_swapping_ = true;
  work_.notify_one();
  swap_done_.wait(lock, [&] { return pending.done; });
  if (pending.error) std::rethrow_exception(pending.error);
}

bool GenerationService::wait_for_swap(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return swap_done_.wait_for(lock, timeout, [&] { return !sync_swapping_.load(); });
}

bool GenerationService::swap_due() const {
  return pending_swap_ && (pending_swap_->mode == SwapMode::kAsync || engine_.active() == 0);
}

void GenerationService::run_swap() {
  PendingSwap* pending;
  {
    std::lock_guard lock(mutex_);
    pending = pending_swap_;
  }
  std::exception_ptr error;
  try {
    (*pending->swap)(engine_);
  } catch (...) {
    error = std::current_exception();
  }
  engine_.set_admitting(true);
  {
    std::lock_guard lock(mutex_);
    pending->error = error;
    pending->done = true;
    pending_swap_ = nullptr;
    sync_swapping_ = false;
  }
  swap_done_.notify_all();
}

void GenerationService::admit() {
  std::vector<GenerationRequest> incoming;
  std::vector<int64_t> cancels;
  {
    std::lock_guard lock(mutex_);
    incoming.swap(incoming_);
    cancels.swap(cancels_);
    for (int64_t id : cancels) {
      if (auto it = streams_.find(id); it != streams_.end()) {
        ids_.erase(it->second.get());
        streams_.erase(it);
      }
    }
  }
  for (int64_t id : cancels) engine_.cancel(id);
  for (GenerationRequest& r : incoming) queue_in_engine(std::move(r));
  publish_stats();
}

void GenerationService::route(const std::vector<GenerationResult>& finished, bool stepped) {
  // The counters first: a client that sees its sequence end then sees stats() without it.
  publish_stats();
  if (stepped) ++steps_;
  {
    std::lock_guard lock(mutex_);
    if (stepped)
      for (const SampledToken& t : engine_.sampled())
        if (auto it = streams_.find(t.id); it != streams_.end()) it->second->push(t);
    for (const GenerationResult& r : finished) {
      if (auto it = streams_.find(r.id); it != streams_.end()) {
        ids_.erase(it->second.get());
        streams_.erase(it);
      }
    }
  }
}

void GenerationService::run() {
  for (;;) {
    bool swap_now = false;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock,
                 [&] { return stopping_ || !incoming_.empty() || !cancels_.empty() || !engine_.idle() || swap_due(); });
      if (stopping_) return;
      swap_now = swap_due();
      if (pending_swap_ && !swap_now) engine_.set_admitting(false);  // sync: let the batch drain first
    }
    admit();
    if (swap_now) run_swap();
    if (engine_.active() > 0 || (engine_.admitting() && engine_.waiting() > 0)) step_engine();
    publish_stats();
  }
}

void GenerationService::set_adapter_loader(std::function<void(const std::string&)> loader) {
  std::lock_guard lock(mutex_);
  adapter_loader_ = std::move(loader);
}

void GenerationService::queue_in_engine(GenerationRequest request) {
  const int64_t id = request.id;
  try {
    if (!request.adapter.empty() && adapter_loader_) adapter_loader_(request.adapter);
    engine_.submit(std::move(request));  // the prompt and sampling were checked at submit()
  } catch (const std::exception& e) {    // an adapter that cannot be loaded: this request fails, nothing else
    std::lock_guard lock(mutex_);
    if (auto it = streams_.find(id); it != streams_.end()) {
      it->second->close(e.what());
      ids_.erase(it->second.get());
      streams_.erase(it);
    }
  }
}

void GenerationService::publish_stats() {
  engine_waiting_ = engine_.waiting();
  engine_active_ = engine_.active();
  tokens_generated_ = engine_.tokens_generated();
  busy_seconds_ = engine_.busy_seconds();
}

void GenerationService::step_engine() {
  std::vector<GenerationResult> finished;
  std::string error;
  try {
    finished = engine_.step();
  } catch (const std::exception& e) {
    error = e.what();
    log_error("generation failed: ", error);
  }
  if (!error.empty()) {  // a failed step leaves no sequence in a known state: end them all, with the reason
    std::lock_guard lock(mutex_);
    for (auto& [id, stream] : streams_) {
      engine_.cancel(id);
      stream->close("generation failed: " + error);
    }
    streams_.clear();
    ids_.clear();
    return;
  }
  route(finished, true);
}

}  // namespace flywheel
