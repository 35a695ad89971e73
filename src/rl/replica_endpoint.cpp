#include "rl/replica_endpoint.h"

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "data/text_codec.h"
#include "deploy/api_server.h"
#include "deploy/generation_service.h"

namespace flywheel {
namespace {

constexpr int64_t kMaxWaiting = 256;  // client requests queued for a slot before 429

class ReplicaEndpoint final : public ReplicaClients {
 public:
  ReplicaEndpoint(const FlywheelSpec& spec, const std::string& run_dir, int replica, DecodeEngine& engine)
      : service_(engine, kMaxWaiting, GenerationService::Driver::kExternal, kClientRequestIdBase) {
    served_.id = std::filesystem::path(run_dir).filename().string();
    served_.codec = TextCodec::open(spec.data);
    served_.max_seq_len = spec.model.max_seq_len;
    served_.vocab_size = spec.model.vocab_size;
    served_.max_prompt_tokens = spec.model.max_seq_len - 1;
    served_.created = static_cast<int64_t>(std::time(nullptr));
    ServerOptions options;
    options.port = spec.rl.serve_port == 0 ? 0 : static_cast<int>(spec.rl.serve_port) + replica;
    if (const char* key = std::getenv("FLYWHEEL_API_KEY")) options.api_key = key;
    server_ = std::make_unique<ApiServer>(options, served_, service_);
    const int port = server_->bind();
    listener_ = std::thread([this] { server_->listen(); });
    log_rank_info("replica ", replica, " OpenAI endpoint: model '", served_.id, "' at http://127.0.0.1:", port, "/v1",
                  options.api_key.empty() ? "" : " (API key required)");
  }

  ~ReplicaEndpoint() override {
    server_->stop();
    if (listener_.joinable()) listener_.join();
    service_.stop();
  }

  void admit(DecodeEngine&) override { service_.admit(); }
  void route(const DecodeEngine&, const std::vector<GenerationResult>& finished, bool stepped) override {
    service_.route(finished, stepped);
  }

 private:
  ServedModel served_;
  GenerationService service_;
  std::unique_ptr<ApiServer> server_;
  std::thread listener_;
};

}  // namespace

ReplicaClientsFactory replica_endpoint(const FlywheelSpec& spec, const std::string& run_dir, int replica) {
  if (spec.rl.serve_port < 0) return nullptr;
  return [spec, run_dir, replica](DecodeEngine& engine) -> std::unique_ptr<ReplicaClients> {
    return std::make_unique<ReplicaEndpoint>(spec, run_dir, replica, engine);
  };
}

}  // namespace flywheel
