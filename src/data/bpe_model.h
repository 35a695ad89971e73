// The BPE `model` of tokenizer.json: a vocabulary (token string -> id), ranked merges, and the merge
// loop that turns one pre-token into ids.
//
// Merging follows the HF library's Word::merge_all: the pre-token starts as one symbol per
// character; a min-heap holds every adjacent pair that has a merge, ordered by (rank, position);
// the lowest is merged (stale entries are skipped) and the pairs it forms with its neighbours are
// pushed. O(n log n) per pre-token, and each distinct pre-token is merged once: results are cached.
//
// Options as the HF library reads them: `ignore_merges` (Llama-3: a pre-token that is itself in the
// vocabulary is that one token, merges or not), `byte_fallback` (a character missing from the
// vocabulary becomes its <0xXX> byte tokens), `unk_token` / `fuse_unk` (else it becomes the unknown
// token; without one it is dropped, as the HF library does). `dropout` must be null or 0 (sampled
// merges are not reproducible), and continuing_subword_prefix / end_of_word_suffix empty or null
// (byte-level models do not use them).
#pragma once

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/hf_json.h"

namespace flywheel::hf {

// Heterogeneous lookup, so a string_view finds a std::string key without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Reads and validates `$.model` (type "BPE"): every merge must name tokens of the vocabulary and
  // form one; ids must be non-negative and distinct. Errors name the JSON path.
  static BpeModel from_json(const JsonCursor& model);

  // Appends the ids of one pre-token (thread-safe: the cache is shared under a lock).
  void tokenize(std::string_view piece, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token of `id`, or nullptr for an id the vocabulary does not have.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id of the vocabulary.
  int64_t id_limit() const { return static_cast<int64_t>(tokens_.size()); }
  size_t vocabulary_size() const { return vocab_.size(); }
  size_t merge_count() const { return merges_.size(); }

  BpeModel(BpeModel&& other) noexcept;

 private:
  BpeModel() = default;
  struct Merge {
    uint32_t rank;
    int32_t merged;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void read_vocab(const JsonCursor& vocab);
  void read_merges(const JsonCursor& merges);
  void initial_symbols(std::string_view piece, std::vector<int32_t>& symbols) const;
  void merge(std::vector<int32_t>& symbols) const;
  std::optional<int32_t> char_id(std::string_view character) const;

  TokenIds vocab_;
  std::vector<std::string> tokens_;         // id -> token ("" where the id is unused)
  std::vector<int32_t> small_char_ids_;     // code point < 512 -> id of its one-character token, or -1
  std::unordered_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  std::optional<int32_t> unk_id_;

  static constexpr size_t kCacheEntries = 1 << 17;  // cleared when full
  static constexpr size_t kCacheMaxBytes = 256;     // longer pre-tokens are merged every time
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace flywheel::hf
