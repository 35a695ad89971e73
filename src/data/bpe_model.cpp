#include "data/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"

namespace flywheel::hf {
namespace {

// Ids index dense tables; a larger id in a file is far more likely a typo than a vocabulary.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

void expect_empty_or_null(const JsonCursor& model, std::string_view key) {
  const auto value = model.find(key);
  if (value && value->string() != "")
    value->fail("must be null or \"\" (continuing-subword prefixes and end-of-word suffixes are not supported)");
}

}  // namespace

BpeModel::BpeModel(BpeModel&& other) noexcept
    : vocab_(std::move(other.vocab_)),
      tokens_(std::move(other.tokens_)),
      small_char_ids_(std::move(other.small_char_ids_)),
      merges_(std::move(other.merges_)),
      ignore_merges_(other.ignore_merges_),
      byte_fallback_(other.byte_fallback_),
      fuse_unk_(other.fuse_unk_),
      unk_id_(other.unk_id_) {}

BpeModel BpeModel::from_json(const JsonCursor& model) {
  model.expect_object();
  const std::string type = model.find("type") ? model.type() : "BPE";  // old files omit it
  if (type != "BPE")
    model.at("type").fail("unsupported model type \"" + type +
                          "\"; supported: BPE (WordPiece, WordLevel and Unigram are not implemented)");
  if (const auto dropout = model.find("dropout"); dropout && dropout->number() != 0.0)
    dropout->fail("BPE dropout must be null or 0: sampled merges would make tokenization irreproducible");
  expect_empty_or_null(model, "continuing_subword_prefix");
  expect_empty_or_null(model, "end_of_word_suffix");

  BpeModel bpe;
  bpe.read_vocab(model.at("vocab"));
  bpe.read_merges(model.at("merges"));
  bpe.ignore_merges_ = model.boolean_or("ignore_merges", false);
  bpe.byte_fallback_ = model.boolean_or("byte_fallback", false);
  bpe.fuse_unk_ = model.boolean_or("fuse_unk", false);
  if (const auto unk = model.find("unk_token")) {
    const auto id = bpe.token_to_id(unk->string());
    if (!id) unk->fail("unk_token \"" + unk->string() + "\" is not in $.model.vocab");
    bpe.unk_id_ = *id;
  }
  return bpe;
}

void BpeModel::read_vocab(const JsonCursor& vocab) {
  vocab.expect_object();
  vocab_.reserve(vocab.size());
  for (const auto& [token, value] : vocab.json().items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxTokenId)
      vocab.fail("the id of \"" + token + "\" must be an integer in [0, " + std::to_string(kMaxTokenId) +
                 "], found " + value.dump());
    const auto id = static_cast<int32_t>(value.get<int64_t>());
    if (token.empty()) vocab.fail("the empty string is not a token (id " + std::to_string(id) + ")");
    if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(static_cast<size_t>(id) + 1);
    if (!tokens_[id].empty())
      vocab.fail("id " + std::to_string(id) + " is given to both \"" + tokens_[id] + "\" and \"" + token + "\"");
    tokens_[id] = token;
    vocab_.emplace(token, id);
  }
  small_char_ids_.assign(512, -1);
  for (const auto& [token, id] : vocab_) {
    size_t length = 0;
    const char32_t code_point = utf8::decode_at(token, 0, &length);
    if (length == token.size() && code_point < small_char_ids_.size()) small_char_ids_[code_point] = id;
  }
}

