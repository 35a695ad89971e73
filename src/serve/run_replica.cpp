#include "serve/run_replica.h"

#include <filesystem>

#include "core/log.h"
#include "serve/replica.h"
#include "train/fault_injection.h"

namespace flywheel {

void run_replica(const Shape& shape, Comm& world, const std::string& run_dir) {
  const RlConfig& rl = shape.rl;
  ReplicaOptions options;
  options.model = shape.model;
  options.max_batch = rl.max_batch;
  options.dtype = parse_serve_dtype(rl.serve_dtype);
  options.async_swap = rl.swap == "async";
  options.publish_dir = (std::filesystem::path(run_dir) / "publish").string();
  options.ledger_path = (std::filesystem::path(run_dir) / "ledger.jsonl").string();
  options.replica = world.rank() - static_cast<int>(shape.mesh.trainer_ranks());
  ReplicaServer server(options);
  log_info("replica ", options.replica, " up: ", serve_dtype_name(options.dtype), " weights, ", rl.max_batch,
           " decode slots, ", rl.swap, " swaps");

  bool shutdown = false;
  while (!shutdown) {
    Comm::Envelope envelope;
    // Take every waiting message; wait for one only when idle.
    while (!shutdown && (world.probe(0, Comm::kAnyTag, &envelope) || !server.has_work())) {
      const std::vector<uint8_t> bytes = world.recv_bytes(0, Comm::kAnyTag, &envelope);
      switch (envelope.tag) {
        case kTagGenerate: {
          GenerateMessage batch = decode_generate(bytes);
          maybe_inject_fault(world.rank(), batch.step);  // FLYWHEEL_FAULT_INJECT: failure-path tests only
          server.add_batch(std::move(batch));
          break;
        }
        case kTagSnapshot: server.notify_snapshot(decode_step(bytes)); break;
        case kTagShutdown: shutdown = true; break;
        default: FW_THROW("replica ", options.replica, ": unexpected message tag ", envelope.tag, " from rank 0");
      }
    }
    if (shutdown) break;
    ReplicaServer::Progress progress = server.pump();
    for (const LoadedMessage& load : progress.loads) send_message(world, encode(load), 0, kTagLoaded);
    for (const ResultsMessage& results : progress.finished) send_message(world, encode(results), 0, kTagResults);
  }
  log_info("replica ", options.replica, " done: ", server.engine().tokens_generated(), " tokens generated");
}

}  // namespace flywheel
