// Chat formats (data/chat_format.h) on hand-written conversations: each expected text is read off the
// shipped chat_template (quoted in chat_format_chatml.cpp / chat_format_llama3.cpp); the loss mask and the
// stretch tokenization of encode_chat on a small tokenizer whose behaviour is stated below; detection; and
// Python's strip semantics (data/py_strings.h). test_chat_oracle.cpp compares with the real templates.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>

#include "data/chat_format.h"
#include "data/chat_format_detect.h"
#include "data/py_strings.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::error_message;
using Ids = std::vector<int32_t>;

const ChatMessage kSystem{ChatRole::kSystem, "Be brief."}, kUser{ChatRole::kUser, "Hi"};

std::string chatml(const Conversation& messages, bool generation = false, bool thinking = true) {
  return make_chat_format("chatml", {.enable_thinking = thinking})->render(messages, generation).text();
}

std::string llama3(const Conversation& messages, bool generation = false, std::string date = "26 Jul 2024") {
  return make_chat_format("llama3", {.date_string = date})->render(messages, generation).text();
}

ChatMessage assistant(std::string content) { return {ChatRole::kAssistant, std::move(content)}; }
ChatMessage user(std::string content) { return {ChatRole::kUser, std::move(content)}; }

TEST(ChatFormat, ChatMlTurnsAndGenerationPrompt) {
  EXPECT_EQ(chatml({kSystem, kUser}, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chatml({kUser}, true, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // A system message after the first is an ordinary turn; contents are not stripped.
  EXPECT_EQ(chatml({user(" a "), {ChatRole::kSystem, "\nS "}}),
            "<|im_start|>user\n a <|im_end|>\n<|im_start|>system\n\nS <|im_end|>\n");
}

TEST(ChatFormat, ChatMlThinkBlocksAfterTheLastQueryOnly) {
  // Before the last user query the reasoning goes; the final turn always carries a think block.
  EXPECT_EQ(chatml({user("q1"), assistant("<think>\nold\n</think>\n\nA1"), user("q2"), assistant("A2")}),
            "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\nA2<|im_end|>\n");
  // After the last query, a non-final turn keeps its think block only when it has reasoning.
  EXPECT_EQ(chatml({user("q"), assistant("<think>r</think>A"), assistant("B"), assistant("C")}),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA<|im_end|>\n"
            "<|im_start|>assistant\nB<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nC<|im_end|>\n");
  // content: after the LAST </think>; reasoning: before the FIRST </think>, after its last <think>.
  EXPECT_EQ(chatml({user("q"), assistant("x<think>a<think>\nb\n</think>mid</think>\n\nend")}),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nb\n</think>\n\nend<|im_end|>\n");
}

TEST(ChatFormat, ChatMlToolResponseTurnsAreNotQueries) {
  // The wrapped user turn is skipped, so the last query is messages[0] and messages[1] keeps its reasoning.
  EXPECT_EQ(
      chatml({user("q"), assistant("<think>t</think>A"), user("<tool_response>r</tool_response>"), assistant("B")}),
      "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nt\n</think>\n\nA<|im_end|>\n"
      "<|im_start|>user\n<tool_response>r</tool_response><|im_end|>\n"
      "<|im_start|>assistant\n<think>\n\n</think>\n\nB<|im_end|>\n");
}

TEST(ChatFormat, ChatMlStripsOnlyNewlinesAsPythonDoes) {
  // lstrip('\n') / strip('\n') leave spaces (@huggingface/jinja strips them: see make_chat_corpus.py).
  EXPECT_EQ(chatml({user("q"), assistant("<think> r </think>\n  A ")}),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n r \n</think>\n\n  A <|im_end|>\n");
}

TEST(ChatFormat, Llama3SystemPreludeAndTurns) {
  const std::string prelude =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
      "Today Date: ";
  EXPECT_EQ(llama3({kUser}, true), prelude +
                                       "26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
                                       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(llama3({{ChatRole::kSystem, " S\n"}, user("\tq "), assistant("\nA\n\n")}, false, "01 Jan 2031"),
            prelude +
                "01 Jan 2031\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>");
  // trim is Python's strip(): U+0085 and U+3000 go, U+FEFF stays.
  EXPECT_EQ(llama3({user("\xC2\x85\xE3\x80\x80q\xEF\xBB\xBF")}),
            prelude + "26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nq\xEF\xBB\xBF<|eot_id|>");
  EXPECT_EQ(ChatFormatOptions{}.date_string, "26 Jul 2024");
  EXPECT_EQ(llama3_date_today().size(), 11u);  // "05 Mar 2025"
}

// The text of the pieces in the loss, concatenated.
std::string loss_text(const ChatRendering& rendering) {
  std::string text;
  for (const ChatPiece& piece : rendering.pieces)
    if (piece.loss) text += piece.text;
  return text;
}

TEST(ChatFormat, TheLossCoversAssistantTextAndEndOfTurnOnly) {
  const Conversation chat = {kSystem, user("q"), assistant("<think>\nx\n</think>\n\nA1"), user("q2"), assistant("A2")};
  EXPECT_EQ(loss_text(make_chat_format("chatml")->render(chat, false)),
            "A1<|im_end|><think>\n\n</think>\n\nA2<|im_end|>");
  // Without thinking the empty block belongs to the generation prompt, not to what the model writes.
  EXPECT_EQ(loss_text(make_chat_format("chatml", {.enable_thinking = false})->render(chat, false)),
            "A1<|im_end|>A2<|im_end|>");
  // Llama-3's template knows no think blocks: the content is only trimmed.
  EXPECT_EQ(loss_text(make_chat_format("llama3")->render(chat, false)),
            "<think>\nx\n</think>\n\nA1<|eot_id|>A2<|eot_id|>");
  EXPECT_EQ(loss_text(make_chat_format("llama3")->render(chat, true)),
            loss_text(make_chat_format("llama3")->render(chat, false)));
}

// A tokenizer with known rules: the special tokens below by content; a run of '\n' is one token
// (100 + its length, like the "\s*[\r\n]+" pre-token); any other byte is its own token (its value).
class RunTokenizer final : public Tokenizer {
 public:
  explicit RunTokenizer(std::map<std::string, int32_t> specials) : specials_(std::move(specials)) {}
  int64_t vocab_size() const override { return 2000; }
  std::optional<int32_t> token_id(std::string_view content) const override {
    const auto found = specials_.find(std::string(content));
    return found == specials_.end() ? std::nullopt : std::optional<int32_t>(found->second);
  }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::optional<int32_t> eos_id() const override { return std::nullopt; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  std::string name() const override { return "runs"; }

 private:
  std::vector<int32_t> do_encode(std::string_view text, const EncodeOptions&) const override {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size();) {
      bool matched = false;
      for (const auto& [content, id] : specials_)
        if (text.substr(i).starts_with(content)) {
          ids.push_back(id), i += content.size(), matched = true;
          break;
        }
      if (matched) continue;
      size_t run = 0;
      while (i + run < text.size() && text[i + run] == '\n') ++run;
      ids.push_back(run ? 100 + static_cast<int32_t>(run) : static_cast<unsigned char>(text[i]));
      i += run ? run : 1;
    }
    return ids;
  }
  std::string do_decode(std::span<const int32_t>, const DecodeOptions&) const override { return ""; }
  std::map<std::string, int32_t> specials_;
};

const RunTokenizer kChatMlTokens({{"<|im_start|>", 1000}, {"<|im_end|>", 1001}, {"<think>", 1002}, {"</think>", 1003}});

TEST(ChatFormat, EncodeTakesSpecialsAsIdsAndMasksPerToken) {
  const ChatTokens tokens =
      encode_conversation(*make_chat_format("chatml"), kChatMlTokens, Conversation{user("q"), assistant("A")});
  // <|im_start|> user \n q <|im_end|> \n <|im_start|> assistant \n <think> \n\n </think> \n\n A <|im_end|> \n
  const Ids expected = {1000, 'u', 's', 'e', 'r', 101, 'q',  1001, 101,  1000, 'a', 's',  's', 'i',
                        's',  't', 'a', 'n', 't', 101, 1002, 102,  1003, 102,  'A', 1001, 101};
  EXPECT_EQ(tokens.ids, expected);
  std::vector<uint8_t> loss(expected.size(), 0);
  for (size_t i = 20; i <= 25; ++i) loss[i] = 1;  // <think> ... <|im_end|>
  EXPECT_EQ(tokens.loss, loss);
  EXPECT_EQ(tokens.ids, kChatMlTokens.encode(
                            make_chat_format("chatml")->render(Conversation{user("q"), assistant("A")}, false).text()));
}

TEST(ChatFormat, ATokenSpanningTheHeaderAndTheContentIsInTheLoss) {
  // A history turn: "assistant\n" + "\n\nA" is one stretch whose "\n\n\n" token crosses the header's end.
  const Conversation chat = {user("q"), assistant("\n\nA"), user("r"), assistant("B")};
  const ChatRendering rendering = make_chat_format("chatml")->render(chat, false);
  const ChatTokens tokens = encode_chat(rendering, kChatMlTokens);
  EXPECT_EQ(tokens.ids, kChatMlTokens.encode(rendering.text()));
  const auto at = std::find(tokens.ids.begin(), tokens.ids.end(), 103) - tokens.ids.begin();  // "\n\n\n"
  ASSERT_LT(at, static_cast<std::ptrdiff_t>(tokens.ids.size()));
  EXPECT_EQ(tokens.loss[at], 1);
  EXPECT_EQ(tokens.loss[at - 1], 0);  // the 't' of "assistant"
  EXPECT_EQ(tokens.loss[at + 1], 1);  // 'A'
}

TEST(ChatFormat, GenerationPromptIds) {
  const Ids ids = encode_generation_prompt(*make_chat_format("chatml", {.enable_thinking = false}), kChatMlTokens,
                                           Conversation{user("q")});
  const Ids tail = {1000, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', 101, 1002, 102, 1003, 102};
  ASSERT_GE(ids.size(), tail.size());
  EXPECT_EQ(Ids(ids.end() - static_cast<std::ptrdiff_t>(tail.size()), ids.end()), tail);
}

TEST(ChatFormat, NamesAndTokenizerChecks) {
  EXPECT_NE(error_message([] { make_chat_format("qwen"); }).find("allowed: chatml (Qwen3), llama3"), std::string::npos);
  EXPECT_EQ(chat_format_names(), (std::vector<std::string>{"chatml", "llama3"}));
  check_chat_tokenizer(*make_chat_format("chatml"), kChatMlTokens);
  const std::string message = error_message([] { check_chat_tokenizer(*make_chat_format("llama3"), kChatMlTokens); });
  EXPECT_NE(message.find("<|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>"), std::string::npos)
      << message;
  EXPECT_NE(error_message([] {
              encode_conversation(*make_chat_format("llama3"), kChatMlTokens, Conversation{user("q")});
            }).find("has no token <|begin_of_text|>"),
            std::string::npos);
}

TEST(ChatFormat, DetectionFromTemplatesTokensAndConfigFiles) {
  EXPECT_EQ(chat_format_from_template("{{'<|im_start|>'}}{% if enable_thinking %}"), "chatml");
  EXPECT_EQ(chat_format_from_template("<|start_header_id|> Cutting Knowledge Date"), "llama3");
  EXPECT_EQ(chat_format_from_template("{{'<|im_start|>system\\nYou are Qwen'}}"), std::nullopt);  // Qwen2.5-like
  EXPECT_EQ(chat_format_from_tokens(kChatMlTokens), "chatml");
  EXPECT_EQ(chat_format_from_tokens(RunTokenizer({{"<|im_start|>", 1}, {"<|im_end|>", 2}})), std::nullopt);
  testing::TempDir dir("chat-detect");
  const auto write_config = [&](const nlohmann::json& config) {
    std::ofstream(dir.path / "tokenizer_config.json") << config.dump();
  };
  const RunTokenizer none({});
  EXPECT_NE(error_message([&] { detect_chat_format(dir.path, none); }).find("has no chat_template"), std::string::npos);
  EXPECT_EQ(detect_chat_format(dir.path, kChatMlTokens), "chatml");
  nlohmann::json named = nlohmann::json::array();
  named.push_back({{"name", "tool_use"}, {"template", "x"}});
  named.push_back({{"name", "default"}, {"template", "<|start_header_id|>Cutting Knowledge Date"}});
  write_config({{"chat_template", named}});
  EXPECT_EQ(detect_chat_format(dir.path, none), "llama3");
  write_config({{"chat_template", "{{ messages }}"}});
  EXPECT_NE(error_message([&] { detect_chat_format(dir.path, kChatMlTokens); }).find("is neither Qwen3's ChatML"),
            std::string::npos);
}

TEST(ChatFormat, PythonStripSemantics) {
  EXPECT_EQ(py::strip(" \t\n x \r\x0b\x0c"), "x");
  EXPECT_EQ(py::strip("\x1c\x1fx\xC2\x85"), "x");                                  // U+001C..1F, U+0085
  EXPECT_EQ(py::strip("\xEF\xBB\xBFx\xEF\xBB\xBF"), "\xEF\xBB\xBFx\xEF\xBB\xBF");  // U+FEFF is not whitespace
  EXPECT_EQ(py::strip("\xE3\x80\x80x\xE2\x80\xA8"), "x");                          // U+3000, U+2028
  EXPECT_EQ(py::strip("\xC2\xA0\xE1\x9A\x80x\xE2\x80\x8A\xE2\x80\xAF\xE2\x81\x9F"), "x");
  EXPECT_EQ(py::strip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");  // U+200B (zero width space) is not
  EXPECT_EQ(py::rstrip("x\x85"), "x\x85");                 // a lone continuation byte is not U+0085
  EXPECT_EQ(py::strip("   "), "");
  EXPECT_EQ(py::lstrip("\n\n a\n", '\n'), " a\n");
  EXPECT_EQ(py::rstrip("\n a\n\n", '\n'), "\n a");
  EXPECT_EQ(py::strip("\n\n", '\n'), "");
}

}  // namespace
}  // namespace flywheel
