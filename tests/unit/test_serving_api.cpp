// The OpenAI-compatible endpoint's pieces below HTTP (deploy/): request parsing (every refusal names its field;
// fuzzed bodies never escape as anything but an ApiError), the text stream's stop strings, and the generation
// service, whose sequences served together get the bits each gets alone.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "data/text_codec.h"
#include "data/tokenizer.h"
#include "deploy/completion_job.h"
#include "deploy/generation_service.h"
#include "deploy/openai_protocol.h"
#include "deploy/text_stream.h"
#include "launch/shape.h"
#include "serve/decode_engine.h"

namespace flywheel {
namespace {

// The field an invalid body is refused for ("" when it parses).
std::string refused_param(const std::string& body, Endpoint endpoint = Endpoint::kCompletions) {
  try {
    parse_completion_request(body, endpoint, RequestLimits{});
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_FALSE(std::string(e.what()).empty());
    return e.param.empty() ? "(none)" : e.param;
  }
  return "";
}

TEST(OpenAiRequest, ReadsCompletionFields) {
  const CompletionRequest r = parse_completion_request(
      R"({"model": "m", "prompt": "hi", "max_tokens": 5, "n": 2, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
          "seed": 7, "stop": ["\n", "END"], "logprobs": 3, "stream": true, "stream_options": {"include_usage": true},
          "return_token_ids": true, "user": "ignored", "presence_penalty": 0})",
      Endpoint::kCompletions, RequestLimits{});
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(*r.prompt_text, "hi");
  EXPECT_EQ(*r.max_tokens, 5);
  EXPECT_EQ(r.n, 2);
  EXPECT_FLOAT_EQ(r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(*r.seed, 7u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_TRUE(r.stream && r.include_usage && r.return_token_ids);
  const CompletionRequest ids = parse_completion_request(R"({"model": "m", "prompt": [1, 2, 3], "stop": null})",
                                                         Endpoint::kCompletions, RequestLimits{});
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(ids.prompt_text);
  EXPECT_FALSE(ids.max_tokens);  // the endpoint's default applies
}

TEST(OpenAiRequest, ReadsChatFields) {
  const CompletionRequest r = parse_completion_request(
      R"({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
          "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 4})",
      Endpoint::kChatCompletions, RequestLimits{});
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].content, "u");
  EXPECT_EQ(*r.max_tokens, 9);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 4);
  EXPECT_EQ(*parse_completion_request(R"({"model": "m", "messages": [{"role": "user", "content": "u"}],
                                          "max_tokens": 3})",
                                      Endpoint::kChatCompletions, RequestLimits{})
                 .max_tokens,
            3);
}

TEST(OpenAiRequest, RefusesNamingTheField) {
  EXPECT_EQ(refused_param("{"), "(none)");
  EXPECT_EQ(refused_param("[1]"), "(none)");
  EXPECT_EQ(refused_param(R"({"prompt": "x"})"), "model");
  EXPECT_EQ(refused_param(R"({"model": 3, "prompt": "x"})"), "model");
  EXPECT_EQ(refused_param(R"({"model": "m"})"), "prompt");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": ""})"), "prompt");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": []})"), "prompt");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": ["a", "b"]})"), "prompt");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": [1, -2]})"), "prompt");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": [1, 2.5]})"), "prompt");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "max_tokens": "5"})"), "max_tokens");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "n": 17})"), "n");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "n": 18446744073709551615})"), "n");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "temperature": 2.5})"), "temperature");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "temperature": -1})"), "temperature");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "top_p": 0})"), "top_p");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]})"), "stop");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "stop": [""]})"), "stop");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "stop": 5})"), "stop");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "logprobs": 6})"), "logprobs");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "seed": 1.5})"), "seed");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "seed": "7"})"), "seed");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "stream": "yes"})"), "stream");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "stream_options": {}})"), "stream_options");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "echo": true})"), "echo");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "logit_bias": {"1": 2}})"), "logit_bias");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "frequency_penalty": 0.5})"), "frequency_penalty");
  EXPECT_EQ(refused_param(R"({"model": "m", "prompt": "x", "best_of": 3})"), "best_of");
  const Endpoint chat = Endpoint::kChatCompletions;
  EXPECT_EQ(refused_param(R"({"model": "m"})", chat), "messages");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": []})", chat), "messages");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": [{"role": "tool", "content": "x"}]})", chat), "messages");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]})", chat),
            "messages");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": [{"role": "assistant", "content": "x"}]})", chat), "messages");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", chat),
            "top_logprobs");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true,
                              "top_logprobs": 21})",
                          chat),
            "top_logprobs");
  EXPECT_EQ(refused_param(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": []})", chat),
            "tools");
}

