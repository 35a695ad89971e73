#include "serve/run_replica.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/fault_injection.h"
#include "core/log.h"

namespace flywheel {

void run_replica(const ReplicaOptions& options, Comm& world, const ReplicaClientsFactory& make_clients) {
  ReplicaServer server(options);
  const std::unique_ptr<ReplicaClients> clients = make_clients ? make_clients(server.engine()) : nullptr;
  const ParameterSet& weights = server.engine().model().params();
  char size[96];
  std::snprintf(size, sizeof(size), "%.1f MiB = %.2f bytes/parameter", weights.storage_bytes() / 1048576.0,
                static_cast<double>(weights.storage_bytes()) / static_cast<double>(weights.numel()));
  log_rank_info("replica ", options.replica, " up: ", serve_dtype_name(options.dtype), " weights (", size, "), ",
           options.max_batch, " decode slots, ", options.async_swap ? "async" : "sync", " swaps");

  bool shutdown = false;
  while (!shutdown) {
    ControlChannel::Envelope envelope;
    // Take every waiting message; wait for one only when idle (with clients: for a message or a client request).
    while (!shutdown) {
      if (clients) clients->admit(server.engine());
      if (!world.control().probe(0, ControlChannel::kAnyTag, &envelope)) {
        if (server.has_work()) break;
        if (clients) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
      }
      const std::vector<uint8_t> bytes = world.control().recv(0, ControlChannel::kAnyTag, &envelope);
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
    if (clients) clients->route(server.engine(), progress.client_results, progress.stepped);
    for (const LoadedMessage& load : progress.loads) send_message(world.control(), encode(load), 0, kTagLoaded);
    for (const ResultsMessage& results : progress.finished) send_message(world.control(), encode(results), 0, kTagResults);
  }
  log_rank_info("replica ", options.replica, " done: ", server.engine().tokens_generated(), " tokens generated");
}

}  // namespace flywheel
