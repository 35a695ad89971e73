// The one command-line parser (src/launch/command_line.h): declared options with types and
// defaults, positionals, shape overrides told apart by form, usage errors, generated --help.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "launch/command_line.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::error_message;

// `tokens` after the command's name, as main() would see them.
ParsedArgs parse(const CommandLine& command, const std::vector<std::string>& tokens) {
  std::vector<const char*> argv = {"cmd"};
  for (const std::string& t : tokens) argv.push_back(t.c_str());
  return command.parse(static_cast<int>(argv.size()), argv.data());
}

CommandLine plan_like() {
  CommandLine command("flywheel plan", "Plans a step.");
  command.required<std::string>("shape", "FILE", "training shape", "configs/shapes/llama-8b.ini")
      .option<int64_t>("ranks", "N", "also propose meshes")
      .option<int64_t>("top", "K", "proposals to list", "10")
      .option<double>("lr", "X", "a rate", "1e-3")
      .option<int>("threads", "N", "threads", "2")
      .option<uint64_t>("seed", "N", "seed", "7")
      .flag("fsdp-prefetch", "one more unit")
      .shape_overrides()
      .notes("A note at the end.");
  return command;
}

TEST(CommandLine, TypedOptionsTakeTheirValueOrTheDeclaredDefault) {
  const ParsedArgs a = parse(plan_like(), {"--shape", "s.ini", "--top=3", "--lr", "0.5", "--fsdp-prefetch"});
  EXPECT_FALSE(a.help());
  EXPECT_EQ(a.get<std::string>("shape"), "s.ini");
  EXPECT_EQ(a.get<int64_t>("top"), 3);
  EXPECT_TRUE(a.has("top"));
  EXPECT_EQ(a.get<double>("lr"), 0.5);
  EXPECT_EQ(a.get<int>("threads"), 2);  // the default
  EXPECT_FALSE(a.has("threads"));
  EXPECT_EQ(a.get<uint64_t>("seed"), 7u);
  EXPECT_TRUE(a.flag("fsdp-prefetch"));
  EXPECT_FALSE(a.find<int64_t>("ranks"));  // neither given nor defaulted
  EXPECT_TRUE(a.overrides().empty());
  EXPECT_TRUE(a.positionals().empty());
}

TEST(CommandLine, ShapeOverridesAreCollectedInOrderAroundTheOptions) {
  const ParsedArgs a =
      parse(plan_like(), {"--train.out_dir=/tmp/a b", "--shape", "s.ini", "--model.n_layers=2", "--data.source="});
  EXPECT_EQ(a.get<std::string>("shape"), "s.ini");
  EXPECT_EQ(a.overrides(),
            (std::vector<std::string>{"--train.out_dir=/tmp/a b", "--model.n_layers=2", "--data.source="}));
}

