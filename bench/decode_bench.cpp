// Decode throughput of the serving engine against the memory-bandwidth bound, same run.
//
// A decode step reads every weight once (fp32: 4 bytes x parameters; with tied embeddings the LM
// head is the embedding matrix), so at batch B the bound is
//   tokens/s <= B x bandwidth / weight bytes
// while the batch is small enough to stay bandwidth-bound. Bandwidth is measured here, in this run,
// by summing a buffer 4x larger than the last-level cache with the same threads the engine uses.
//
//   decode_bench [--shape FILE] [--batches 1,32] [--prompt 16] [--new 32] [--threads N] [--adapters K --lora-rank R]
//                [--group G --group-prompt P]
//
// With --group G (RL rollouts: G samples of each prompt): for each batch size B, B / G prompts of P tokens with G
// samples each run to the end twice in the same run, prefilling each sample's prompt separately and sharing one
// prefill per prompt (DecodeEngine::set_shared_prefill), and the rollout tokens/s of both (prefill included) are
// printed with their ratio.
//
// With --adapters K (multi-LoRA, serve/adapter_set.h): K random rank-R adapters on every linear layer are loaded
// beside the base, and each batch size runs three ways in the same run: the base alone, every sequence on one
// adapter, and the sequences spread round-robin over the K adapters (one decode batch mixing them).
#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <omp.h>

#include "bench_args.h"
#include "core/buffer.h"
#include "core/threads.h"
#include "launch/shape.h"
#include "serve/decode_engine.h"

using namespace flywheel;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Read bandwidth in bytes/s: best of 5 passes summing a 1 GiB float buffer (far beyond any cache).
double read_bandwidth() {
  const int64_t n = (int64_t{1} << 30) / sizeof(float);
  Buffer<float> data(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(i & 7);
  double best = 0, sink = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    double total = 0;
    // 64 independent float partial sums per thread (vectorised by GCC): the adds are never the
    // bottleneck, so the loop runs at the rate memory delivers the bytes.
#pragma omp parallel reduction(+ : total)
    {
      float partial[64] = {};
#pragma omp for schedule(static)
      for (int64_t block = 0; block < n / 64; ++block)
        for (int l = 0; l < 64; ++l) partial[l] += data[block * 64 + l];
      for (float p : partial) total += p;
    }
    best = std::max(best, static_cast<double>(n * sizeof(float)) / seconds_since(start));
    sink += total;
  }
  if (sink < 0) std::printf("%f\n", sink);  // keeps the sums alive
  return best;
}

struct DecodeFigures {
  double tokens_per_second = 0;
  int64_t tokens = 0;
};

// B requests of `prompt` tokens: prefill on admission, then `new_tokens` decode steps; the rate counts
// only decode steps in which all B sequences are active (steady state).
// adapters: the adapter of sequence b is adapters[b % size] (empty: the base alone).
DecodeFigures measure(DecodeEngine& engine, int64_t batch, int64_t prompt, int64_t new_tokens,
                      const std::vector<std::string>& adapters = {}) {
  for (int64_t b = 0; b < batch; ++b) {
    GenerationRequest r;
    r.id = b;
    if (!adapters.empty()) r.adapter = adapters[static_cast<size_t>(b) % adapters.size()];
    r.seed = 1000 + static_cast<uint64_t>(b);
    for (int64_t t = 0; t < prompt; ++t) r.prompt.push_back(static_cast<int32_t>((b * 31 + t * 7) % 256));
    r.sampling.max_new_tokens = new_tokens;
    engine.submit(r);
  }
  engine.step();  // admission + prefill + first token
  DecodeFigures f;
  const auto start = std::chrono::steady_clock::now();
  int64_t steps = 0;
  while (engine.active() == batch && steps < new_tokens - 2) {
    engine.step();
    ++steps;
  }
  const double elapsed = seconds_since(start);
  f.tokens = steps * batch;
  f.tokens_per_second = static_cast<double>(f.tokens) / elapsed;
  while (!engine.idle()) engine.step();
  return f;
}

// K adapters of rank r on every linear layer (all-linear), A as initialised, B random (a trained adapter).
void load_random_adapters(AdapterSet& set, const ModelConfig& base, int64_t count, int64_t rank) {
  for (int64_t k = 0; k < count; ++k) {
    ModelConfig c = base;
    c.lora.rank = rank;
    c.lora.alpha = 2.0 * static_cast<double>(rank);
    c.lora.seed = 100 + static_cast<uint64_t>(k);
    const auto model = std::make_unique<Transformer>(c);
    model->initialize(1);
    std::vector<NamedTensor> tensors;
    for (const ParamInfo& info : model->params().list()) {
      if (!info.adapter) continue;
      float* v = model->params().value(model->params().find(info.name));
      if (info.name.ends_with(".lora_B.weight"))
        for (int64_t i = 0; i < info.numel; ++i) v[i] = 0.01f * static_cast<float>((i * 7 + k) % 13 - 6);
      tensors.push_back({info.name, model->params().tensor(model->params().find(info.name))});
    }
    set.add("adapter-" + std::to_string(k), tensors, rank, c.lora.scale());
  }
}

