#include "deploy/openai_responses.h"

namespace flywheel {
namespace {

using nlohmann::json;

bool is_chat(const CompletionJob& job) { return job.request().endpoint == Endpoint::kChatCompletions; }

std::string token_text(const Tokenizer& tokenizer, int32_t id) {
  const int32_t one[] = {id};
  return tokenizer.decode(one);
}

json utf8_bytes(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

// Chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], "refusal": null}.
json chat_logprobs(const std::vector<SampledToken>& tokens, const Tokenizer& tokenizer) {
  json content = json::array();
  for (const SampledToken& t : tokens) {
    const std::string text = token_text(tokenizer, t.token);
    json top = json::array();
    for (const TokenLogprob& c : t.top_logprobs) {
      const std::string candidate = token_text(tokenizer, c.token);
      top.push_back({{"token", candidate}, {"logprob", c.logprob}, {"bytes", utf8_bytes(candidate)}});
    }
    content.push_back({{"token", text}, {"logprob", t.logprob}, {"bytes", utf8_bytes(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

// Completions: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}; offsets count from
// `offset`, the length of the text sent before these tokens.
json completion_logprobs(const std::vector<SampledToken>& tokens, const Tokenizer& tokenizer, int64_t offset) {
  json strings = json::array(), logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const SampledToken& t : tokens) {
    const std::string text = token_text(tokenizer, t.token);
    strings.push_back(text);
    logprobs.push_back(t.logprob);
    json candidates = json::object();
    for (const TokenLogprob& c : t.top_logprobs) candidates[token_text(tokenizer, c.token)] = c.logprob;
    top.push_back(candidates);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(text.size());
  }
  return {{"tokens", strings}, {"token_logprobs", logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

void add_token_ids(json& choice, const std::vector<SampledToken>& tokens) {
  json ids = json::array(), logprobs = json::array(), steps = json::array();
  for (const SampledToken& t : tokens) {
    ids.push_back(t.token);
    logprobs.push_back(t.logprob);
    steps.push_back(t.snapshot_step);
  }
  choice["token_ids"] = ids;
  choice["sampling_logprobs"] = logprobs;
  choice["snapshot_steps"] = steps;
}

json usage(const CompletionJob& job) {
  const auto prompt = static_cast<int64_t>(job.prompt_ids().size());  // once, whatever n (as OpenAI counts)
  const int64_t completion = job.completion_tokens();
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

json envelope(const CompletionJob& job, const char* object) {
  return {{"id", job.id()},
          {"object", object},
          {"created", job.created()},
          {"model", job.request().model},
          {"system_fingerprint", nullptr}};
}

// One choice's body: its text (or delta) and logprobs for these tokens.
json choice_body(const CompletionJob& job, const ServedModel& model, int64_t index, const std::string& text,
                 const std::vector<SampledToken>& tokens, const std::optional<std::string>& finish_reason,
                 int64_t text_offset, bool stream_delta, bool first) {
  const CompletionRequest& r = job.request();
  const Tokenizer& tokenizer = model.codec->tokenizer();
  json choice = {
      {"index", index}, {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}, {"logprobs", nullptr}};
  if (is_chat(job)) {
    if (stream_delta) {
      choice["delta"] = json::object();
      if (first) choice["delta"]["role"] = "assistant";
      if (!text.empty() || first) choice["delta"]["content"] = text;
    } else {
      choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
    }
    if (r.logprobs) choice["logprobs"] = chat_logprobs(tokens, tokenizer);
  } else {
    choice["text"] = text;
    if (r.logprobs) choice["logprobs"] = completion_logprobs(tokens, tokenizer, text_offset);
    if (r.return_token_ids && (first || !stream_delta)) choice["prompt_token_ids"] = job.prompt_ids();
  }
  if (r.return_token_ids) add_token_ids(choice, tokens);
  return choice;
}

}  // namespace

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json models_list(const ServedModel& model, const std::vector<std::string>& adapters) {
  json data = json::array();
  const json base = {{"id", model.id},
                     {"object", "model"},
                     {"created", model.created},
                     {"owned_by", "flywheel"},
                     {"max_model_len", model.max_seq_len}};
  data.push_back(base);
  for (const std::string& name : adapters) {  // vLLM lists a LoRA adapter with its base as "parent"
    json adapter = base;
    adapter["id"] = name;
    adapter["parent"] = model.id;
    data.push_back(adapter);
  }
  return {{"object", "list"}, {"data", data}};
}

json completion_response(const CompletionJob& job, const ServedModel& model) {
  json body = envelope(job, is_chat(job) ? "chat.completion" : "text_completion");
  json choices = json::array();
  for (const ChoiceState& c : job.choices())
    choices.push_back(choice_body(job, model, c.index, c.text.text(), c.tokens, c.finish_reason, 0, false, false));
  body["choices"] = choices;
  body["usage"] = usage(job);
  if (is_chat(job) && job.request().return_token_ids) body["prompt_token_ids"] = job.prompt_ids();
  return body;
}

json completion_chunk(const CompletionJob& job, const ServedModel& model, const std::vector<ChoiceDelta>& deltas,
                      bool first) {
  json body = envelope(job, is_chat(job) ? "chat.completion.chunk" : "text_completion");
  json choices = json::array();
  for (const ChoiceDelta& d : deltas) {
    const ChoiceState& c = job.choices()[static_cast<size_t>(d.index)];
    const auto offset = static_cast<int64_t>(c.text.text().size() - d.text.size());
    choices.push_back(choice_body(job, model, d.index, d.text, d.tokens, d.finish_reason, offset, true, first));
  }
  body["choices"] = choices;
  if (first && is_chat(job) && job.request().return_token_ids) body["prompt_token_ids"] = job.prompt_ids();
  return body;
}

json usage_chunk(const CompletionJob& job, const ServedModel& model) {
  json body = envelope(job, is_chat(job) ? "chat.completion.chunk" : "text_completion");
  body["choices"] = json::array();
  body["usage"] = usage(job);
  return body;
}

std::string sse_event(const json& payload) { return "data: " + dump_json(payload) + "\n\n"; }

}  // namespace flywheel
