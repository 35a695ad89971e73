// Multi-LoRA serving (serve/adapter_set.h, DecodeEngine with per-sequence adapters): one decode batch mixes
// sequences of several adapters and of the base alone, and every sequence's tokens and logprobs are bit-identical
// to serving it alone; those logprobs are the trainer's own (a LoRA model with the same adapter, full-sequence
// forward); loads, replacements and evictions between decode steps leak nothing into running sequences; a pinned
// adapter is neither evicted nor unloaded; PEFT directories load like tensors do; adapters for another base are
// refused by name.
#include <gtest/gtest.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/safetensors.h"
#include "core/error.h"
#include "core/rng.h"
#include "launch/shape.h"
#include "serve/adapter_set.h"
#include "serve/decode_engine.h"
#include "test_util.h"

namespace flywheel {
namespace {

constexpr int64_t kRank = 4;

ModelConfig base_config() {
  Shape shape = load_shape(
      std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/tiny-dense.ini",
      {"--model.n_layers=2", "--model.max_seq_len=64", "--model.init_std=0.1", "--model.forward_kernels=invariant"});
  return shape.model;
}

// A trainer-side LoRA model on the base (train seed 21) whose adapter is drawn from lora.seed `seed` with B
// random too (a trained adapter): the oracle of the engine serving that adapter.
// (A Transformer points into itself: it is held by unique_ptr, never moved.)
std::unique_ptr<Transformer> trained_adapter_model(uint64_t seed) {
  ModelConfig c = base_config();
  c.lora.rank = kRank;
  c.lora.alpha = 8;
  c.lora.seed = seed;
  auto owned = std::make_unique<Transformer>(c);
  Transformer& model = *owned;
  model.initialize(21);
  CounterRng rng(RngKey{seed, RngPurpose::kDataShuffle, 5, 0});
  for (const ParamInfo& info : model.params().list())
    if (info.name.ends_with(".lora_B.weight")) {
      float* b = model.params().value(model.params().find(info.name));
      for (int64_t i = 0; i < info.numel; ++i) b[i] = static_cast<float>(0.3 * rng.normal());
    }
  return owned;
}

std::vector<NamedTensor> adapter_tensors(Transformer& model) {
  std::vector<NamedTensor> out;
  for (const ParamInfo& info : model.params().list())
    if (info.adapter) out.push_back({info.name, model.params().tensor(model.params().find(info.name))});
  return out;
}

// The engine's base: the same base weights as every trainer-side model (initialised from the same seed by name).
void load_base(DecodeEngine& engine) {
  Transformer base(base_config());
  base.initialize(21);
  engine.model().params().values() = base.params().values();
}

GenerationRequest request(int64_t id, const std::string& adapter) {
  GenerationRequest r;
  r.id = id;
  for (int64_t i = 0; i < 3 + id % 4; ++i) r.prompt.push_back(static_cast<int32_t>((17 * id + 5 * i + 3) % 250));
  r.sampling.temperature = 0.9f;
  r.sampling.max_new_tokens = 6 + id % 3;
  r.seed = 100 + static_cast<uint64_t>(id);
  r.adapter = adapter;
  return r;
}

// Runs requests to completion; `between` is called before every step (loads and unloads while serving).
std::map<int64_t, GenerationResult> serve(DecodeEngine& engine, const std::vector<GenerationRequest>& requests,
                                          const std::function<void(int)>& between = {}) {
  for (size_t i = 0; i < requests.size(); i += 2) engine.submit(requests[i]);
  std::map<int64_t, GenerationResult> out;
  size_t next = 1;
  for (int step = 0; !engine.idle() || next < requests.size(); ++step) {
    if (between) between(step);
    if (next < requests.size() && step % 2 == 1) {
      engine.submit(requests[next]);
      next += 2;
    }
    for (GenerationResult& r : engine.step()) out[r.id] = std::move(r);
  }
  return out;
}

struct Fixture {
  std::map<std::string, uint64_t> seeds = {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}};
  std::map<std::string, std::vector<NamedTensor>> tensors;
  std::map<std::string, std::unique_ptr<Transformer>> models;
  Fixture() {
    for (const auto& [name, seed] : seeds) {
      models[name] = trained_adapter_model(seed);
      tensors[name] = adapter_tensors(*models[name]);
    }
  }
  Transformer& model(const std::string& name) { return *models.at(name); }
};

void expect_same(const GenerationResult& got, const GenerationResult& alone, const std::string& what) {
  ASSERT_EQ(got.tokens, alone.tokens) << what;
  ASSERT_EQ(got.logprobs.size(), alone.logprobs.size()) << what;
  for (size_t i = 0; i < got.logprobs.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(got.logprobs[i]), std::bit_cast<uint32_t>(alone.logprobs[i]))
        << what << " token " << i;
}

TEST(MultiLora, MixedBatchesAreBitIdenticalToServingEachAdapterAloneAndToTheTrainer) {
  Fixture f;
  const std::vector<std::string> pattern = {"a", "b", "", "c", "a", "b", "c", "", "b", "a"};
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < pattern.size(); ++i) requests.push_back(request(static_cast<int64_t>(i), pattern[i]));

