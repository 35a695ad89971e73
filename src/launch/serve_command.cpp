// `flywheel serve --model DIR [--step N] [--host H] [--port P] [--api-key KEY] ...`: the OpenAI-compatible endpoint
// (deploy/api_server.h, docs/serving.md) over a Hugging Face model directory or a committed step of a run.
#include "launch/serve_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>
#include <thread>

#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/threads.h"
#include "deploy/api_server.h"
#include "deploy/hot_load.h"
#include "deploy/served_adapters.h"
#include "launch/command_line.h"
#include "launch/hf_shape.h"
#include "launch/shape.h"
#include "serve/adapter_set.h"
#include "serve/decode_engine.h"
#include "train/hf_import.h"
#include "train/run_weights.h"

namespace flywheel {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDefaultMaxSeqLen = 4096;  // an HF model's context is capped here unless --max-seq-len says more

CommandLine serve_command_line() {
  CommandLine command(
      "flywheel serve",
      "Serves a model over HTTP with the OpenAI API: GET /v1/models, POST /v1/completions and\n"
      "/v1/chat/completions (streaming with server-sent events, logprobs, and return_token_ids for\n"
      "exact token ids and sampling logprobs), GET /health and GET /metrics (Prometheus). Requests from\n"
      "every client share one continuous-batching decode engine with the batch-invariant kernels of a\n"
      "serving replica. Runs as one process; stops on SIGINT or SIGTERM. docs/serving.md explains it.");
  command
      .required<std::string>("model", "DIR",
                             "a Hugging Face model directory (config.json, *.safetensors, "
                             "tokenizer.json) or a run directory (shape.ini, step-N/)",
                             "checkpoints/default")
      .option<int64_t>("step", "N", "with a run directory: serve step N (default: the newest committed)")
      .option<std::string>("served-model-name", "NAME", "the model's name in the API (default: DIR's name)")
      .option<std::string>("host", "ADDR", "address to listen on; anything but loopback needs an API key", "127.0.0.1")
      .option<int64_t>("port", "N", "port to listen on (0: any free one; the bound port is printed)", "8000")
      .option<std::string>("api-key", "KEY",
                           "require 'Authorization: Bearer KEY' (default: $FLYWHEEL_API_KEY; none if unset)")
      .option<int64_t>("max-batch", "N", "sequences decoded at once (KV-cache slots)", "8")
      .option<int64_t>("max-queue", "N", "requests waiting for a slot before new ones get 429", "256")
      .option<int64_t>("max-seq-len", "N",
                       "context length: prompt + completion tokens (default: the model's, at "
                       "most 4096 for a Hugging Face model)")
      .option<int64_t>("max-prompt-tokens", "N", "longest prompt accepted (default: the context length - 1)")
      .option<int64_t>("max-n", "N", "largest n (choices per request)", "16")
      .option<int64_t>("max-body-bytes", "N", "largest request body", "1048576")
      .option<int64_t>("connections", "N", "connections served at once (each open stream holds one)", "64")
      .option<int64_t>("threads", "N", "compute threads of the decode engine (default: the cores)")
      .option<std::string>("publish-dir", "DIR",
                           "enable POST /v1/hot_load of fp32 snapshots published in DIR "
                           "(a run's publish/, or flywheel-ckpt publish --out DIR)")
      .option<std::string>("ledger", "FILE", "with --publish-dir: append each hot-load to FILE (ledger.jsonl)")
      .repeatable("lora", "NAME=DIR",
                  "serve the PEFT adapter in DIR as model NAME (repeatable; more can be loaded "
                  "with POST /v1/load_lora_adapter)")
      .option<int64_t>("max-loras", "N",
                       "LoRA adapters held in memory at once (least recently used evicted and "
                       "reloaded on demand); 0: LoRA serving off unless --lora is given",
                       "0")
      .notes(
          "Example: flywheel serve --model checkpoints/default --port 8000, then\n"
          "  curl -s localhost:8000/v1/completions -H 'Content-Type: application/json' \\\n"
          "    -d '{\"model\": \"default\", \"prompt\": \"12+7=\", \"max_tokens\": 8}'");
  return command;
}

int64_t positive(const ParsedArgs& args, const std::string& name) {
  const int64_t v = args.get<int64_t>(name);
  if (v < 1) usage_error("--", name, " = ", v, ": needs a positive number");
  return v;
}

// What --model names, resolved: the architecture, the tokenizer, and how to fill the weights.
struct ModelSource {
  ModelConfig config;
  DataConfig text;
  std::string describe;
  int64_t step = 0;  // a run's checkpoint step: the snapshot step its tokens report
  std::function<void(Transformer&)> load;
};

ModelSource hf_source(const std::string& dir, const ParsedArgs& args) {
  ModelSource source;
  std::set<std::string> explicit_keys;
  if (args.has("max-seq-len")) {
    source.config.max_seq_len = positive(args, "max-seq-len");
    explicit_keys.insert("model.max_seq_len");
  }
  resolve_hf_model(dir, source.config, explicit_keys,
                   [](const std::string&) { return std::string("--max-seq-len: "); });
  if (!args.has("max-seq-len") && source.config.max_seq_len > kDefaultMaxSeqLen) {
    log_info("serve: context capped at ", kDefaultMaxSeqLen, " tokens of the model's ", source.config.max_seq_len,
             " (--max-seq-len sets it)");
    source.config.max_seq_len = kDefaultMaxSeqLen;
  }
  source.text.tokenizer = "auto";  // the directory's tokenizer.json (chat_format auto: its chat template)
  resolve_tokenizer(source.text, dir);
  source.describe = "Hugging Face model " + dir;
  source.load = [dir, tied = source.config.tie_embeddings](Transformer& model) {
    load_hf_weights(model.params(), dir, tied);
  };
  return source;
}

ModelSource run_source(const std::string& dir, const ParsedArgs& args) {
  const Shape shape = load_shape(dir + "/shape.ini", {}, FromHf::kAsRecorded);
  ModelSource source;
  source.config = shape.model;
  source.config.validate();
  const std::vector<int64_t> committed = committed_steps(dir);
  FW_INPUT_CHECK(!committed.empty(), "--model ", dir, " is a run directory with no committed checkpoint yet ",
                 "(no step-N/): train it first, or wait for its first checkpoint");
  const int64_t step = args.find<int64_t>("step").value_or(committed.back());
  FW_INPUT_CHECK(std::find(committed.begin(), committed.end(), step) != committed.end(), "--step ", step,
                 " is not a committed checkpoint of ", dir, " (committed: ", committed.front(), " .. ",
                 committed.back(), "; flywheel-ckpt inspect ", dir, " lists them)");
  if (args.has("max-seq-len")) {
    const int64_t length = positive(args, "max-seq-len");
    FW_INPUT_CHECK(length <= source.config.max_seq_len, "--max-seq-len ", length, " is longer than the run's ",
                   "model.max_seq_len = ", source.config.max_seq_len, " (its positions end there)");
    source.config.max_seq_len = length;
  }
  source.text = shape.data;
  const std::string kept = dir + "/hf";
  resolve_tokenizer(source.text, fs::exists(kept + "/tokenizer.json") ? kept : shape.train.from_hf);
  source.describe = "run " + dir + " step " + std::to_string(step);
  source.step = step;
  source.load = [dir, step, train = shape.train](Transformer& model) {
    bool base_loaded = false;
    load_run_step(model.params(), model.config(), train, dir, step, base_loaded);
  };
  return source;
}

ModelSource model_source(const std::string& dir, const ParsedArgs& args) {
  FW_INPUT_CHECK(fs::is_directory(dir), "--model ", dir, " is not a directory: give a Hugging Face model directory ",
                 "or a run directory");
  if (fs::exists(dir + "/shape.ini")) return run_source(dir, args);
  FW_INPUT_CHECK(!args.has("step"), "--step is for a run directory; ", dir, " has no shape.ini");
  FW_INPUT_CHECK(fs::exists(dir + "/config.json"), "--model ", dir, " holds neither shape.ini (a run directory) ",
                 "nor config.json (a Hugging Face model directory)");
  return hf_source(dir, args);
}

ServerOptions server_options(const ParsedArgs& args) {
  ServerOptions o;
  o.host = args.get<std::string>("host");
  const int64_t port = args.get<int64_t>("port");
  if (port < 0 || port > 65535) usage_error("--port = ", port, ": must be in 0 .. 65535");
  o.port = static_cast<int>(port);
  if (const char* env = std::getenv("FLYWHEEL_API_KEY")) o.api_key = env;
  if (args.has("api-key")) o.api_key = args.get<std::string>("api-key");
  FW_INPUT_CHECK(!o.api_key.empty() || is_loopback_host(o.host), "--host ", o.host,
                 " is reachable from other machines, and no API key is set: give --api-key KEY (or set ",
                 "FLYWHEEL_API_KEY), or serve on 127.0.0.1");
  o.max_body_bytes = positive(args, "max-body-bytes");
  o.connection_threads = positive(args, "connections");
  o.limits.max_n = positive(args, "max-n");
  return o;
}

// --lora NAME=DIR, each.
std::vector<std::pair<std::string, std::string>> lora_specs(const ParsedArgs& args) {
  std::vector<std::pair<std::string, std::string>> specs;
  for (const std::string& spec : args.list("lora")) {
    const size_t eq = spec.find('=');
    if (eq == 0 || eq == std::string::npos || eq + 1 == spec.size())
      usage_error("--lora '", spec, "': expected NAME=DIR (a PEFT adapter directory)");
    specs.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
  }
  return specs;
}

std::string model_name(const std::string& dir, const ParsedArgs& args) {
  if (args.has("served-model-name")) return args.get<std::string>("served-model-name");
  const fs::path path = fs::path(dir).lexically_normal();
  const std::string name = (path.has_filename() ? path.filename() : path.parent_path().filename()).string();
  return name.empty() ? "model" : name;
}

ServedModel served_model(const ModelSource& source, const std::string& dir, const ParsedArgs& args) {
  ServedModel served;
  served.id = model_name(dir, args);
  served.codec = TextCodec::open(source.text);
  served.codec->check_model_vocabulary(source.config.vocab_size);
  served.max_seq_len = source.config.max_seq_len;
  served.vocab_size = source.config.vocab_size;
  served.max_prompt_tokens = args.find<int64_t>("max-prompt-tokens").value_or(served.max_seq_len - 1);
  FW_INPUT_CHECK(served.max_prompt_tokens >= 1 && served.max_prompt_tokens < served.max_seq_len, "--max-prompt-tokens ",
                 served.max_prompt_tokens, ": must be in 1 .. ", served.max_seq_len - 1, " (the context length - 1)");
  served.created = static_cast<int64_t>(std::time(nullptr));
  return served;
}

// Multi-LoRA serving: on with --lora or --max-loras > 0; the --lora adapters loaded.
struct Adapters {
  std::unique_ptr<AdapterSet> set;
  std::unique_ptr<ServedAdapters> served;
};

Adapters serve_adapters(const ParsedArgs& args, const std::vector<std::pair<std::string, std::string>>& loras,
                        const ModelSource& source, const ServedModel& served, DecodeEngine& engine,
                        GenerationService& service) {
  Adapters adapters;
  const int64_t max_loras = std::max<int64_t>(args.get<int64_t>("max-loras"), loras.empty() ? 0 : 4);
  if (max_loras == 0) return adapters;
  FW_INPUT_CHECK(!source.config.lora.enabled(), "--lora: ", source.describe, " is a LoRA run itself; serve its ",
                 "base model directory with --lora NAME=<its adapter, flywheel-ckpt export --format peft> instead");
  adapters.set = std::make_unique<AdapterSet>(engine.model().params(), max_loras);
  engine.set_adapters(adapters.set.get());
  adapters.served = std::make_unique<ServedAdapters>(*adapters.set, service);
  for (const auto& [name, dir] : loras) {
    FW_INPUT_CHECK(name != served.id, "--lora ", name, ": that is the base model's name; choose another");
    try {
      adapters.served->load(name, dir);
    } catch (const ApiError& e) {
      FW_INPUT_THROW("--lora ", name, "=", dir, ": ", e.what());
    }
  }
  return adapters;
}

// Listens until SIGINT or SIGTERM, then stops taking connections.
void serve_until_signal(ApiServer& server, const ServerOptions& options, const ServedModel& served) {
  const int port = server.bind();
  install_preemption_handlers(-1, ": stopping the server (a second signal stops at once)");
  std::thread listener([&] { server.listen(); });
  std::printf("flywheel serve: model '%s' at http://%s:%d/v1%s\n", served.id.c_str(), options.host.c_str(), port,
              options.api_key.empty() ? "" : " (API key required)");
  std::fflush(stdout);
  while (!preemption_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.stop();
  listener.join();
}

}  // namespace

int serve_command(const Runtime& rt, int argc, char** argv) {
  const CommandLine command = serve_command_line();
  const ParsedArgs args = command.parse(argc - 1, argv + 1);  // argv[1] is "serve"
  if (args.help()) {
    if (rt.rank == 0) std::cout << command.help();
    return 0;
  }
  FW_INPUT_CHECK(rt.world_size == 1, "flywheel serve runs as one process (this job has ", rt.world_size,
                 " ranks); start one server per port");
  const std::string dir = args.get<std::string>("model");
  ServerOptions options = server_options(args);
  FW_INPUT_CHECK(!args.has("ledger") || args.has("publish-dir"), "--ledger records hot-loads: it needs --publish-dir");
  const std::vector<std::pair<std::string, std::string>> loras = lora_specs(args);
  ModelSource source = model_source(dir, args);
  set_thread_count(args.has("threads") ? positive(args, "threads") : default_thread_count(1));

  const ServedModel served = served_model(source, dir, args);
  const auto began = std::chrono::steady_clock::now();
  DecodeEngine engine(source.config, positive(args, "max-batch"));  // fp32 weights
  source.load(engine.model());
  engine.set_snapshot_step(source.step);
  log_info("serve: loaded ", source.describe, " in ",
           format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count()), " (",
           served.codec->describe(), ", context ", served.max_seq_len, ", batch ", engine.max_batch(), ")");

  GenerationService service(engine, positive(args, "max-queue"));
  std::unique_ptr<HotLoader> hot_loader;
  if (args.has("publish-dir")) {
    const std::string publish = args.get<std::string>("publish-dir");
    FW_INPUT_CHECK(fs::is_directory(publish), "--publish-dir ", publish, " is not a directory");
    hot_loader = std::make_unique<HotLoader>(publish, engine, service, args.find<std::string>("ledger").value_or(""));
  }
  const Adapters adapters = serve_adapters(args, loras, source, served, engine, service);
  ApiServer server(options, served, service, hot_loader.get(), adapters.served.get());
  serve_until_signal(server, options, served);
  service.stop();
  return kExitOk;
}

}  // namespace flywheel