void BpeModel::read_merges(const JsonCursor& merges) {
  merges.expect_array();
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const JsonCursor entry = merges[rank];
    std::string left, right;
    if (entry.json().is_string()) {
      // The legacy form "a b": exactly one space, which is why it cannot hold tokens with spaces.
      const std::string line = entry.string();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        entry.fail("a merge string must be two tokens separated by one space, found \"" + line + "\"");
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (entry.json().is_array() && entry.size() == 2) {
      left = entry[0].string();
      right = entry[1].string();
    } else {
      entry.fail("a merge must be \"a b\" or [\"a\", \"b\"]");
    }
    const auto left_id = token_to_id(left), right_id = token_to_id(right), merged = token_to_id(left + right);
    if (!left_id) entry.fail("\"" + left + "\" is not in $.model.vocab");
    if (!right_id) entry.fail("\"" + right + "\" is not in $.model.vocab");
    if (!merged) entry.fail("the merged token \"" + left + right + "\" is not in $.model.vocab");
    // As in the HF library, a repeated pair keeps its last rank.
    merges_[pair_key(*left_id, *right_id)] = Merge{static_cast<uint32_t>(rank), *merged};
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || tokens_[id].empty()) return nullptr;
  return &tokens_[id];
}

std::optional<int32_t> BpeModel::char_id(std::string_view character) const {
  const char32_t code_point = utf8::decode_at(character, 0);
  if (code_point < small_char_ids_.size()) {
    const int32_t id = small_char_ids_[code_point];
    if (id < 0) return std::nullopt;
    return id;
  }
  return token_to_id(character);
}

void BpeModel::initial_symbols(std::string_view piece, std::vector<int32_t>& symbols) const {
  std::optional<int32_t> pending_unk;  // an unknown-token run not yet written (fuse_unk joins runs)
  for (size_t at = 0; at < piece.size();) {
    const size_t length = utf8::sequence_length(static_cast<unsigned char>(piece[at]));
    const std::string_view character = piece.substr(at, length);
    at += length;
    if (const auto id = char_id(character)) {
      if (pending_unk) symbols.push_back(*std::exchange(pending_unk, std::nullopt));
      symbols.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (char c : character) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(c));
        if (const auto id = token_to_id(name)) bytes.push_back(*id);
      }
      if (bytes.size() == character.size()) {
        if (pending_unk) symbols.push_back(*std::exchange(pending_unk, std::nullopt));
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (!unk_id_) continue;  // no unknown token: the HF library drops the character
    if (pending_unk && !fuse_unk_) symbols.push_back(*pending_unk);
    pending_unk = unk_id_;
  }
  if (pending_unk) symbols.push_back(*pending_unk);
}

void BpeModel::merge(std::vector<int32_t>& ids) const {
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  struct Candidate {
    uint32_t rank;
    int32_t position;
    int32_t merged;
  };
  // std::push_heap keeps the largest first, so "later" must order the lowest (rank, position) last.
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.position > b.position;
  };
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Candidate> heap;
  prev.resize(n);
  next.resize(n);
  heap.clear();
  const auto push_pair = [&](int32_t position, int32_t right) {
    const auto it = merges_.find(pair_key(ids[position], ids[right]));
    if (it == merges_.end()) return;
    heap.push_back(Candidate{it->second.rank, position, it->second.merged});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    const int32_t right = next[top.position];
    if (ids[top.position] < 0 || right >= n) continue;  // merged away, or now the last symbol
    // A stale entry: the pair at this position changed since it was pushed.
    const auto current = merges_.find(pair_key(ids[top.position], ids[right]));
    if (current == merges_.end() || current->second.merged != top.merged) continue;
    ids[top.position] = top.merged;
    ids[right] = -1;
    next[top.position] = next[right];
    if (next[right] < n) prev[next[right]] = top.position;
    if (prev[top.position] >= 0) push_pair(prev[top.position], top.position);
    if (next[top.position] < n) push_pair(top.position, next[top.position]);
  }
  ids.erase(std::remove(ids.begin(), ids.end(), -1), ids.end());
}

void BpeModel::tokenize(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (const auto id = token_to_id(piece)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = piece.size() <= kCacheMaxBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    if (const auto hit = cache_.find(piece); hit != cache_.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  initial_symbols(piece, ids);
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.emplace(std::string(piece), std::move(ids));
  }
}

}  // namespace flywheel::hf