  // Alone: one request at a time, one adapter loaded.
  std::map<int64_t, GenerationResult> alone;
  for (const GenerationRequest& r : requests) {
    DecodeEngine engine(base_config(), 1);
    load_base(engine);
    AdapterSet adapters(engine.model().params(), 1);
    if (!r.adapter.empty()) adapters.add(r.adapter, f.tensors[r.adapter], kRank, 2.0f);
    engine.set_adapters(&adapters);
    engine.submit(r);
    while (!engine.idle())
      for (GenerationResult& g : engine.step()) alone[g.id] = std::move(g);
  }
  // The trainer's full-sequence forward with the same adapter registered in the model gives the same logprobs.
  Transformer base(base_config());
  base.initialize(21);
  for (const GenerationRequest& r : requests) {
    Transformer& trainer = r.adapter.empty() ? base : f.model(r.adapter);
    std::vector<int32_t> sequence = r.prompt;
    sequence.insert(sequence.end(), alone[r.id].tokens.begin(), alone[r.id].tokens.end());
    const std::vector<float> want =
        score_tokens(trainer, sequence, static_cast<int64_t>(r.prompt.size()), r.sampling.temperature);
    ASSERT_EQ(want.size(), alone[r.id].logprobs.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint32_t>(want[i]), std::bit_cast<uint32_t>(alone[r.id].logprobs[i]))
          << "request " << r.id << " (adapter '" << r.adapter << "') token " << i;
  }
  // Mixed: 4 slots, three adapters and the base interleaved by continuous batching.
  DecodeEngine engine(base_config(), 4);
  load_base(engine);
  AdapterSet adapters(engine.model().params(), 3);
  for (const std::string name : {"a", "b", "c"}) adapters.add(name, f.tensors[name], kRank, 2.0f);
  engine.set_adapters(&adapters);
  const std::map<int64_t, GenerationResult> mixed = serve(engine, requests);
  ASSERT_EQ(mixed.size(), requests.size());
  for (const GenerationRequest& r : requests)
    expect_same(mixed.at(r.id), alone[r.id], "request " + std::to_string(r.id) + " adapter '" + r.adapter + "'");
}

TEST(MultiLora, LoadsReplacementsAndEvictionsWhileServingLeakNothing) {
  Fixture f;
  const std::vector<std::string> pattern = {"a", "b", "a", "b", "a", "b"};
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < pattern.size(); ++i) requests.push_back(request(static_cast<int64_t>(i), pattern[i]));
  DecodeEngine quiet(base_config(), 3);
  load_base(quiet);
  AdapterSet quiet_set(quiet.model().params(), 2);
  quiet_set.add("a", f.tensors["a"], kRank, 2.0f);
  quiet_set.add("b", f.tensors["b"], kRank, 2.0f);
  quiet.set_adapters(&quiet_set);
  const std::map<int64_t, GenerationResult> want = serve(quiet, requests);

  // Capacity 3: between every step c and d come and go (d evicting c, c replacing d), never touching a or b.
  DecodeEngine engine(base_config(), 3);
  load_base(engine);
  AdapterSet adapters(engine.model().params(), 3);
  adapters.add("a", f.tensors["a"], kRank, 2.0f);
  adapters.add("b", f.tensors["b"], kRank, 2.0f);
  adapters.pin("a");  // as a client holding them would: the churn below may evict only c and d
  adapters.pin("b");
  engine.set_adapters(&adapters);
  const auto churn = [&](int step) {
    const std::string incoming = step % 2 == 0 ? "c" : "d";
    adapters.add(incoming, f.tensors[incoming], kRank, 2.0f);  // evicts the other of c, d (least recently used)
    if (step % 3 == 0) adapters.add(incoming, f.tensors["d"], kRank, 2.0f);  // replaced in place
    if (step % 5 == 4) adapters.unload(incoming);
  };
  const std::map<int64_t, GenerationResult> got = serve(engine, requests, churn);
  for (const GenerationRequest& r : requests)
    expect_same(got.at(r.id), want.at(r.id), "request " + std::to_string(r.id));
  EXPECT_GT(adapters.evictions(), 3);
  adapters.unpin("a");
  adapters.unpin("b");
}

