#include "deploy/api_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>

#include "core/error.h"
#include "core/log.h"
#include "deploy/openai_responses.h"
#include "deploy/server_metrics.h"

namespace flywheel {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStreamPoll = std::chrono::milliseconds(50);
constexpr int kAcceptBacklog = 1024;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump_json(error_body(e)), "application/json");
}

// Compares without an early exit, so the time taken does not tell how much of a guessed key was right.
bool same_key(const std::string& given, const std::string& key) {
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i % key.size()]);
  return diff == 0;
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

struct ApiServer::Impl {
  ServerOptions options;
  const ServedModel& model;
  GenerationService& service;
  HotLoader* hot_loader;
  ServedAdapters* adapters;
  ServerMetrics metrics;
  httplib::Server http;
  int listening_socket = -1;  // captured while httplib creates it (socket options)

  Impl(ServerOptions o, const ServedModel& m, GenerationService& s, HotLoader* h, ServedAdapters* a)
      : options(std::move(o)), model(m), service(s), hot_loader(h), adapters(a) {}

  bool authorised(const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path == "/health") return true;
    const std::string header = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (header.compare(0, prefix.size(), prefix) == 0 && same_key(header.substr(prefix.size()), options.api_key))
      return true;
    send_error(res, ApiError(401, "invalid_request_error",
                             header.empty() ? "missing API key: send 'Authorization: Bearer <key>'"
                                            : "incorrect API key provided",
                             "", "invalid_api_key"));
    return false;
  }

  // The adapter a request's model names: "" for the base model. Throws 404 for a name not served.
  std::string adapter_of(const CompletionRequest& r) const {
    if (r.model == model.id) return "";
    if (adapters && adapters->has(r.model)) return r.model;
    throw ApiError(404, "invalid_request_error",
                   "the model '" + r.model + "' does not exist: this server serves '" + model.id + "'" +
                       (adapters ? " and its LoRA adapters" : "") + " (GET /v1/models lists them)",
                   "model", "model_not_found");
  }

  std::vector<std::string> adapter_names() const { return adapters ? adapters->names() : std::vector<std::string>{}; }

  static nlohmann::json json_object(const httplib::Request& req, const char* shape) {
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      throw ApiError(400, "invalid_request_error", std::string("the request body must be a JSON object ") + shape, "",
                     "invalid_json");
    return body;
  }

  static std::string string_field(const nlohmann::json& body, const char* key) {
    auto it = body.find(key);
    if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
      invalid_request(key, std::string("'") + key + "' is required: a non-empty string");
    return it->get<std::string>();
  }

  void load_adapter(const httplib::Request& req, httplib::Response& res) {
    const nlohmann::json body = json_object(req, "{\"lora_name\": NAME, \"lora_path\": DIR}");
    const std::string name = string_field(body, "lora_name"), dir = string_field(body, "lora_path");
    if (name == model.id) invalid_request("lora_name", "'lora_name' is the base model's name: choose another");
    adapters->load(name, dir);
    res.set_content(dump_json({{"object", "lora_adapter"}, {"id", name}, {"path", dir}, {"loaded", true}}),
                    "application/json");
  }

  void unload_adapter(const httplib::Request& req, httplib::Response& res) {
    const std::string name = string_field(json_object(req, "{\"lora_name\": NAME}"), "lora_name");
    adapters->unload(name);
    res.set_content(dump_json({{"object", "lora_adapter"}, {"id", name}, {"loaded", false}}), "application/json");
  }

  // 425 while a sync hot-load drains the batch, unless the request names how long it may wait.
  void wait_for_sync_swap(const httplib::Request& req) const {
    if (!service.swapping()) return;
    const std::string header = req.get_header_value("X-Flywheel-Drain-Timeout");
    double seconds = 0;
    if (!header.empty()) {
      char* end = nullptr;
      seconds = std::strtod(header.c_str(), &end);
      if (end == header.c_str() || *end != '\0' || !(seconds >= 0 && seconds <= 3600))
        invalid_request("X-Flywheel-Drain-Timeout", "the header X-Flywheel-Drain-Timeout = '" + header +
                                                        "' is not a number of seconds in [0, 3600]");
    }
    if (seconds > 0 && service.wait_for_swap(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)))) return;
    throw ApiError(425, "invalid_request_error",
                   "a sync hot-load is in progress: retry when it is done, or send X-Flywheel-Drain-Timeout: SECONDS "
                   "to wait for it",
                   "", "swap_in_progress");
  }

  void hot_load(const httplib::Request& req, httplib::Response& res) {
    const nlohmann::json body = json_object(req, "{\"step\": N, \"mode\": \"sync\" | \"async\"}");
    const auto step = body.find("step");
    if (step == body.end() || !step->is_number_integer() || step->get<int64_t>() < 0)
      invalid_request("step", "'step' is required: the published step to load (an integer >= 0)");
    const std::string mode = body.value("mode", nlohmann::json("sync")).is_string()
                                 ? body.value("mode", std::string("sync"))
                                 : std::string("?");
    if (mode != "sync" && mode != "async")
      invalid_request("mode",
                      "'mode' must be \"sync\" (in-flight requests finish on the old weights) or \"async\" "
                      "(they continue on the new ones)");
    const nlohmann::json event =
        hot_loader->load(step->get<int64_t>(),
                         mode == "sync" ? GenerationService::SwapMode::kSync : GenerationService::SwapMode::kAsync);
    res.set_content(dump_json(event), "application/json");
  }

  void complete(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    CompletionRequest request = parse_completion_request(req.body, endpoint, options.limits);
    std::string adapter = adapter_of(request);
    wait_for_sync_swap(req);
    auto job = std::make_shared<CompletionJob>(request, model, service, std::move(adapter));
    metrics.count_tokens(static_cast<int64_t>(job->prompt_ids().size()), 0);
    if (request.stream)
      stream_response(res, job);
    else
      whole_response(res, job);
  }

  // A provided response is counted when it has been sent (or its client went away).
  httplib::ContentProviderResourceReleaser count_when_sent(const std::string& route) {
    const auto began = Clock::now();
    return [this, route, began](bool success) {
      if (!success) metrics.count_disconnect();
      metrics.count_request(route, success ? 200 : 499, std::chrono::duration<double>(Clock::now() - began).count());
    };
  }

  // SSE: a chunk per poll that produced text or tokens; [DONE] at the end.
  void stream_response(httplib::Response& res, const std::shared_ptr<CompletionJob>& job) {
    res.set_header("Cache-Control", "no-cache");
    auto first = std::make_shared<bool>(true);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job, first](size_t, httplib::DataSink& sink) {
          if (*first && job->request().endpoint == Endpoint::kChatCompletions) {
            std::vector<ChoiceDelta> opening;
            for (const ChoiceState& c : job->choices()) opening.push_back({c.index, "", {}, std::nullopt});
            if (!write(sink, sse_event(completion_chunk(*job, model, opening, true)))) return false;
            *first = false;
          }
          const std::vector<ChoiceDelta> deltas = job->poll(kStreamPoll);
          if (!job->error().empty()) return finish_failed(sink, *job);
          if (!deltas.empty()) {
            for (const ChoiceDelta& d : deltas) metrics.count_tokens(0, static_cast<int64_t>(d.tokens.size()));
            if (!write(sink, sse_event(completion_chunk(*job, model, deltas, *first)))) return false;
            *first = false;
          }
          if (!job->done()) return true;
          if (job->request().include_usage && !write(sink, sse_event(usage_chunk(*job, model)))) return false;
          if (!write(sink, kSseDone)) return false;
          sink.done();
          return true;
        },
        count_when_sent(route_of(*job)));
  }

  // One JSON body, sent when generation ends; whitespace before it meanwhile (see api_server.h).
  void whole_response(httplib::Response& res, const std::shared_ptr<CompletionJob>& job) {
    auto last_write = std::make_shared<Clock::time_point>(Clock::now());
    res.set_chunked_content_provider(
        "application/json",
        [this, job, last_write](size_t, httplib::DataSink& sink) {
          const std::vector<ChoiceDelta> deltas = job->poll(kStreamPoll);
          for (const ChoiceDelta& d : deltas) metrics.count_tokens(0, static_cast<int64_t>(d.tokens.size()));
          if (!job->error().empty()) {
            if (!write(sink, dump_json(error_body(ApiError(500, "server_error", job->error()))))) return false;
            sink.done();
            return true;
          }
          if (!job->done()) {
            if (std::chrono::duration<double>(Clock::now() - *last_write).count() < options.heartbeat_seconds)
              return true;
            *last_write = Clock::now();
            return write(sink, " ");
          }
          if (!write(sink, dump_json(completion_response(*job, model)))) return false;
          sink.done();
          return true;
        },
        count_when_sent(route_of(*job)));
  }

  static std::string route_of(const CompletionJob& job) {
    return job.request().endpoint == Endpoint::kChatCompletions ? "/v1/chat/completions" : "/v1/completions";
  }

  static bool write(httplib::DataSink& sink, const std::string& text) { return sink.write(text.data(), text.size()); }

  bool finish_failed(httplib::DataSink& sink, const CompletionJob& job) {
    if (!write(sink, sse_event(error_body(ApiError(500, "server_error", job.error()))))) return false;
    sink.done();
    return true;
  }

  // Runs a route, turning ApiError (and anything else) into an OpenAI error body; counts it.
  template <typename Route>
  httplib::Server::Handler route(const std::string& name, Route handler) {
    return [this, name, handler](const httplib::Request& req, httplib::Response& res) {
      const auto began = Clock::now();
      try {
        if (authorised(req, res)) handler(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        log_error("serve: ", req.method, " ", req.path, ": ", e.what());
        send_error(res, ApiError(500, "server_error", e.what()));
      }
      // A provided response is counted when it has been sent (count_when_sent); -1: httplib sets its 200 later.
      if (!res.content_provider_)
        metrics.count_request(name, res.status == -1 ? 200 : res.status,
                              std::chrono::duration<double>(Clock::now() - began).count());
    };
  }

  void install_routes() {
    http.Get("/health", route("/health", [](const httplib::Request&, httplib::Response& res) {
               res.set_content("{\"status\":\"ok\"}", "application/json");
             }));
    http.Get("/metrics", route("/metrics", [this](const httplib::Request&, httplib::Response& res) {
               ServerMetrics::HotLoads hot;
               if (hot_loader) hot = {hot_loader->loads(), hot_loader->failures(), hot_loader->loaded_step()};
               res.set_content(metrics.render(service.stats(), hot_loader ? &hot : nullptr),
                               "text/plain; version=0.0.4");
             }));
    http.Get("/v1/models", route("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
               res.set_content(dump_json(models_list(model, adapter_names())), "application/json");
             }));
    http.Post("/v1/completions", route("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
                complete(req, res, Endpoint::kCompletions);
              }));
    http.Post("/v1/chat/completions",
              route("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
                complete(req, res, Endpoint::kChatCompletions);
              }));
    if (hot_loader) {
      http.Post("/v1/hot_load", route("/v1/hot_load", [this](const httplib::Request& req, httplib::Response& res) {
                  hot_load(req, res);
                }));
      http.Get("/v1/ledger", route("/v1/ledger", [this](const httplib::Request&, httplib::Response& res) {
                 res.set_content(dump_json(hot_loader->ledger()), "application/json");
               }));
      http.Post("/v1/ledger/reset", route("/v1/ledger/reset", [this](const httplib::Request&, httplib::Response& res) {
                  hot_loader->reset();
                  res.set_content(dump_json(hot_loader->ledger()), "application/json");
                }));
    }
    if (adapters) {
      http.Post("/v1/load_lora_adapter",
                route("/v1/load_lora_adapter",
                      [this](const httplib::Request& req, httplib::Response& res) { load_adapter(req, res); }));
      http.Post("/v1/unload_lora_adapter",
                route("/v1/unload_lora_adapter",
                      [this](const httplib::Request& req, httplib::Response& res) { unload_adapter(req, res); }));
    }
    // What httplib answers by itself (404 no such route, 413 body too large, 400 unreadable request) gets an
    // OpenAI-style body too.
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string message = res.status == 404   ? "no route " + req.method + " " + req.path
                                  : res.status == 413 ? "the request body is too large"
                                                      : "the request could not be read";
      send_error(res, ApiError(res.status, "invalid_request_error", message));
    });
  }
};