TEST(CommandLine, AnythingElseIsAUsageError) {
  const CommandLine c = plan_like();
  auto usage = [&](const std::vector<std::string>& tokens) {
    try {
      parse(c, tokens);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << "no usage error";
    return std::string();
  };
  EXPECT_EQ(usage({"--shape", "s", "--bogus"}),
            "unknown option '--bogus' (shape overrides look like --model.n_layers=2)");
  EXPECT_EQ(usage({"--shape", "s", "stray"}),
            "unexpected argument 'stray' (flywheel plan takes no positional arguments)");
  EXPECT_EQ(usage({"--shape", "a", "--shape", "b"}), "--shape is given twice; give it once");
  EXPECT_EQ(usage({"--top", "3"}),
            "missing --shape FILE: flywheel plan needs --shape FILE, e.g. --shape configs/shapes/llama-8b.ini");
  EXPECT_EQ(usage({"--shape"}), "--shape needs a value");
  EXPECT_EQ(usage({"--shape", "s", "--model.n_layers", "2"}),
            "shape override --model.n_layers needs a value: --model.n_layers=VALUE");
  EXPECT_EQ(usage({"--shape", "s", "--top", "x"}), "--top 'x' is not an integer");
  EXPECT_EQ(usage({"--shape", "s", "--top", "99999999999999999999"}),
            "--top '99999999999999999999' is out of range [-9223372036854775808, 9223372036854775807]");
  EXPECT_EQ(usage({"--shape", "s", "--threads", "3000000000"}),
            "--threads '3000000000' is out of range [-2147483648, 2147483647]");
  EXPECT_EQ(usage({"--shape", "s", "--seed", "-1"}), "--seed '-1' is not an integer >= 0");
  EXPECT_EQ(usage({"--shape", "s", "--lr", "fast"}), "--lr 'fast' is not a number");
  EXPECT_EQ(usage({"--shape", "s", "--lr", "inf"}), "--lr 'inf' is not a finite number");
  EXPECT_EQ(usage({"--shape", "s", "--lr", "nan"}), "--lr 'nan' is not a finite number");
}

TEST(CommandLine, OverridesAreUnknownOptionsWhereNotDeclared) {
  CommandLine c("tool", "");
  c.positional("RUN_DIR", "a run");
  EXPECT_EQ(error_message([&] { parse(c, {"run", "--model.n_layers=2"}); }), "unknown option '--model.n_layers=2'");
}

TEST(CommandLine, PositionalsAreCountedAndNamed) {
  CommandLine c("flywheel-ckpt diff", "");
  c.positional("RUN_A[:STEP]", "side A").positional("RUN_B[:STEP]", "side B");
  EXPECT_EQ(parse(c, {"a:10", "b"}).positionals(), (std::vector<std::string>{"a:10", "b"}));
  EXPECT_EQ(error_message([&] { parse(c, {"a"}); }), "missing RUN_A[:STEP] RUN_B[:STEP]");
  EXPECT_EQ(error_message([&] { parse(c, {"a", "b", "c", "d"}); }),
            "unexpected arguments 'c', 'd' (expected RUN_A[:STEP] RUN_B[:STEP])");
  // After "--" everything is positional, even what looks like an option.
  EXPECT_EQ(parse(c, {"a", "--", "-b"}).positionals(), (std::vector<std::string>{"a", "-b"}));
}

TEST(CommandLine, RepeatableOptionsKeepEachValueWhole) {
  CommandLine c("tool", "");
  c.repeatable("set", "KEY=VALUE", "a correction");
  const ParsedArgs a = parse(c, {"--set", "model.n_layers=2", "--set=data.source=jsonl:a,b"});
  EXPECT_EQ(a.list("set"), (std::vector<std::string>{"model.n_layers=2", "data.source=jsonl:a,b"}));
  EXPECT_TRUE(a.has("set"));
  EXPECT_FALSE(parse(c, {}).has("set"));
}

TEST(CommandLine, HelpSkipsEveryCheck) {
  const ParsedArgs a = parse(plan_like(), {"--bogus", "-h", "stray", "--top", "x"});
  EXPECT_TRUE(a.help());
}

TEST(CommandLine, HelpIsGeneratedFromTheDeclarations) {
  CommandLine c = plan_like();
  c.positional("RUN_DIR", "the run directory");
  const std::string help = c.help();
  EXPECT_EQ(help.substr(0, help.find('\n')),
            "usage: flywheel plan RUN_DIR --shape FILE [--ranks N] [--top K] [--lr X] [--threads N] [--seed N]");
  EXPECT_NE(help.find("\n                     [--fsdp-prefetch] [--section.key=value ...]\n\nPlans a step.\n"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("arguments:\n  RUN_DIR              the run directory\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  -h, --help           show this help and exit\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  --lr X               a rate (default: 1e-3)\n"), std::string::npos) << help;  // as written
  EXPECT_NE(help.find("  --ranks N            also propose meshes\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  --section.key=value  set a key of the shape"), std::string::npos) << help;
  EXPECT_EQ(help.substr(help.size() - 20), "\nA note at the end.\n");
}

TEST(CommandLine, DeclarationMistakesFailEarly) {
  CommandLine c("tool", "");
  EXPECT_THROW(c.option<int>("n", "N", "a count", "two"), Error);  // a default that does not parse
  c.flag("json", "json");
  EXPECT_THROW(c.flag("json", "again"), Error);
  const ParsedArgs a = parse(c, {});
  EXPECT_THROW(a.flag("yaml"), Error);  // not declared
}

}  // namespace
}  // namespace flywheel
