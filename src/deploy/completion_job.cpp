#include "deploy/completion_job.h"

#include <algorithm>
#include <ctime>
#include <random>

#include "core/error.h"

namespace flywheel {
namespace {

std::string fresh_id(const char* prefix) {
  static std::mt19937_64 ids{std::random_device{}()};
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(ids()));
  return std::string(prefix) + hex;
}

uint64_t random_seed() {
  static std::random_device device;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

CompletionJob::CompletionJob(const CompletionRequest& request, const ServedModel& model, GenerationService& service,
                             std::string adapter)
    : request_(request), adapter_(std::move(adapter)), model_(model), service_(service) {
  const bool chat = request.endpoint == Endpoint::kChatCompletions;
  id_ = fresh_id(chat ? "chatcmpl-" : "cmpl-");
  created_ = static_cast<int64_t>(std::time(nullptr));
  prompt_ids_ = encode_prompt();
  const auto prompt_length = static_cast<int64_t>(prompt_ids_.size());
  if (prompt_length > model.max_prompt_tokens)
    invalid_request(chat ? "messages" : "prompt", "the prompt is " + std::to_string(prompt_length) +
                                                      " tokens; this server accepts at most " +
                                                      std::to_string(model.max_prompt_tokens));
  const int64_t room = model.max_seq_len - prompt_length;
  const int64_t max_tokens = request.max_tokens.value_or(chat ? room : 16);
  if (room < 1 || max_tokens > room)
    invalid_request(chat ? "max_completion_tokens" : "max_tokens",
                    "this model's maximum context length is " + std::to_string(model.max_seq_len) +
                        " tokens; the request needs " +
                        std::to_string(prompt_length + std::max<int64_t>(max_tokens, 1)) + " (" +
                        std::to_string(prompt_length) + " in the prompt, " + std::to_string(max_tokens) +
                        " in the completion): shorten the prompt or ask for fewer tokens");
  if (!request.ignore_eos) stop_tokens_ = model.codec->stop_tokens();
  submit_all(max_tokens);
}

CompletionJob::~CompletionJob() {
  for (ChoiceState& c : choices_)
    if (!c.finish_reason) service_.cancel(c.stream);
}

std::vector<int32_t> CompletionJob::encode_prompt() const {
  const TextCodec& codec = *model_.codec;
  if (request_.endpoint == Endpoint::kChatCompletions) {
    if (codec.byte_level())
      invalid_request("messages", "model '" + model_.id +
                                      "' has no chat template (it uses the byte tokenizer): use "
                                      "/v1/completions");
    try {
      return codec.encode_chat_prompt(request_.messages);
    } catch (const InputError& e) {
      invalid_request("messages", e.what());
    }
  }
  if (request_.prompt_text)
    return codec.tokenizer().encode(*request_.prompt_text, EncodeOptions{.add_special_tokens = true});
  for (int32_t id : request_.prompt_ids)
    if (id >= model_.vocab_size)
      invalid_request("prompt", "'prompt' holds token id " + std::to_string(id) + ": ids must be below the model's " +
                                    "vocabulary size " + std::to_string(model_.vocab_size));
  return request_.prompt_ids;
}

void CompletionJob::submit_all(int64_t max_tokens) {
  const uint64_t seed = request_.seed.value_or(random_seed());
  choices_.reserve(static_cast<size_t>(request_.n));
  try {
    for (int64_t i = 0; i < request_.n; ++i) {
      GenerationRequest g;
      g.prompt = prompt_ids_;
      g.seed = seed + static_cast<uint64_t>(i);
      g.adapter = adapter_;
      g.sampling.max_new_tokens = max_tokens;
      g.sampling.stop_tokens = stop_tokens_;
      g.sampling.top_p = request_.top_p;
      g.sampling.top_k = request_.top_k;
      g.sampling.top_logprobs = request_.logprobs ? request_.top_logprobs : 0;
      if (request_.temperature == 0.0f)
        g.sampling.top_k = 1;  // greedy: the argmax, logprobs at temperature 1
      else
        g.sampling.temperature = request_.temperature;
      choices_.push_back(
          {i, service_.submit(std::move(g)), TextStream(model_.codec->tokenizer(), request_.stop), {}, std::nullopt});
    }
  } catch (const GenerationService::QueueFull& full) {
    for (ChoiceState& c : choices_) service_.cancel(c.stream);
    choices_.clear();
    throw ApiError(429, "rate_limit_error",
                   "the server is at capacity (" + std::to_string(full.waiting) + " requests waiting): retry later", "",
                   "queue_full");
  }
}

std::optional<ChoiceDelta> CompletionJob::advance(ChoiceState& choice, SequenceStream::Update update) {
  if (choice.finish_reason || (update.tokens.empty() && !update.done)) return std::nullopt;
  ChoiceDelta delta;
  delta.index = choice.index;
  for (const SampledToken& t : update.tokens) {
    if (choice.text.stop_hit()) break;
    const int32_t id = t.token;
    delta.text += choice.text.append({&id, 1});
    delta.tokens.push_back(t);
    choice.tokens.push_back(t);
  }
  if (!update.error.empty() && error_.empty()) error_ = update.error;
  if (choice.text.stop_hit()) {
    choice.finish_reason = "stop";
    service_.cancel(choice.stream);
  } else if (update.done) {
    delta.text += choice.text.finish();
    const bool stop_token =
        !choice.tokens.empty() && std::count(stop_tokens_.begin(), stop_tokens_.end(), choice.tokens.back().token) > 0;
    choice.finish_reason = stop_token ? "stop" : "length";
  }
  delta.finish_reason = choice.finish_reason;
  return delta;
}

std::vector<ChoiceDelta> CompletionJob::poll(std::chrono::milliseconds timeout) {
  std::vector<ChoiceDelta> deltas;
  for (ChoiceState& c : choices_)
    if (auto d = advance(c, c.stream->take(std::chrono::milliseconds(0)))) deltas.push_back(std::move(*d));
  if (!deltas.empty() || done()) return deltas;
  for (ChoiceState& c : choices_) {  // nothing yet: wait on the first unfinished choice (they step together)
    if (c.finish_reason) continue;
    if (auto d = advance(c, c.stream->take(timeout))) deltas.push_back(std::move(*d));
    break;
  }
  return deltas;
}

bool CompletionJob::done() const {
  return std::all_of(choices_.begin(), choices_.end(),
                     [](const ChoiceState& c) { return c.finish_reason.has_value(); });
}

int64_t CompletionJob::completion_tokens() const {
  int64_t n = 0;
  for (const ChoiceState& c : choices_) n += static_cast<int64_t>(c.tokens.size());
  return n;
}

}  // namespace flywheel
