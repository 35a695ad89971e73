// HfTokenizer: reading and validating tokenizer.json and tokenizer_config.json.
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "data/hf_tokenizer.h"

namespace flywheel {
namespace {

constexpr int64_t kMaxAddedId = (int64_t{1} << 24) - 1;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.good(), path.string(), ": cannot open the file");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

hf::AddedToken read_added_token(const hf::JsonCursor& entry) {
  entry.expect_object();
  hf::AddedToken token;
  const int64_t id = entry.at("id").integer();
  if (id < 0 || id > kMaxAddedId)
    entry.at("id").fail("an added token's id must lie in [0, " + std::to_string(kMaxAddedId) + "]");
  token.id = static_cast<int32_t>(id);
  token.content = entry.at("content").string();
  if (token.content.empty()) entry.at("content").fail("an added token's content must not be empty");
  token.special = entry.boolean_or("special", false);
  token.single_word = entry.boolean_or("single_word", false);
  token.lstrip = entry.boolean_or("lstrip", false);
  token.rstrip = entry.boolean_or("rstrip", false);
  token.normalized = entry.boolean_or("normalized", !token.special);  // the HF library's default
  return token;
}

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::filesystem::path& path) {
  const std::filesystem::path file = std::filesystem::is_directory(path) ? path / "tokenizer.json" : path;
  const std::filesystem::path config_file = file.parent_path() / "tokenizer_config.json";
  const std::string config = std::filesystem::exists(config_file) ? read_file(config_file) : "";
  return from_json(read_file(file), file.string(), config, config_file.string());
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_json(std::string_view tokenizer_json, const std::string& file,
                                                    std::string_view config_json, const std::string& config_file) {
  const nlohmann::json document = hf::parse_json(tokenizer_json, file);
  const hf::JsonCursor root(document, file);
  root.expect_object();
  if (const auto truncation = root.find("truncation"))
    truncation->fail("truncation must be null: Flywheel cuts sequences itself");
  if (const auto padding = root.find("padding")) padding->fail("padding must be null: Flywheel pads batches itself");

  std::unique_ptr<HfTokenizer> tokenizer(new HfTokenizer(file, hf::BpeModel::from_json(root.at("model"))));
  tokenizer->normalizer_ = hf::Normalizer::from_json(root.find("normalizer"));
  tokenizer->pre_tokenizer_ = hf::PreTokenizer::from_json(root.find("pre_tokenizer"));
  tokenizer->decoder_ = hf::Decoder::from_json(root.find("decoder"));
  if (const auto added = root.find("added_tokens")) tokenizer->read_added_tokens(*added);
  tokenizer->build_matchers();
  tokenizer->vocab_size_ = tokenizer->bpe_.id_limit();
  for (const hf::AddedToken& token : tokenizer->added_)
    tokenizer->vocab_size_ = std::max<int64_t>(tokenizer->vocab_size_, int64_t{token.id} + 1);

  const HfTokenizer* self = tokenizer.get();
  tokenizer->post_processor_ = hf::PostProcessor::from_json(root.find("post_processor"), [self](int64_t id) {
    return id >= 0 && id <= kMaxAddedId && self->id_to_token(static_cast<int32_t>(id)).has_value();
  });
  tokenizer->bos_ = tokenizer->post_processor_.leading_id();
  if (!config_json.empty()) {
    const nlohmann::json config = hf::parse_json(config_json, config_file);
    tokenizer->read_config(hf::JsonCursor(config, config_file));
  }
  return tokenizer;
}

void HfTokenizer::read_added_tokens(const hf::JsonCursor& list) {
  list.expect_array();
  for (size_t i = 0; i < list.size(); ++i) {
    const hf::JsonCursor entry = list[i];
    hf::AddedToken token = read_added_token(entry);
    if (const std::string* in_vocab = bpe_.id_to_token(token.id); in_vocab && *in_vocab != token.content)
      entry.at("id").fail("id " + std::to_string(token.id) + " of \"" + token.content +
                          "\" collides with the vocabulary's \"" + *in_vocab + "\"");
    if (const auto other = added_index_by_id_.find(token.id); other != added_index_by_id_.end())
      entry.at("id").fail("id " + std::to_string(token.id) + " is given to both \"" + added_[other->second].content +
                          "\" and \"" + token.content + "\"");
    if (const auto other = added_ids_by_content_.find(token.content); other != added_ids_by_content_.end())
      entry.at("content").fail("\"" + token.content + "\" is added twice, as ids " + std::to_string(other->second) +
                               " and " + std::to_string(token.id));
    if (const auto in_vocab = bpe_.token_to_id(token.content); in_vocab && *in_vocab != token.id)
      entry.at("id").fail("\"" + token.content + "\" is id " + std::to_string(*in_vocab) +
                          " in the vocabulary but id " + std::to_string(token.id) + " here");
    added_index_by_id_.emplace(token.id, added_.size());
    added_ids_by_content_.emplace(token.content, token.id);
    added_.push_back(std::move(token));
  }
}

void HfTokenizer::build_matchers() {
  std::vector<hf::AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (const hf::AddedToken& token : added_) {
    if (token.normalized) {
      normalized.push_back(token);
      normalized_patterns.push_back(normalizer_.apply(token.content));
    } else {
      raw.push_back(token);
      raw_patterns.push_back(token.content);
    }
  }
  raw_matcher_ = hf::AddedTokenMatcher(raw, raw_patterns);
  normalized_matcher_ = hf::AddedTokenMatcher(normalized, normalized_patterns);
}

std::optional<int32_t> HfTokenizer::config_token(const hf::JsonCursor& config, std::string_view key) const {
  const auto value = config.find(key);
  if (!value) return std::nullopt;
  // Older files write the token as an AddedToken object {"content": ...}.
  const hf::JsonCursor content = value->json().is_object() ? value->at("content") : *value;
  const auto id = token_id(content.string());
  if (!id) content.fail("\"" + content.string() + "\" is not a token of " + name_);
  return id;
}

void HfTokenizer::read_config(const hf::JsonCursor& config) {
  config.expect_object();
  // A config that says "bos_token": null (Qwen) has no BOS; one that does not mention it keeps the template's.
  if (config.json().contains("bos_token")) bos_ = config_token(config, "bos_token");
  eos_ = config_token(config, "eos_token");
  pad_ = config_token(config, "pad_token");
}

}  // namespace flywheel