// Rollout tokens/s of B sequences = B / G prompts x G samples, prefill included.
double rollout_tokens_per_second(DecodeEngine& engine, int64_t batch, int64_t group, int64_t prompt, int64_t new_tokens,
                                 bool shared) {
  engine.set_shared_prefill(shared);
  for (int64_t b = 0; b < batch; ++b) {
    GenerationRequest r;
    r.id = b;
    r.seed = 1000 + static_cast<uint64_t>(b);
    for (int64_t t = 0; t < prompt; ++t) r.prompt.push_back(static_cast<int32_t>(((b / group) * 31 + t * 7) % 256));
    r.sampling.max_new_tokens = new_tokens;
    r.sampling.top_k = 50;
    engine.submit(r);
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  while (!engine.idle()) {
    engine.step();
    tokens += static_cast<int64_t>(engine.sampled().size());
  }
  engine.set_shared_prefill(true);
  return static_cast<double>(tokens) / seconds_since(start);
}

int run(int argc, char** argv) {
  CommandLine command("decode_bench",
                      "Decode tokens/s of the serving engine (KV cache, batch-invariant kernels) at each batch size,\n"
                      "against batch x bandwidth / weight bytes with the bandwidth measured in the same run.");
  command
      .option<std::string>("shape", "FILE", "model shape (INI)",
                           std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/gpt2-124m.ini")
      .option<std::string>("batches", "LIST", "batch sizes, comma-separated", "1,32")
      .option<int64_t>("prompt", "N", "prompt tokens per sequence", "16")
      .option<int64_t>("new", "N", "new tokens per sequence", "32")
      .option<int>("threads", "N", "threads; 0: all cores", "0")
      .option<int64_t>("adapters", "K", "multi-LoRA: K random adapters; 0: none", "0")
      .option<int64_t>("lora-rank", "R", "rank of those adapters", "16")
      .option<int64_t>("group", "G", "RL rollouts: G samples per prompt, shared vs separate prefill; 0: skip", "0")
      .option<int64_t>("group-prompt", "P", "prompt tokens of those rollouts", "128");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) {
    std::fputs(command.help().c_str(), stdout);
    return 0;
  }
  const std::vector<int64_t> batches = bench::parse_int_list(args.get<std::string>("batches"));
  const int64_t prompt = args.get<int64_t>("prompt"), new_tokens = args.get<int64_t>("new");
  const int threads = args.get<int>("threads");
  const Shape shape = load_shape(args.get<std::string>("shape"), {});
  set_thread_count(threads > 0 ? threads : default_thread_count(1));
  DecodeEngine engine(shape.model, *std::max_element(batches.begin(), batches.end()));
  engine.model().initialize(shape.train.seed);
  const double weight_bytes = static_cast<double>(engine.model().params().numel()) * sizeof(float);
  const double bandwidth = read_bandwidth();
  std::printf("shape %s: %.1fM parameters, %.0f MiB of fp32 weights read per decode step; %d threads\n",
              shape.name.c_str(), engine.model().params().numel() / 1e6, weight_bytes / 1048576.0, thread_count());
  std::printf("read bandwidth (same run, 1 GiB sum): %.2f GB/s\n", bandwidth / 1e9);
  // At larger batches the bound stops being bandwidth: 2 x parameters FLOP per token make the
  // step compute-bound, so the achieved matmul rate is printed too (the invariant kernel's own
  // ceiling is measured against OpenBLAS in docs/benchmarks.md).
  std::printf("%6s %14s %16s %8s %12s\n", "batch", "tokens/s", "bound tokens/s", "ratio", "GFLOP/s");
  for (int64_t b : batches) {
    const DecodeFigures f = measure(engine, b, prompt, new_tokens);
    const double bound = static_cast<double>(b) * bandwidth / weight_bytes;
    const double gflops = f.tokens_per_second * 2.0 * static_cast<double>(engine.model().params().numel()) / 1e9;
    std::printf("%6lld %14.1f %16.1f %8.3f %12.1f\n", static_cast<long long>(b), f.tokens_per_second, bound,
                f.tokens_per_second / bound, gflops);
  }
  if (const int64_t group = args.get<int64_t>("group"); group > 0) {
    const int64_t group_prompt = args.get<int64_t>("group-prompt");
    std::printf("\nRL rollouts: %lld samples per prompt of %lld tokens, %lld new tokens each (top_k 50)\n",
                static_cast<long long>(group), static_cast<long long>(group_prompt),
                static_cast<long long>(new_tokens));
    std::printf("%6s %18s %18s %8s\n", "batch", "separate tok/s", "shared tok/s", "ratio");
    for (int64_t b : batches) {
      if (b % group != 0) continue;
      const double separate = rollout_tokens_per_second(engine, b, group, group_prompt, new_tokens, false);
      const double shared = rollout_tokens_per_second(engine, b, group, group_prompt, new_tokens, true);
      std::printf("%6lld %18.1f %18.1f %8.3f\n", static_cast<long long>(b), separate, shared, shared / separate);
    }
  }
  const int64_t count = args.get<int64_t>("adapters");
  if (count <= 0) return 0;
  const int64_t rank = args.get<int64_t>("lora-rank");
  AdapterSet adapters(engine.model().params(), count);
  load_random_adapters(adapters, shape.model, count, rank);
  engine.set_adapters(&adapters);
  std::vector<std::string> all = adapters.names(), one = {all.front()};
  std::printf("\nmulti-LoRA: %lld adapters of rank %lld on every linear layer\n", static_cast<long long>(count),
              static_cast<long long>(rank));
  std::printf("%6s %14s %14s %14s %12s %12s\n", "batch", "base tok/s", "1 adapter", "mixed", "1/base", "mixed/1");
  for (int64_t b : batches) {
    const DecodeFigures base = measure(engine, b, prompt, new_tokens);
    const DecodeFigures single = measure(engine, b, prompt, new_tokens, one);
    const DecodeFigures mixed = measure(engine, b, prompt, new_tokens, all);
    std::printf("%6lld %14.1f %14.1f %14.1f %12.3f %12.3f\n", static_cast<long long>(b), base.tokens_per_second,
                single.tokens_per_second, mixed.tokens_per_second, single.tokens_per_second / base.tokens_per_second,
                mixed.tokens_per_second / single.tokens_per_second);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench::guarded_main("decode_bench", [&] { return run(argc, argv); }); }
