// One completion request in flight: its prompt encoded, its n choices submitted to the generation service as n
// sequences, and their tokens turned into choice text as they arrive (deploy/text_stream.h).
//
// Prompts: /v1/completions encodes a text prompt as the tokenizer does with add_special_tokens (Llama-3: BOS
// first; Qwen3: nothing; the byte tokenizer: BOS), or takes token ids as given; /v1/chat/completions renders the
// messages with the model's chat template and its generation prompt (data/text_codec.h). Generation ends at the
// model's stop tokens (EOS, end of turn), a stop string, max_tokens, or the end of the context.
// Seeds: choice i draws from seed + i (a request without a seed gets a random one), so a request with a seed is
// reproducible and its choices differ. temperature 0 is greedy (top_k 1 at temperature 1).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/text_codec.h"
#include "deploy/generation_service.h"
#include "deploy/openai_protocol.h"
#include "deploy/text_stream.h"

namespace flywheel {

// What `flywheel serve` serves, as the routes need it.
struct ServedModel {
  std::string id;  // the name in /v1/models and in requests' "model"
  std::shared_ptr<const TextCodec> codec;
  int64_t max_seq_len = 0;  // prompt + completion tokens
  int64_t vocab_size = 0;   // token ids of a prompt must be below it
  int64_t max_prompt_tokens = 0;
  int64_t created = 0;  // unix seconds, for /v1/models
};

struct ChoiceState {
  int64_t index = 0;
  std::shared_ptr<SequenceStream> stream;
  TextStream text;
  std::vector<SampledToken> tokens;          // those the text used
  std::optional<std::string> finish_reason;  // "stop" | "length" once finished
};

// New text and tokens of one choice since the previous poll.
struct ChoiceDelta {
  int64_t index = 0;
  std::string text;
  std::vector<SampledToken> tokens;
  std::optional<std::string> finish_reason;
};

class CompletionJob {
 public:
  // Encodes and checks the prompt and submits the n sequences. Throws ApiError: 400 for a bad prompt or a request
  // longer than the context, 429 when the queue is full (none of the n is left queued then).
  // `adapter`: the LoRA adapter the request's "model" names ("" for the base model).
  CompletionJob(const CompletionRequest& request, const ServedModel& model, GenerationService& service,
                std::string adapter = "");
  ~CompletionJob();  // cancels the choices still generating (a client that went away)
  CompletionJob(const CompletionJob&) = delete;
  CompletionJob& operator=(const CompletionJob&) = delete;

  // Waits up to `timeout` for progress and returns it (choices that progressed only).
  std::vector<ChoiceDelta> poll(std::chrono::milliseconds timeout);
  bool done() const;
  // A choice the engine failed (the reason), or "".
  const std::string& error() const { return error_; }

  const CompletionRequest& request() const { return request_; }
  const std::vector<int32_t>& prompt_ids() const { return prompt_ids_; }
  const std::vector<ChoiceState>& choices() const { return choices_; }
  int64_t completion_tokens() const;
  const std::string& id() const { return id_; }
  int64_t created() const { return created_; }

 private:
  std::vector<int32_t> encode_prompt() const;
  void submit_all(int64_t max_tokens);
  std::optional<ChoiceDelta> advance(ChoiceState& choice, SequenceStream::Update update);

  CompletionRequest request_;
  std::string adapter_;
  const ServedModel& model_;
  GenerationService& service_;
  std::vector<int32_t> prompt_ids_;
  std::vector<int32_t> stop_tokens_;
  std::vector<ChoiceState> choices_;
  std::string id_;
  int64_t created_ = 0;
  std::string error_;
};

}  // namespace flywheel
