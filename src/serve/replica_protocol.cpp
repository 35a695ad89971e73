#include "serve/replica_protocol.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace flywheel {
namespace {

using json = nlohmann::json;

json sampling_json(const SamplingParams& s) {
  return {{"temperature", s.temperature}, {"top_p", s.top_p},           {"top_k", s.top_k},
          {"max_new_tokens", s.max_new_tokens}, {"stop_tokens", s.stop_tokens}};
}

SamplingParams sampling_from(const json& j) {
  SamplingParams s;
  s.temperature = j.at("temperature").get<float>();
  s.top_p = j.at("top_p").get<float>();
  s.top_k = j.at("top_k").get<int64_t>();
  s.max_new_tokens = j.at("max_new_tokens").get<int64_t>();
  s.stop_tokens = j.at("stop_tokens").get<std::vector<int32_t>>();
  return s;
}

std::vector<uint8_t> to_bytes(const json& j) { return json::to_cbor(j); }

// Messages come from our own ranks, so a malformed one is a bug or memory corruption: say which.
json from_bytes(const std::vector<uint8_t>& bytes, const char* what) {
  try {
    return json::from_cbor(bytes);
  } catch (const json::exception& e) {
    FW_THROW("malformed ", what, " message (", bytes.size(), " bytes): ", e.what());
  }
}

template <typename F>
auto parse(const std::vector<uint8_t>& bytes, const char* what, F&& read) {
  const json j = from_bytes(bytes, what);
  try {
    return read(j);
  } catch (const json::exception& e) {
    FW_THROW("malformed ", what, " message: ", e.what());
  }
}

}  // namespace

std::vector<uint8_t> encode(const GenerateMessage& m) {
  json requests = json::array();
  for (const GenerationRequest& r : m.requests)
    requests.push_back({{"id", r.id}, {"prompt", r.prompt}, {"seed", r.seed}, {"sampling", sampling_json(r.sampling)}});
  return to_bytes({{"step", m.step}, {"requests", requests}});
}

std::vector<uint8_t> encode(const ResultsMessage& m) {
  json results = json::array();
  for (const GenerationResult& r : m.results)
    results.push_back({{"id", r.id},
                       {"tokens", r.tokens},
                       {"logprobs", r.logprobs},
                       {"snapshot_steps", r.snapshot_steps},
                       {"stopped", r.stopped}});
  return to_bytes({{"step", m.step},
                   {"replica", m.replica},
                   {"results", results},
                   {"tokens", m.tokens},
                   {"decode_seconds", m.decode_seconds}});
}

std::vector<uint8_t> encode(const LoadedMessage& m) {
  return to_bytes({{"step", m.step},
                   {"requested", m.requested},
                   {"replica", m.replica},
                   {"ms", m.ms},
                   {"bytes", m.bytes},
                   {"delta", m.delta},
                   {"fell_back", m.fell_back},
                   {"reason", m.reason}});
}

std::vector<uint8_t> encode_step(int64_t step) { return to_bytes({{"step", step}}); }

GenerateMessage decode_generate(const std::vector<uint8_t>& bytes) {
  return parse(bytes, "generate", [](const json& j) {
    GenerateMessage m;
    m.step = j.at("step").get<int64_t>();
    for (const json& r : j.at("requests")) {
      GenerationRequest q;
      q.id = r.at("id").get<int64_t>();
      q.prompt = r.at("prompt").get<std::vector<int32_t>>();
      q.seed = r.at("seed").get<uint64_t>();
      q.sampling = sampling_from(r.at("sampling"));
      m.requests.push_back(std::move(q));
    }
    return m;
  });
}

ResultsMessage decode_results(const std::vector<uint8_t>& bytes) {
  return parse(bytes, "results", [](const json& j) {
    ResultsMessage m;
    m.step = j.at("step").get<int64_t>();
    m.replica = j.at("replica").get<int>();
    m.tokens = j.at("tokens").get<int64_t>();
    m.decode_seconds = j.at("decode_seconds").get<double>();
    for (const json& r : j.at("results")) {
      GenerationResult g;
      g.id = r.at("id").get<int64_t>();
      g.tokens = r.at("tokens").get<std::vector<int32_t>>();
      g.logprobs = r.at("logprobs").get<std::vector<float>>();
      g.snapshot_steps = r.at("snapshot_steps").get<std::vector<int64_t>>();
      g.stopped = r.at("stopped").get<bool>();
      m.results.push_back(std::move(g));
    }
    return m;
  });
}

LoadedMessage decode_loaded(const std::vector<uint8_t>& bytes) {
  return parse(bytes, "loaded", [](const json& j) {
    LoadedMessage m;
    m.step = j.at("step").get<int64_t>();
    m.requested = j.at("requested").get<int64_t>();
    m.replica = j.at("replica").get<int>();
    m.ms = j.at("ms").get<double>();
    m.bytes = j.at("bytes").get<uint64_t>();
    m.delta = j.at("delta").get<bool>();
    m.fell_back = j.at("fell_back").get<bool>();
    m.reason = j.at("reason").get<std::string>();
    return m;
  });
}

int64_t decode_step(const std::vector<uint8_t>& bytes) {
  return parse(bytes, "snapshot", [](const json& j) { return j.at("step").get<int64_t>(); });
}

}  // namespace flywheel
