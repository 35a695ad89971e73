// The `pre_tokenizer` of tokenizer.json: how a stretch of normalized text is cut into the pre-tokens
// that BPE merges within (never across).
//
// Supported, as the HF library defines them:
//   Split      {"pattern": {"Regex": r} or {"String": s}, "behavior", "invert"}: the matches and the
//              text between them; behavior Isolated (each its own piece: Qwen, Llama-3), Removed
//              (matches dropped), MergedWithPrevious / MergedWithNext (a match joins the piece before
//              / after), Contiguous (runs of matches, and runs of non-matches, joined); `invert`
//              swaps which spans count as matches.
//   ByteLevel  {"add_prefix_space", "use_regex"}: each piece gets a leading space unless it has one
//              (add_prefix_space), is split by GPT-2's pattern (use_regex; default true), and is
//              rewritten in the byte-level alphabet (data/byte_level.h). trim_offsets only moves
//              offsets, which we do not report.
//   Sequence   {"pretokenizers": [...]}: each step runs on every piece of the one before.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/hf_json.h"
#include "data/regex.h"

namespace flywheel::hf {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class PreTokenizer {
 public:
  static PreTokenizer from_json(const std::optional<JsonCursor>& spec);

  using Emit = std::function<void(std::string_view)>;
  // Calls emit(piece) for each non-empty pre-token of `text` (valid UTF-8), in order. A piece may
  // live in a buffer that is reused once emit returns.
  void run(std::string_view text, const Emit& emit) const { run_from(0, text, emit); }

 private:
  struct Step {
    enum class Kind { kSplit, kByteLevel } kind;
    std::optional<Regex> regex;  // Split's pattern, or GPT-2's for a ByteLevel with use_regex
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;
  };
  static void append_steps(const JsonCursor& spec, std::vector<Step>& steps);
  static Step split_step(const JsonCursor& spec);
  static Step byte_level_step(const JsonCursor& spec);
  void run_from(size_t step, std::string_view text, const Emit& emit) const;
  void split(const Step& step, std::string_view text, size_t next, const Emit& emit) const;
  void byte_level(const Step& step, std::string_view text, size_t next, const Emit& emit) const;

  std::vector<Step> steps_;
};

}  // namespace flywheel::hf