// Random damage to valid bodies (bytes flipped, inserted, deleted, cut) and hostile shapes: parsing either succeeds
// or throws ApiError with a 400 -- no other exception, no crash, whatever the bytes.
TEST(OpenAiRequest, FuzzedBodiesOnlyEverFailAsApiErrors) {
  const std::vector<std::pair<std::string, Endpoint>> seeds = {
      {R"({"model": "m", "prompt": "hello", "max_tokens": 5, "stop": ["a"], "logprobs": 2, "seed": 3})",
       Endpoint::kCompletions},
      {R"({"model": "m", "prompt": [1, 2, 3], "n": 2, "temperature": 0.7, "stream": true,
           "stream_options": {"include_usage": true}})",
       Endpoint::kCompletions},
      {R"({"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 2,
           "max_completion_tokens": 4})",
       Endpoint::kChatCompletions}};
  std::mt19937 rng(20261201);
  int64_t parsed = 0, refused = 0;
  for (int iteration = 0; iteration < 30000; ++iteration) {
    const auto& [seed, endpoint] = seeds[static_cast<size_t>(iteration) % seeds.size()];
    std::string body = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0:
          body[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          body.insert(at, 1, "{}[]\",:0-9.eE\\u\x80\xff"[rng() % 19]);
          break;
        case 2:
          body.erase(at, 1);
          break;
        default:
          body.resize(at);
          break;
      }
    }
    try {
      parse_completion_request(body, endpoint, RequestLimits{});
      ++parsed;
    } catch (const ApiError& e) {
      ASSERT_EQ(e.status, 400) << body;
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "body " << body << " escaped as " << e.what();
    }
  }
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
  for (const std::string& hostile : {std::string(200000, '[') + std::string(200000, ']'), std::string(100000, '{'),
                                     std::string(R"({"model": "m", "prompt": ")") + std::string(1 << 20, 'x') + "\"}",
                                     std::string("{\"model\": \"\xff\xfe\", \"prompt\": 1}")}) {
    try {
      parse_completion_request(hostile, Endpoint::kCompletions, RequestLimits{});
    } catch (const ApiError&) {
    }
  }
}

TEST(TextStream, EndsBeforeAStopStringAndHoldsBackItsBeginning) {
  const ByteTokenizerAdapter bytes;
  auto ids = [](const std::string& s) {
    std::vector<int32_t> out;
    for (unsigned char c : s) out.push_back(c);
    return out;
  };
  TextStream stream(bytes, {"STOP", "\n\n"});
  EXPECT_EQ(stream.append(ids("abc")), "abc");
  EXPECT_EQ(stream.append(ids("dS")), "d");  // "S" may begin "STOP"
  EXPECT_EQ(stream.append(ids("T")), "");
  EXPECT_EQ(stream.append(ids("x")), "STx");  // it did not
  EXPECT_FALSE(stream.stop_hit());
  EXPECT_EQ(stream.append(ids("yST")), "y");
  EXPECT_EQ(stream.append(ids("OPzz")), "");
  EXPECT_TRUE(stream.stop_hit());
  EXPECT_EQ(stream.text(), "abcdSTxy");
  EXPECT_EQ(stream.ids_used(), 12);  // the P completing STOP is the last id used; "zz" are not
  EXPECT_EQ(stream.append(ids("more")), "");

  TextStream held(bytes, {"END"});
  EXPECT_EQ(held.append(ids("aE")), "a");
  EXPECT_EQ(held.finish(), "E");  // generation ended: the held-back beginning is text after all
  EXPECT_EQ(held.text(), "aE");

  TextStream utf8(bytes, {});
  EXPECT_EQ(utf8.append(ids("\xC3")), "");  // the first byte of "é": held back until the character is whole
  EXPECT_EQ(utf8.append(ids("\xA9")), "\xC3\xA9");
}

