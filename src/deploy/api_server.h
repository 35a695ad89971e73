// The HTTP side of `flywheel serve` (docs/serving.md), on cpp-httplib (Debian libcpp-httplib-dev): a thread pool of
// connection handlers in front of the generation service.
//
//   GET  /health               200 {"status": "ok"} (no key needed: for load balancers and scripts)
//   GET  /metrics              Prometheus text format 0.0.4: requests, tokens, queue depth, batch
//   GET  /v1/models            the served model
//   POST /v1/completions       deploy/openai_protocol.h
//   POST /v1/chat/completions
//   POST /v1/hot_load          {"step": N, "mode": "sync" | "async"} (with --publish-dir: deploy/hot_load.h)
//   GET  /v1/ledger            the hot-load history; POST /v1/ledger/reset clears it
//   POST /v1/load_lora_adapter {"lora_name", "lora_path"}, /v1/unload_lora_adapter {"lora_name"} (vLLM's routes;
//                              with LoRA serving on: deploy/served_adapters.h)
//
// During a sync hot-load a new completion request gets 425 (Too Early), or with the header
// `X-Flywheel-Drain-Timeout: SECONDS` waits up to that long for the swap to end.
//
// Streaming answers are server-sent events (`data: {chunk}\n\n` ... `data: [DONE]\n\n`). A streaming client that
// disconnects is noticed at the next write and its sequences leave the batch; a non-streaming response is sent
// chunked, with a space (JSON whitespace) every heartbeat while it is generated, so a client that went away is
// noticed the same way. Security: with an API key every route but /health needs `Authorization: Bearer KEY` (401
// otherwise); binding an address other than loopback without a key is refused by `flywheel serve`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "deploy/completion_job.h"
#include "deploy/generation_service.h"
#include "deploy/hot_load.h"
#include "deploy/openai_protocol.h"
#include "deploy/served_adapters.h"

namespace flywheel {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;      // 0: any free port (the bound one is returned by bind())
  std::string api_key;  // "" for none
  int64_t max_body_bytes = 1 << 20;
  int64_t connection_threads = 64;  // concurrent connections served; each open stream holds one
  double heartbeat_seconds = 1.0;   // non-streaming responses: whitespace this often while generating
  RequestLimits limits;
};

class ApiServer {
 public:
  // `hot_loader`, `adapters`: null when hot-loading or LoRA serving is off (their routes then answer 404).
  ApiServer(ServerOptions options, const ServedModel& model, GenerationService& service,
            HotLoader* hot_loader = nullptr, ServedAdapters* adapters = nullptr);
  ~ApiServer();
  // Binds the listening socket; returns the port. Throws InputError naming host:port when it cannot.
  int bind();
  // Serves until stop() (from another thread or a signal watcher).
  void listen();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether `host` names only this machine (127.0.0.0/8, ::1, localhost): what may be served without a key.
bool is_loopback_host(const std::string& host);

}  // namespace flywheel
