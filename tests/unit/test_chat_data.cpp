// Chat JSONL (data/chat_messages.h, data/chat_data.h): the three layouts read, and every bad input refused
// with a message that names the file, the line, the key / message index and what is allowed.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "data/chat_data.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::error_message;

const std::string kWhere = "chat file 'c.jsonl' line 7: ";

std::string sft_error(const std::string& line) {
  return error_message([&] { parse_chat_example(line, kWhere); });
}
std::string dpo_error(const std::string& line) {
  return error_message([&] { parse_chat_preference(line, kWhere); });
}
std::string rl_error(const std::string& line) {
  return error_message([&] { parse_chat_prompt(line, kWhere); });
}

// `message` starts with the file and line and holds each of `parts`.
void expect_error(const std::string& message, std::initializer_list<std::string> parts) {
  EXPECT_TRUE(message.starts_with(kWhere)) << message;
  for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << part << " in: " << message;
}

std::string write_file(const testing::TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = (dir.path / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(ChatData, SftLineReadsRolesAndContents) {
  const ChatExample example = parse_chat_example(
      R"({"id": 3, "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": ""},)"
      R"( {"content": "A\u00e9", "role": "assistant"}]})",
      kWhere, 7);
  const Conversation expected = {{ChatRole::kSystem, "S"}, {ChatRole::kUser, ""}, {ChatRole::kAssistant, "A\xC3\xA9"}};
  EXPECT_EQ(example.messages, expected);
  EXPECT_EQ(example.line, 7);
}

TEST(ChatData, MessageErrorsNameTheIndexAndWhatIsAllowed) {
  const std::string u = R"({"role": "user", "content": "q"}, )";
  const std::string a = R"(, {"role": "assistant", "content": "a"})";
  expect_error(sft_error(R"({"messages": [)" + u + R"({"role": "tool", "content": "x"})" + a + "]}"),
               {"messages[1] has role \"tool\"", "allowed roles: \"system\", \"user\", \"assistant\"", "tool"});
  expect_error(sft_error(R"({"messages": [{"role": "developer", "content": "x"})" + a + "]}"),
               {"messages[0] has role \"developer\"", "\"system\" message"});
  expect_error(sft_error(R"({"messages": [{"role": 1, "content": "x"})" + a + "]}"),
               {"messages[0] \"role\" must be a string, got number"});
  expect_error(sft_error(R"({"messages": [{"content": "x"})" + a + "]}"), {"messages[0] has no \"role\""});
  expect_error(sft_error(R"({"messages": [)" + u + R"({"role": "assistant"}]})"),
               {"messages[1] has no \"content\"", "string \"content\""});
  expect_error(sft_error(R"({"messages": [)" + u + R"({"role": "assistant", "content": null}]})"),
               {"messages[1] \"content\" is null", "must be a string"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]})" + a + "]}"),
               {"messages[0] \"content\" is a list of content parts", "content parts are not supported"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": 5})" + a + "]}"),
               {"messages[0] \"content\" must be a string, got number"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": {"x": 1}})" + a + "]}"),
               {"must be a string, got object"});
  expect_error(sft_error(R"({"messages": ["hi")" + a + "]}"), {"messages[0] must be an object", "got string"});
}

TEST(ChatData, KeysBeyondRoleAndContentAreRefusedByName) {
  const std::string a = R"(, {"role": "assistant", "content": "a"}]})";
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": "q", "name": "bob"})" + a),
               {"messages[0] has key \"name\"", "exactly the keys \"role\" and \"content\"", "dropped silently"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",)"
                         R"( "tool_calls": []}]})"),
               {"messages[1] has key \"tool_calls\"", "tool calls are not supported"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",)"
                         R"( "reasoning_content": "r"}]})"),
               {"key \"reasoning_content\"", "<think>"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": "q", "weight": 1})" + a),
               {"messages[0] has key \"weight\""});
}

TEST(ChatData, ConversationShapeErrors) {
  expect_error(sft_error(R"({"conversation": []})"), {"missing key \"messages\"", "{\"messages\": [...]}"});
  expect_error(sft_error(R"({"messages": "hi"})"), {"\"messages\" must be a list of messages", "got string"});
  expect_error(sft_error(R"({"messages": []})"), {"\"messages\" is an empty list"});
  expect_error(sft_error(R"({"messages": [{"role": "user", "content": "q"}]})"),
               {"\"messages\" ends with a user message (messages[0])", "must end with an assistant message"});
  expect_error(sft_error(R"({"tools": [], "messages": [{"role": "assistant", "content": "a"}]})"),
               {"key \"tools\" is not supported"});
  expect_error(sft_error(R"({"messages": 1, "messages": 2})"), {"key \"messages\" is given twice"});
  expect_error(sft_error("[1]"), {"expected a JSON object {\"messages\": [...]}", "got array"});
  expect_error(sft_error("{\"messages\": [}"), {"not valid JSON"});
}

