#include "deploy/openai_protocol.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace flywheel {
namespace {

using nlohmann::json;

constexpr int64_t kMaxStops = 4;               // OpenAI: "Up to 4 sequences"
constexpr int64_t kMaxCompletionLogprobs = 5;  // completions: logprobs 0 .. 5
constexpr int64_t kMaxChatTopLogprobs = 20;    // chat: top_logprobs 0 .. 20

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

[[noreturn]] void wrong_type(const std::string& key, const json& v, const char* expected) {
  invalid_request(key, "'" + key + "' must be " + expected + ", not " + type_name(v));
}

// A field that is absent or null counts as not given (the OpenAI clients send null for unset optionals).
const json* field(const json& body, const std::string& key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

int64_t integer_in(const json& v, const std::string& key, int64_t lo, int64_t hi) {
  if (!v.is_number_integer() && !v.is_number_unsigned()) wrong_type(key, v, "an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    invalid_request(key, "'" + key + "' = " + v.dump() + " is out of range: allowed " + std::to_string(lo) + " .. " +
                             std::to_string(hi));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    invalid_request(key, "'" + key + "' = " + std::to_string(x) + " is out of range: allowed " + std::to_string(lo) +
                             " .. " + std::to_string(hi));
  return x;
}

float number_in(const json& v, const std::string& key, double lo, double hi, bool lo_open) {
  if (!v.is_number()) wrong_type(key, v, "a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x > hi || x < lo || (lo_open && x == lo))
    invalid_request(key, "'" + key + "' = " + v.dump() + " is out of range: allowed " + (lo_open ? "(" : "[") +
                             json(lo).dump() + ", " + json(hi).dump() + "]");
  return static_cast<float>(x);
}

bool boolean(const json& v, const std::string& key) {
  if (!v.is_boolean()) wrong_type(key, v, "a boolean");
  return v.get<bool>();
}

void refuse_unsupported(const json& body) {
  for (const char* key : {"tools", "tool_choice", "functions", "function_call", "response_format", "logit_bias",
                          "suffix", "audio", "prediction", "web_search_options"})
    if (field(body, key))
      invalid_request(key, std::string("'") + key +
                               "' is not supported by this server (Flywheel serves plain "
                               "text generation); leave it out");
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    if (const json* v = field(body, key); v && number_in(*v, key, -2, 2, false) != 0.0f)
      invalid_request(key, std::string("'") + key + "' is not supported (only 0)");
  if (const json* v = field(body, "echo"); v && boolean(*v, "echo"))
    invalid_request("echo",
                    "'echo' = true is not supported: the prompt comes back as prompt_token_ids with "
                    "return_token_ids");
}

std::vector<std::string> stops(const json& v) {
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) wrong_type("stop", v, "a string or a list of up to 4 strings");
  if (static_cast<int64_t>(v.size()) > kMaxStops)
    invalid_request("stop", "'stop' holds " + std::to_string(v.size()) + " sequences: at most 4 are allowed");
  std::vector<std::string> out;
  for (const json& s : v) {
    if (!s.is_string()) wrong_type("stop", s, "a list of strings");
    if (s.get<std::string>().empty()) invalid_request("stop", "'stop' holds an empty string: stops must be non-empty");
    out.push_back(s.get<std::string>());
  }
  return out;
}

void read_prompt(const json& body, CompletionRequest& r) {
  const json* prompt = field(body, "prompt");
  if (!prompt) invalid_request("prompt", "'prompt' is required: a string or a list of token ids");
  if (prompt->is_string()) {
    r.prompt_text = prompt->get<std::string>();
    if (r.prompt_text->empty()) invalid_request("prompt", "'prompt' is empty");
    return;
  }
  if (!prompt->is_array()) wrong_type("prompt", *prompt, "a string or a list of token ids");
  if (prompt->empty()) invalid_request("prompt", "'prompt' is an empty list");
  if ((*prompt)[0].is_string() || (*prompt)[0].is_array())
    invalid_request("prompt",
                    "'prompt' holds several prompts: send one prompt per request (n gives several "
                    "completions of it)");
  for (const json& id : *prompt)
    r.prompt_ids.push_back(static_cast<int32_t>(integer_in(id, "prompt", 0, std::numeric_limits<int32_t>::max())));
}

void read_chat(const json& body, CompletionRequest& r) {
  const json* messages = field(body, "messages");
  if (!messages) invalid_request("messages", "'messages' is required: a list of {role, content} objects");
  try {
    r.messages = parse_conversation(*messages, "messages", "");
  } catch (const InputError& e) {
    invalid_request("messages", e.what());
  }
  if (r.messages.back().role == ChatRole::kAssistant)
    invalid_request("messages",
                    "'messages' ends with an assistant message: the last one must be a user or "
                    "system message (the model writes the next assistant turn)");
  const json* tokens = field(body, "max_completion_tokens");
  if (!tokens) tokens = field(body, "max_tokens");
  if (tokens) r.max_tokens = integer_in(*tokens, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
  if (const json* v = field(body, "logprobs")) r.logprobs = boolean(*v, "logprobs");
  if (const json* v = field(body, "top_logprobs")) {
    r.top_logprobs = integer_in(*v, "top_logprobs", 0, kMaxChatTopLogprobs);
    if (!r.logprobs) invalid_request("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  }
}

void read_sampling(const json& body, const RequestLimits& limits, CompletionRequest& r) {
  if (const json* v = field(body, "n")) r.n = integer_in(*v, "n", 1, limits.max_n);
  if (const json* v = field(body, "best_of"); v && integer_in(*v, "best_of", 1, limits.max_n) != r.n)
    invalid_request("best_of", "'best_of' different from 'n' is not supported");
  if (const json* v = field(body, "temperature")) r.temperature = number_in(*v, "temperature", 0, 2, false);
  if (const json* v = field(body, "top_p")) r.top_p = number_in(*v, "top_p", 0, 1, true);
  if (const json* v = field(body, "top_k")) r.top_k = integer_in(*v, "top_k", -1, std::numeric_limits<int32_t>::max());
  if (r.top_k < 0) r.top_k = 0;  // vLLM: -1 turns top-k off
  if (const json* v = field(body, "seed")) {  // any 64-bit integer: signed (OpenAI's), or unsigned (a replica's u64)
    if (!v->is_number_integer()) wrong_type("seed", *v, "an integer");
    r.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
  }
  if (const json* v = field(body, "stop")) r.stop = stops(*v);
  if (const json* v = field(body, "stream")) r.stream = boolean(*v, "stream");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) wrong_type("stream_options", *v, "an object");
    if (!r.stream) invalid_request("stream_options", "'stream_options' is only allowed with 'stream': true");
    if (const json* usage = field(*v, "include_usage")) r.include_usage = boolean(*usage, "include_usage");
  }
  if (const json* v = field(body, "return_token_ids")) r.return_token_ids = boolean(*v, "return_token_ids");
  if (const json* v = field(body, "ignore_eos")) r.ignore_eos = boolean(*v, "ignore_eos");
}

}  // namespace

void invalid_request(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", message, param);
}

nlohmann::json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

CompletionRequest parse_completion_request(std::string_view text, Endpoint endpoint, const RequestLimits& limits) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    throw ApiError(400, "invalid_request_error", "the request body is not valid JSON", "", "invalid_json");
  if (!body.is_object()) invalid_request("", "the request body must be a JSON object, not " + type_name(body));
  CompletionRequest r;
  r.endpoint = endpoint;
  const json* model = field(body, "model");
  if (!model) invalid_request("model", "'model' is required (GET /v1/models lists the served ones)");
  if (!model->is_string()) wrong_type("model", *model, "a string");
  r.model = model->get<std::string>();
  refuse_unsupported(body);
  if (endpoint == Endpoint::kCompletions) {
    read_prompt(body, r);
    if (const json* v = field(body, "max_tokens"))
      r.max_tokens = integer_in(*v, "max_tokens", 1, std::numeric_limits<int32_t>::max());
    if (const json* v = field(body, "logprobs")) {
      r.top_logprobs = integer_in(*v, "logprobs", 0, kMaxCompletionLogprobs);
      r.logprobs = true;
    }
  } else {
    read_chat(body, r);
  }
  read_sampling(body, limits, r);
  return r;
}

}  // namespace flywheel
