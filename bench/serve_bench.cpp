// The OpenAI endpoint's cost over the decode engine it serves, same run: for each number of concurrent streams B,
// B requests (prompt token ids, max_tokens new tokens, ignore_eos, top_k sampling) go
//   1. straight into a DecodeEngine, stepped to the end on this thread (the in-process baseline), and
//   2. over loopback HTTP to an ApiServer on the same engine (`flywheel serve`'s code path: GenerationService,
//      CompletionJob, SSE streaming), one client thread per stream,
// and the bench prints time to first token, mean inter-token latency per stream, total tokens/s of both, and
// HTTP / in-process as a ratio (1.0: the endpoint costs nothing). Tokens/s counts every generated token over the wall
// time from the first request to the last token, prefill included, the same way for both.
//
//   serve_bench [--shape FILE] [--streams 1,8,32] [--prompt 16] [--new 32] [--threads N]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_args.h"
#include "core/threads.h"
#include "data/text_codec.h"
#include "deploy/api_server.h"
#include "deploy/generation_service.h"
#include "launch/shape.h"
#include "serve/decode_engine.h"

using namespace flywheel;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

constexpr int64_t kTopK = 50;

std::vector<int32_t> prompt_ids(int64_t stream, int64_t length) {
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < length; ++t) ids.push_back(static_cast<int32_t>((stream * 31 + t * 7) % 256));
  return ids;
}

double in_process_tokens_per_second(DecodeEngine& engine, int64_t streams, int64_t prompt, int64_t new_tokens) {
  const auto start = Clock::now();
  for (int64_t s = 0; s < streams; ++s) {
    GenerationRequest r;
    r.id = s;
    r.prompt = prompt_ids(s, prompt);
    r.seed = 1000 + static_cast<uint64_t>(s);
    r.sampling.max_new_tokens = new_tokens;
    r.sampling.top_k = kTopK;
    engine.submit(r);
  }
  int64_t tokens = 0;
  while (!engine.idle()) {
    engine.step();
    tokens += static_cast<int64_t>(engine.sampled().size());
  }
  return static_cast<double>(tokens) / seconds_between(start, Clock::now());
}

struct StreamTiming {
  double first_token = 0;  // seconds after the request was sent
  double last_token = 0;
  int64_t tokens = 0;
  bool complete = false;  // saw [DONE]
};

// One streaming completion over HTTP; the SSE events are split at blank lines and their token_ids counted.
StreamTiming http_stream(int port, const std::string& model, int64_t stream, int64_t prompt, int64_t new_tokens,
                         Clock::time_point start) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(600, 0);
  const nlohmann::json body = {{"model", model},           {"prompt", prompt_ids(stream, prompt)},
                               {"max_tokens", new_tokens}, {"ignore_eos", true},
                               {"seed", 1000 + stream},    {"top_k", kTopK},
                               {"stream", true},           {"return_token_ids", true}};
  StreamTiming timing;
  std::string pending;
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/completions";
  request.body = body.dump();
  request.set_header("Content-Type", "application/json");
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    pending.append(data, length);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos; pending.erase(0, end + 2)) {
      const std::string event = pending.substr(0, end);
      if (event.rfind("data: ", 0) != 0) continue;
      if (event == "data: [DONE]") {
        timing.complete = true;
        continue;
      }
      const nlohmann::json chunk = nlohmann::json::parse(event.substr(6));
      int64_t arrived = 0;
      for (const auto& choice : chunk["choices"])
        arrived += static_cast<int64_t>(choice.value("token_ids", nlohmann::json::array()).size());
      if (arrived == 0) continue;
      const double now = seconds_between(start, Clock::now());
      if (timing.tokens == 0) timing.first_token = now;
      timing.last_token = now;
      timing.tokens += arrived;
    }
    return true;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  client.send(request, response, error);
  if (!timing.complete || timing.tokens != new_tokens)
    std::fprintf(stderr, "stream %lld: %lld tokens, %s, HTTP %d, error %d, left %s\n", static_cast<long long>(stream),
                 static_cast<long long>(timing.tokens), timing.complete ? "[DONE]" : "no [DONE]", response.status,
                 static_cast<int>(error), pending.substr(0, 200).c_str());
  return timing;
}