// ---- the generation service --------------------------------------------------------------------------------------

ModelConfig tiny_model(int64_t max_seq_len = 160) {
  Shape shape =
      load_shape(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/tiny-dense.ini",
                 {"--model.n_layers=2", "--model.max_seq_len=" + std::to_string(max_seq_len), "--model.init_std=0.1"});
  shape.model.validate();
  return shape.model;
}

GenerationRequest request(int64_t i, int64_t max_new_tokens) {
  GenerationRequest r;
  r.prompt = {ByteTokenizer::kBos, static_cast<int32_t>('a' + i), static_cast<int32_t>('0' + i % 7)};
  for (int64_t k = 0; k < i % 4; ++k) r.prompt.push_back(static_cast<int32_t>('x' + k));
  r.seed = 100 + static_cast<uint64_t>(i);
  r.sampling.max_new_tokens = max_new_tokens;
  r.sampling.top_logprobs = i % 3;
  return r;
}

std::vector<SampledToken> drain(SequenceStream& stream) {
  std::vector<SampledToken> all;
  for (;;) {
    SequenceStream::Update u = stream.take(std::chrono::milliseconds(200));
    EXPECT_TRUE(u.error.empty()) << u.error;
    all.insert(all.end(), u.tokens.begin(), u.tokens.end());
    if (u.done) return all;
  }
}

TEST(GenerationService, SequencesFromManyThreadsGetTheBitsTheyGetAlone) {
  const ModelConfig config = tiny_model();
  constexpr int kRequests = 9;
  std::vector<GenerationResult> alone;
  for (int i = 0; i < kRequests; ++i) {
    DecodeEngine engine(config, 1);
    engine.model().initialize(21);
    engine.submit(request(i, 6 + i % 5));
    while (!engine.idle())
      for (GenerationResult& r : engine.step()) alone.push_back(std::move(r));
  }
  DecodeEngine shared(config, 4);
  shared.model().initialize(21);
  GenerationService service(shared, 64);
  std::vector<std::vector<SampledToken>> got(kRequests);
  std::vector<std::thread> clients;
  for (int c = 0; c < 3; ++c)
    clients.emplace_back([&, c] {
      for (int i = c; i < kRequests; i += 3) got[i] = drain(*service.submit(request(i, 6 + i % 5)));
    });
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(got[i].size(), alone[i].tokens.size()) << "request " << i;
    for (size_t t = 0; t < got[i].size(); ++t) {
      EXPECT_EQ(got[i][t].token, alone[i].tokens[t]) << "request " << i << " token " << t;
      EXPECT_EQ(std::bit_cast<uint32_t>(got[i][t].logprob), std::bit_cast<uint32_t>(alone[i].logprobs[t]));
      if (i % 3) {
        ASSERT_EQ(got[i][t].top_logprobs.size(), static_cast<size_t>(i % 3));
        EXPECT_EQ(got[i][t].top_logprobs, alone[i].top_logprobs[t]);
      }
    }
    EXPECT_TRUE(got[i].back().finished);
  }
  EXPECT_EQ(service.stats().active, 0);
}

