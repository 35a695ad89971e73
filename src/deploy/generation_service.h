// The decode engine shared by many clients: one thread owns the DecodeEngine and steps it while any sequence is
// waiting or running; client threads (the HTTP handlers) submit requests and read each sequence's tokens as they are
// sampled. A request's tokens depend only on its prompt, sampling parameters and seed (serve/decode_engine.h), so
// what a client gets does not depend on who else is being served in the same batch.
//
// Back-pressure: at most max_waiting requests wait for a slot; one more is refused (the server answers 429). A
// cancelled sequence (its client disconnected, or a stop string ended it) leaves the batch at the next step.
//
// Weight swaps (hot-loads) run on the engine thread between two decode steps, under one of the seeds' transition
// modes (serve/replica.h has the same two for the in-job replicas):
//   async  at the next step boundary; sequences in flight continue on the new weights with their KV state, and each
//          token records the snapshot step it was sampled under;
//   sync   admission stops, the sequences in flight finish on the old weights, then the swap, then admission
//          resumes; no sequence spans two snapshots. swapping() is true meanwhile (the server answers 425).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/decode_engine.h"

namespace flywheel {

// One sequence as its client sees it. Thread-safe.
class SequenceStream {
 public:
  struct Update {
    std::vector<SampledToken> tokens;  // sampled since the previous take()
    bool done = false;                 // no more tokens will come
    std::string error;                 // why the engine failed it ("" when it finished normally)
  };
  // Waits up to `timeout` for tokens or the end, then takes what arrived.
  Update take(std::chrono::milliseconds timeout);

 private:
  friend class GenerationService;
  void push(const SampledToken& token);
  void close(const std::string& error);

  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<SampledToken> pending_;
  bool done_ = false;
  std::string error_;
};

struct ServiceStats {
  int64_t waiting = 0;  // submitted, not yet in a batch slot
  int64_t active = 0;   // in a slot
  int64_t max_batch = 0;
  int64_t tokens_generated = 0;
  int64_t steps = 0;
  double busy_seconds = 0;
};

class GenerationService {
 public:
  // kOwnThread: the service starts the engine thread and is the engine's only user. kExternal: someone else steps
  // the engine (a flywheel replica's loop, serve/run_replica.h) and calls admit() and route() around each step on
  // its own thread; hot-load swaps are theirs too (swap_weights is not available).
  enum class Driver { kOwnThread, kExternal };
  // `engine` must outlive the service. Request ids start at first_id (a replica's clients: kClientRequestIdBase).
  GenerationService(DecodeEngine& engine, int64_t max_waiting, Driver driver = Driver::kOwnThread,
                    int64_t first_id = 1);
  ~GenerationService();
  GenerationService(const GenerationService&) = delete;
  GenerationService& operator=(const GenerationService&) = delete;

  // Queues a request (its id is replaced by a fresh one). Throws Error naming the field when the engine would
  // refuse it, and QueueFull when max_waiting requests already wait.
  struct QueueFull {
    int64_t waiting;
  };
  std::shared_ptr<SequenceStream> submit(GenerationRequest request);
  // Ends a sequence early; its stream is closed. Harmless when it has finished.
  void cancel(const std::shared_ptr<SequenceStream>& stream);

  enum class SwapMode { kAsync, kSync };
  // Runs `swap` on the engine thread under `mode` and waits for it; rethrows what it threw. One at a time (the
  // caller serialises them).
  void swap_weights(SwapMode mode, const std::function<void(DecodeEngine&)>& swap);
  // A sync swap is draining the batch or running: new requests would wait for it.
  bool swapping() const { return sync_swapping_.load(); }
  // Waits until no sync swap is in progress, up to `timeout`; returns whether none is.
  bool wait_for_swap(std::chrono::milliseconds timeout) const;

  // Called on the engine thread before a request naming an adapter is queued: makes sure it is loaded (throws when
  // it cannot be; that request's stream then closes with the reason).
  void set_adapter_loader(std::function<void(const std::string&)> loader);

  ServiceStats stats() const;
  // Stops the engine thread; open streams are closed with an error.
  void stop();

  // kExternal, on the thread that steps the engine: move the requests and cancellations that arrived into the
  // engine; after a step (`stepped`: engine.sampled() is that step's), hand out its tokens and drop the finished.
  void admit();
  void route(const std::vector<GenerationResult>& finished, bool stepped);

 private:
  void run();
  void step_engine();
  bool swap_due() const;  // under mutex_
  void run_swap();        // on the engine thread, mutex_ not held
  void publish_stats();   // the engine's counters into the atomics stats() reads
  void queue_in_engine(GenerationRequest request);

  DecodeEngine& engine_;
  const int64_t max_waiting_;
  const Driver driver_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::vector<GenerationRequest> incoming_;
  std::vector<int64_t> cancels_;
  std::map<int64_t, std::shared_ptr<SequenceStream>> streams_;  // by request id; the engine thread's after submit
  std::map<const SequenceStream*, int64_t> ids_;
  int64_t next_id_ = 1;
  bool stopping_ = false;
  struct PendingSwap {
    SwapMode mode = SwapMode::kAsync;
    const std::function<void(DecodeEngine&)>* swap = nullptr;
    bool done = false;
    std::exception_ptr error;
  };
  PendingSwap* pending_swap_ = nullptr;  // under mutex_
  mutable std::condition_variable swap_done_;
  std::atomic<bool> sync_swapping_{false};
  std::function<void(const std::string&)> adapter_loader_;  // set before requests arrive
  std::atomic<int64_t> engine_waiting_{0}, engine_active_{0}, steps_{0};
  std::atomic<int64_t> tokens_generated_{0};
  std::atomic<double> busy_seconds_{0};
  std::thread thread_;
};

}  // namespace flywheel