int run(int argc, char** argv) {
  CommandLine command("serve_bench",
                      "Time to first token, inter-token latency and tokens/s of `flywheel serve`'s OpenAI endpoint at\n"
                      "1, 8 and 32 concurrent streams, against the in-process decode engine at the same batch.");
  command
      .option<std::string>("shape", "FILE", "model shape (INI)",
                           std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/gpt2-124m.ini")
      .option<std::string>("streams", "LIST", "concurrent streams, comma-separated", "1,8,32")
      .option<int64_t>("prompt", "N", "prompt tokens per stream", "16")
      .option<int64_t>("new", "N", "new tokens per stream", "32")
      .option<int>("threads", "N", "compute threads; 0: all cores", "0");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) {
    std::fputs(command.help().c_str(), stdout);
    return 0;
  }
  const std::vector<int64_t> streams = bench::parse_int_list(args.get<std::string>("streams"));
  const int64_t prompt = args.get<int64_t>("prompt"), new_tokens = args.get<int64_t>("new");
  const Shape shape = load_shape(args.get<std::string>("shape"), {});
  const int threads = args.get<int>("threads");
  set_thread_count(threads > 0 ? threads : default_thread_count(1));
  const int64_t max_batch = *std::max_element(streams.begin(), streams.end());
  DecodeEngine engine(shape.model, max_batch);
  engine.model().initialize(shape.train.seed);

  ServedModel served;
  served.id = "bench";
  served.codec = TextCodec::open(DataConfig{});  // the byte tokenizer: prompts go in as token ids
  served.max_seq_len = shape.model.max_seq_len;
  served.vocab_size = shape.model.vocab_size;
  served.max_prompt_tokens = served.max_seq_len - 1;
  std::printf("shape %s: %.1fM parameters; %d threads; prompt %lld, %lld new tokens per stream, top_k %lld\n",
              shape.name.c_str(), engine.model().params().numel() / 1e6, thread_count(), static_cast<long long>(prompt),
              static_cast<long long>(new_tokens), static_cast<long long>(kTopK));
  std::printf("%8s %14s %14s %12s %12s %12s %10s\n", "streams", "in-proc tok/s", "HTTP tok/s", "HTTP/in-proc",
              "TTFT ms", "ITL ms", "complete");
  for (int64_t b : streams) {
    const double baseline = in_process_tokens_per_second(engine, b, prompt, new_tokens);
    GenerationService service(engine, 1024);
    ServerOptions options;
    options.port = 0;
    ApiServer server(options, served, service);
    const int port = server.bind();
    std::thread listener([&] { server.listen(); });
    std::vector<StreamTiming> timings(static_cast<size_t>(b));
    const auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int64_t s = 0; s < b; ++s)
      clients.emplace_back([&, s] { timings[s] = http_stream(port, served.id, s, prompt, new_tokens, start); });
    for (std::thread& t : clients) t.join();
    const double wall = seconds_between(start, Clock::now());
    server.stop();
    listener.join();
    service.stop();
    int64_t tokens = 0, complete = 0;
    double ttft = 0, itl = 0;
    for (const StreamTiming& t : timings) {
      tokens += t.tokens;
      complete += t.complete && t.tokens == new_tokens;
      ttft += t.first_token / static_cast<double>(b);
      if (t.tokens > 1)
        itl += (t.last_token - t.first_token) / static_cast<double>(t.tokens - 1) / static_cast<double>(b);
    }
    const double http = static_cast<double>(tokens) / wall;
    std::printf("%8lld %14.1f %14.1f %12.3f %12.1f %12.1f %6lld/%lld\n", static_cast<long long>(b), baseline, http,
                http / baseline, ttft * 1e3, itl * 1e3, static_cast<long long>(complete), static_cast<long long>(b));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::guarded_main("serve_bench", [&] { return run(argc, argv); });
}
