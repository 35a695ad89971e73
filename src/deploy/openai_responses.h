// The OpenAI-compatible response side: the JSON bodies of a finished completion and of each server-sent-event chunk,
// in the shapes openai-node 6.x parses (resources/completions.ts, chat/completions.ts, models.ts).
//
// Logprobs are those the decode engine samples from: log softmax(logits / temperature) over the whole vocabulary,
// before top-k / top-p truncation (the trainer's scoring of the same tokens at the same temperature gives the same
// numbers; vLLM's "processed" logprobs would add log of the truncated mass). Token strings are each id decoded alone
// (a byte-level token that is part of a character decodes to U+FFFD; `bytes` is that string's UTF-8).
// With return_token_ids: prompt_token_ids (per choice for completions, top level for chat, as vLLM), and per choice
// token_ids, sampling_logprobs and snapshot_steps (the weights' snapshot each token was sampled under).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "deploy/completion_job.h"

namespace flywheel {

// The base model and the LoRA adapters served beside it (each with "parent": the base).
nlohmann::json models_list(const ServedModel& model, const std::vector<std::string>& adapters);

// The whole response of a finished job (stream = false).
nlohmann::json completion_response(const CompletionJob& job, const ServedModel& model);

// One streamed chunk carrying `deltas` (the first chunk of a chat stream also carries role "assistant").
nlohmann::json completion_chunk(const CompletionJob& job, const ServedModel& model,
                                const std::vector<ChoiceDelta>& deltas, bool first);
// The last chunk when stream_options.include_usage is set: no choices, the usage.
nlohmann::json usage_chunk(const CompletionJob& job, const ServedModel& model);

// `data: <json>\n\n`, and the stream's end.
std::string sse_event(const nlohmann::json& payload);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// Serialises with invalid UTF-8 replaced (a client's text is echoed in errors; generated text may end mid-character).
std::string dump_json(const nlohmann::json& value);

}  // namespace flywheel