TEST(ChatData, RlPromptsEndWithAUserTurnAndKeepTheirTaskFields) {
  const ChatPrompt prompt = parse_chat_prompt(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "2+2?"}], "answer": "4",)"
      R"( "meta": {"level": 1}})",
      kWhere, 2);
  EXPECT_EQ(prompt.messages.size(), 2u);
  EXPECT_EQ(prompt.fields, nlohmann::json::parse(R"({"answer": "4", "meta": {"level": 1}})"));
  expect_error(rl_error(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})"),
               {"ends with an assistant message (messages[1])", "must end with a user message", "policy answers"});
  expect_error(rl_error(R"({"prompt": "q"})"), {"missing key \"messages\""});
  expect_error(rl_error(R"({"messages": [{"role": "user", "content": "q"}], "documents": []})"),
               {"key \"documents\" is not supported"});
}

TEST(ChatData, PreferencePairsInTheConversationalLayout) {
  const ChatPreference pair = parse_chat_preference(
      R"({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}],)"
      R"( "rejected": [{"role": "assistant", "content": "bad"}], "score": 0.5})",
      kWhere, 4);
  EXPECT_EQ(pair.prompt, (Conversation{{ChatRole::kUser, "q"}}));
  EXPECT_EQ(pair.chosen, (ChatMessage{ChatRole::kAssistant, "good"}));
  EXPECT_EQ(pair.rejected, (ChatMessage{ChatRole::kAssistant, "bad"}));
  EXPECT_EQ(pair.line, 4);
}

TEST(ChatData, PreferenceErrors) {
  const std::string prompt = R"("prompt": [{"role": "user", "content": "q"}])";
  const std::string chosen = R"("chosen": [{"role": "assistant", "content": "a"}])";
  const std::string rejected = R"("rejected": [{"role": "assistant", "content": "b"}])";
  expect_error(dpo_error("{" + chosen + ", " + rejected + "}"), {"missing key \"prompt\""});
  expect_error(dpo_error("{" + prompt + ", " + rejected + "}"), {"missing key \"chosen\""});
  expect_error(dpo_error("{" + prompt + ", " + chosen + "}"), {"missing key \"rejected\""});
  expect_error(dpo_error(R"({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}], )" +
                         chosen + ", " + rejected + "}"),
               {"\"prompt\" ends with an assistant message (prompt[1])", "must end with a user message"});
  expect_error(dpo_error("{" + prompt + R"(, "chosen": "a", )" + rejected + "}"),
               {"\"chosen\" is a string", "list with one assistant message"});
  expect_error(dpo_error("{" + prompt + ", " + chosen + R"(, "rejected": [{"role": "assistant", "content": "b"},)" +
                         R"( {"role": "assistant", "content": "c"}]})"),
               {"\"rejected\" has 2 messages", "exactly one assistant message"});
  expect_error(dpo_error("{" + prompt + R"(, "chosen": [{"role": "user", "content": "a"}], )" + rejected + "}"),
               {"\"chosen\"[0] has role \"user\"", "must be an assistant message"});
  expect_error(dpo_error("{" + prompt + R"(, "chosen": [], )" + rejected + "}"), {"\"chosen\" is an empty list"});
  expect_error(dpo_error("{" + prompt + ", " + chosen + R"(, "rejected": [{"role": "assistant", "content": 1}]})"),
               {"rejected[0] \"content\" must be a string"});
}

TEST(ChatData, FilesAreReadWholeWithLineNumbers) {
  testing::TempDir dir("chat-data");
  const std::string sft = write_file(dir, "sft.jsonl",
                                     "\n"
                                     R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", )"
                                     R"("content": "a"}]})"
                                     "\n  \n"
                                     R"({"messages": [{"role": "assistant", "content": "b"}]})"
                                     "\n");
  const std::vector<ChatExample> examples = read_chat_examples(sft);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].line, 2);
  EXPECT_EQ(examples[1].line, 4);
  const std::string bad = write_file(dir, "bad.jsonl",
                                     R"({"messages": [{"role": "assistant", "content": "a"}]})"
                                     "\n"
                                     R"({"messages": [{"role": "robot", "content": "a"}]})"
                                     "\n");
  EXPECT_NE(
      error_message([&] { read_chat_examples(bad); }).find("chat file '" + bad + "' line 2: messages[0] has role"),
      std::string::npos);
  const std::string prompts =
      write_file(dir, "rl.jsonl", R"({"messages": [{"role": "user", "content": "q"}], "k": 1})");
  EXPECT_EQ(read_chat_prompts(prompts).at(0).fields["k"], 1);
  const std::string pairs = write_file(dir, "dpo.jsonl",
                                       R"({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": )"
                                       R"("assistant", "content": "a"}], "rejected": [{"role": "assistant", )"
                                       R"("content": "b"}]})");
  EXPECT_EQ(read_chat_preferences(pairs).at(0).rejected.content, "b");
}

TEST(ChatData, MissingEmptyAndDirectoryFiles) {
  testing::TempDir dir("chat-data");
  EXPECT_NE(error_message([&] { read_chat_examples(dir.str() + "/nope.jsonl"); }).find("cannot open chat file"),
            std::string::npos);
  EXPECT_NE(error_message([&] { read_chat_prompts(dir.str()); }).find("is a directory"), std::string::npos);
  const std::string empty = write_file(dir, "empty.jsonl", "\n \n");
  const std::string message = error_message([&] { read_chat_preferences(empty); });
  EXPECT_NE(message.find("contains no records"), std::string::npos) << message;
  EXPECT_NE(message.find("\"chosen\""), std::string::npos) << message;
}

}  // namespace
}  // namespace flywheel