ApiServer::ApiServer(ServerOptions options, const ServedModel& model, GenerationService& service, HotLoader* hot_loader,
                     ServedAdapters* adapters)
    : impl_(std::make_unique<Impl>(std::move(options), model, service, hot_loader, adapters)) {
  const auto threads = static_cast<size_t>(impl_->options.connection_threads);
  impl_->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->http.set_payload_max_length(static_cast<size_t>(impl_->options.max_body_bytes));
  impl_->http.set_read_timeout(30, 0);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second server bind the same port and
  // share its connections instead of failing with "in use". The socket is kept to deepen its accept queue below.
  impl_->http.set_socket_options([impl = impl_.get()](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    impl->listening_socket = sock;
  });
  impl_->install_routes();
}

ApiServer::~ApiServer() { stop(); }

int ApiServer::bind() {
  const ServerOptions& o = impl_->options;
  int port = o.port;
  if (o.port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
    FW_INPUT_CHECK(port > 0, "cannot listen on ", o.host, " (any port): is the address one of this machine's?");
  } else {
    FW_INPUT_CHECK(impl_->http.bind_to_port(o.host, o.port), "cannot listen on ", o.host, ":", o.port,
                   ": the port is in use or the address is not this machine's (--port 0 picks a free port)");
  }
  // httplib listens with a backlog of 5: a burst of clients connecting at once would overflow it. listen() again
  // on the bound socket only resizes the queue (the kernel caps it at net.core.somaxconn).
  if (impl_->listening_socket >= 0) ::listen(impl_->listening_socket, kAcceptBacklog);
  return port;
}

void ApiServer::listen() { impl_->http.listen_after_bind(); }

void ApiServer::stop() {
  if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace flywheel