TEST(GenerationService, CancelFreesTheSlotAndAFullQueueRefuses) {
  DecodeEngine engine(tiny_model(1024), 1);
  engine.model().initialize(21);
  GenerationService service(engine, 1);
  // 1000 tokens: far more time than the next lines take, so the slot is still held when they run.
  std::shared_ptr<SequenceStream> running = service.submit(request(0, 1000));
  ASSERT_FALSE(running->take(std::chrono::seconds(30)).tokens.empty());  // it holds the one slot
  std::shared_ptr<SequenceStream> waiting = service.submit(request(1, 4));
  EXPECT_THROW(service.submit(request(2, 4)), GenerationService::QueueFull);
  service.cancel(running);
  EXPECT_TRUE(running->take(std::chrono::milliseconds(0)).done);
  const std::vector<SampledToken> next = drain(*waiting);  // the freed slot serves the waiting one
  EXPECT_EQ(next.size(), 4u);
  EXPECT_EQ(service.stats().active, 0);
  EXPECT_THROW(service.submit(request(3, 5000)), Error);  // longer than the context: the engine's own check
}

// The in-job rollout path hands the decode engine a GenerationRequest (rl/rollout_coordinator.cpp: prompt, a u64
// seed per sample, temperature, top_p, top_k, max_new_tokens, the codec's stop tokens); an HTTP request with the same
// prompt ids, seed and sampling fields must become the same requests -- choice i on seed + i -- and so the same bits.
TEST(CompletionJob, AnHttpRequestSamplesWhatTheRolloutPathSamples) {
  const ModelConfig config = tiny_model();
  ServedModel served;
  served.id = "m";
  served.codec = TextCodec::open(DataConfig{});
  served.max_seq_len = config.max_seq_len;
  served.vocab_size = config.vocab_size;
  served.max_prompt_tokens = config.max_seq_len - 1;
  const uint64_t seed = (uint64_t{1} << 63) + 12345;  // a replica's seeds use all 64 bits
  const CompletionRequest request = parse_completion_request(
      R"({"model": "m", "prompt": [256, 51, 43, 52, 61], "n": 2, "seed": )" + std::to_string(seed) +
          R"(, "temperature": 0.7, "top_p": 0.9, "top_k": 20, "max_tokens": 10, "return_token_ids": true})",
      Endpoint::kCompletions, RequestLimits{});
  DecodeEngine served_engine(config, 4);
  served_engine.model().initialize(21);
  GenerationService service(served_engine, 16);
  CompletionJob job(request, served, service);
  while (!job.done()) job.poll(std::chrono::milliseconds(100));
  ASSERT_TRUE(job.error().empty()) << job.error();
  for (int64_t i = 0; i < 2; ++i) {
    DecodeEngine alone(config, 1);
    alone.model().initialize(21);
    GenerationRequest r;  // as RolloutCoordinator::request builds it
    r.prompt = {256, 51, 43, 52, 61};
    r.seed = seed + static_cast<uint64_t>(i);
    r.sampling.temperature = 0.7f;
    r.sampling.top_p = 0.9f;
    r.sampling.top_k = 20;
    r.sampling.max_new_tokens = 10;
    r.sampling.stop_tokens = served.codec->stop_tokens();
    alone.submit(r);
    std::vector<GenerationResult> results;
    while (!alone.idle())
      for (GenerationResult& g : alone.step()) results.push_back(std::move(g));
    ASSERT_EQ(results.size(), 1u);
    const ChoiceState& choice = job.choices()[static_cast<size_t>(i)];
    ASSERT_EQ(choice.tokens.size(), results[0].tokens.size()) << "choice " << i;
    for (size_t t = 0; t < choice.tokens.size(); ++t) {
      EXPECT_EQ(choice.tokens[t].token, results[0].tokens[t]);
      EXPECT_EQ(std::bit_cast<uint32_t>(choice.tokens[t].logprob), std::bit_cast<uint32_t>(results[0].logprobs[t]));
    }
  }
}

}  // namespace
}  // namespace flywheel
