// The OpenAI-compatible request side of `flywheel serve` (docs/serving.md): the bodies of POST /v1/completions and
// POST /v1/chat/completions read strictly into a CompletionRequest, and the errors every route answers with.
//
// Fields follow the OpenAI API reference (openai-node 6.x resources/completions.ts, chat/completions.ts):
//   both:  model, n (1 .. limits.max_n), temperature ([0, 2]; 0 = greedy), top_p ((0, 1]), seed, stop (a string or
//          up to 4), stream, stream_options.include_usage, user (ignored)
//   completions: prompt (a string, or token ids: a list of integers; one prompt per request), max_tokens (default 16),
//          logprobs (0 .. 5: that many most likely tokens per position; null or absent: none)
//   chat:  messages (data/chat_messages.h: system/user/assistant with string content), max_completion_tokens or the
//          older max_tokens (default: what the context leaves), logprobs (bool), top_logprobs (0 .. 20)
//   extensions (vLLM's names): top_k (0 = off), ignore_eos (generate past the model's stop tokens, up to max_tokens),
//          return_token_ids (adds prompt_token_ids and per-choice token_ids, and Flywheel's per-choice
//          sampling_logprobs and snapshot_steps).
// Parameters that would change what is generated but are not implemented (tools, response_format, logit_bias,
// non-zero presence/frequency penalties, echo, suffix, best_of != n) are refused by name rather than ignored; other
// unknown keys are ignored, as vLLM does. Every error is an ApiError: an HTTP status and OpenAI's error body.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_messages.h"

namespace flywheel {

// An error a client gets as {"error": {"message", "type", "param", "code"}} with `status`.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", "rate_limit_error", "server_error", ...
  std::string param;  // the request field at fault, or ""
  std::string code;   // "model_not_found", "invalid_api_key", ... or ""
};

// 400 invalid_request_error naming `param`.
[[noreturn]] void invalid_request(const std::string& param, const std::string& message);
nlohmann::json error_body(const ApiError& error);

enum class Endpoint { kCompletions, kChatCompletions };

struct RequestLimits {
  int64_t max_n = 16;
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;
  std::optional<std::string> prompt_text;  // completions: the prompt as text ...
  std::vector<int32_t> prompt_ids;         // ... or as token ids (then prompt_text is empty)
  Conversation messages;                   // chat
  std::optional<int64_t> max_tokens;       // absent: the endpoint's default
  int64_t n = 1;
  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;
  int64_t top_k = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
  bool logprobs = false;       // report the sampled tokens' logprobs
  int64_t top_logprobs = 0;    // and this many most likely per position
  bool return_token_ids = false;
  bool ignore_eos = false;
};

// Parses and checks a request body for `endpoint`. Throws ApiError (400 naming the field) for malformed JSON, a
// wrong type, a value out of range, a missing required field or an unsupported parameter.
CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint, const RequestLimits& limits);

}  // namespace flywheel
