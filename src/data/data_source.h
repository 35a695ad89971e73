// Training data: where samples come from, and how a step's samples are chosen.
//
// A DataSource maps a dataset index to a tokenized sample. The Sampler maps
// (seed, global sample index) to a dataset index, so which samples a step sees depends only on
// (seed, step, sample index) -- never on the mesh, the number of ranks or the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flywheel {

// One training sequence: tokens = BOS + prompt + completion + EOS (or a plain-text window, or a
// rendered chat). The loss counts predictions of tokens[i] for i >= loss_start (so the completion
// and EOS for SFT), or, when `loss` is not empty (chat: several assistant turns), where loss[i] == 1.
struct TokenizedSample {
  std::vector<int32_t> tokens;
  int64_t loss_start = 1;
  std::vector<uint8_t> loss;
  bool is_target(size_t i) const { return loss.empty() ? static_cast<int64_t>(i) >= loss_start : loss[i] != 0; }
};

// Where data comes from, as written in a shape file's [data] section.
struct DataConfig {
  // "task:addition", "task:reverse", "jsonl:<path>" ({"prompt": "...", "completion": "..."} per line),
  // or "text:<path>" (plain text cut into windows of seq_len + 1 bytes).
  std::string source = "task:addition";
  int task_max_digits = 3;  // addition: operands of 1..N digits; reverse: strings of 1..2N letters
  // The run's tokenizer and chat format (data/text_codec.h): "byte", or a directory / tokenizer.json.
  // Shapes default to "auto", which launch/ resolves to one of those before anything below sees it.
  std::string tokenizer = "byte";
  std::string chat_format = "auto";  // auto (from tokenizer_config.json) | chatml | llama3
  bool enable_thinking = true;       // Qwen3's chat-template switch (its default: true)
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // Number of distinct samples, or 0 for a generated (unbounded) source.
  virtual int64_t size() const = 0;
  virtual TokenizedSample sample(int64_t index) const = 0;
  virtual std::string describe() const = 0;
};

// Builds the source config.source names (the forms are listed at DataConfig; anything else is
// an error listing them). `seed` keys generated sources, so task example i is a pure function of
// (seed, i). File sources are read and validated completely here, so a bad line fails at start-up
// rather than hours into a run.
//
// Every sample has at most seq_len + 1 tokens (seq_len inputs, seq_len targets): a longer one is
// cut at the end. SFT examples should fit -- a cut one loses its EOS, and one whose prompt alone
// is too long keeps no loss tokens at all.
std::unique_ptr<DataSource> make_data_source(const DataConfig& config, int64_t seq_len, uint64_t seed);

}  // namespace flywheel