TEST(MultiLora, PinnedAdaptersStayAndUnknownOnesAreRefused) {
  Fixture f;
  DecodeEngine engine(base_config(), 2);
  load_base(engine);
  AdapterSet adapters(engine.model().params(), 1);
  adapters.add("a", f.tensors["a"], kRank, 2.0f);
  engine.set_adapters(&adapters);
  engine.submit(request(0, "a"));
  EXPECT_THROW(adapters.unload("a"), InputError);
  EXPECT_THROW(adapters.add("b", f.tensors["b"], kRank, 2.0f), InputError);  // the one slot is pinned
  try {
    engine.submit(request(1, "zz"));
    FAIL() << "an unknown adapter was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("adapter 'zz' is not loaded (loaded: a)"), std::string::npos) << e.what();
  }
  while (!engine.idle()) engine.step();
  EXPECT_NO_THROW(adapters.add("b", f.tensors["b"], kRank, 2.0f));  // finished: a is evictable again
  EXPECT_EQ(adapters.names(), std::vector<std::string>{"b"});
}

// A PEFT adapter directory as flywheel-ckpt export --format peft writes one.
void write_peft(const std::string& dir, const std::vector<NamedTensor>& tensors, int64_t r, double alpha,
                const std::string& rename_from = "", const std::vector<int64_t>& reshape = {}) {
  std::filesystem::create_directories(dir);
  std::vector<safetensors::Source> sources;
  for (const NamedTensor& t : tensors) {
    std::string name = "base_model.model." + t.name;
    std::vector<int64_t> shape = t.tensor.shape();
    if (!rename_from.empty() && t.name == rename_from) {
      if (reshape.empty())
        name = "base_model.model.model.layers.0.mlp.aaa_proj.lora_A.weight";
      else
        shape = reshape;
    }
    const float* data = t.tensor.data<float>();
    int64_t n = 1;
    for (int64_t e : shape) n *= e;
    sources.push_back({name, shape, [data, n] { return std::vector<float>(data, data + n); }});
  }
  safetensors::write_file(dir + "/adapter_model.safetensors", sources, {});
  std::ofstream(dir + "/adapter_config.json")
      << "{\"peft_type\": \"LORA\", \"r\": " << r << ", \"lora_alpha\": " << alpha << ", \"use_rslora\": false}";
}

TEST(MultiLora, PeftDirectoriesLoadAndAdaptersForAnotherBaseAreRefusedByName) {
  Fixture f;
  testing::TempDir dir;
  const std::string good = (dir.path / "good").string();
  write_peft(good, f.tensors["a"], kRank, 8.0);
  std::vector<GenerationRequest> requests = {request(0, "peft"), request(1, "tensors")};
  DecodeEngine engine(base_config(), 2);
  load_base(engine);
  AdapterSet adapters(engine.model().params(), 2);
  adapters.load_peft("peft", good);
  adapters.add("tensors", f.tensors["a"], kRank, 2.0f);  // lora_alpha 8 / r 4 = 2
  engine.set_adapters(&adapters);
  requests[1].prompt = requests[0].prompt;
  requests[1].seed = requests[0].seed;
  requests[1].sampling = requests[0].sampling;
  const std::map<int64_t, GenerationResult> got = serve(engine, requests);
  expect_same(got.at(0), got.at(1), "the PEFT directory against the same tensors");

  const auto refused = [&](const std::string& sub, const std::string& needle) {
    try {
      adapters.load_peft("bad", (dir.path / sub).string());
      ADD_FAILURE() << sub << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string first = "model.layers.0.mlp.down_proj.lora_A.weight";  // [4, 384]; the modules sort first
  write_peft((dir.path / "module").string(), f.tensors["a"], kRank, 8.0, first);
  refused("module", "adapts model.layers.0.mlp.aaa_proj, which the served base has no matrix of");
  write_peft((dir.path / "shape").string(), f.tensors["a"], kRank, 8.0, first, {kRank, 96});
  refused("shape",
          "has shape [4, 96]; the served base's model.layers.0.mlp.down_proj.weight is [128, 384] and r = 4, "
          "so it needs [4, 384] (an adapter for another base?)");
  write_peft((dir.path / "rank").string(), f.tensors["a"], 8, 8.0);
  refused("rank", "r = 8, so it needs [8, ");
  refused("missing", "cannot read");
  EXPECT_EQ(adapters.names(), (std::vector<std::string>{"peft", "tensors"}));  // failed loads changed nothing
}

}  // namespace
}  // namespace flywheel
