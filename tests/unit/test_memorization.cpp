// Memorization: SFT on a small fixed JSONL set drives the loss near zero, and greedy decoding of
// each prompt reproduces its completion exactly. This exercises the whole training path end to end:
// data -> sampler -> forward/backward -> clipping -> AdamW -> schedule -> generation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "launch/shape.h"
#include "serve/greedy_decode.h"
#include "data/tokenizer.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

const std::vector<std::pair<std::string, std::string>> kExamples = {
    {"capital of France?", " Paris"},   {"2+2=", " 4"},
    {"colour of the sky?", " blue"},    {"opposite of hot?", " cold"},
    {"first letter?", " a"},            {"reverse abc:", " cba"},
    {"largest planet?", " Jupiter"},    {"H2O is", " water"},
};

std::string write_jsonl(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/memorize.jsonl";
  std::ofstream out(path);
  for (const auto& [prompt, completion] : kExamples)
    out << "{\"prompt\": \"" << prompt << "\", \"completion\": \"" << completion << "\"}\n";
  return path;
}

TEST(Memorization, SftDrivesLossToZeroAndGreedyReproducesCompletions) {
  const std::string data = write_jsonl(::testing::TempDir() + "/flywheel-memorize");
  Shape shape = load_shape(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/tiny-dense.ini",
                           {"--data.source=jsonl:" + data, "--train.steps=150", "--train.seq_len=32",
                            "--train.micro_batch=8", "--train.warmup_steps=10", "--train.lr=3e-3",
                            "--train.min_lr=3e-4", "--model.n_layers=2"});
  shape.validate(1);
  auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
  Trainer trainer(shape.train_spec(), *source);
  double first_loss = 0, last_loss = 0;
  for (int64_t step = 0; step < shape.train.steps; ++step) {
    const StepMetrics m = trainer.train_step(step);
    if (step == 0) first_loss = m.loss;
    last_loss = m.loss;
  }
  EXPECT_GT(first_loss, 3.0);  // ~ln(259) = 5.56 at initialisation
  EXPECT_LT(last_loss, 0.05) << "SFT did not memorise 8 examples in 150 steps";

  for (const auto& [prompt, completion] : kExamples) {
    std::vector<int32_t> tokens = ByteTokenizer::encode(prompt);
    tokens.insert(tokens.begin(), ByteTokenizer::kBos);
    const std::vector<int32_t> generated = greedy_decode(trainer.model(), tokens, 16, ByteTokenizer::kEos);
    ASSERT_FALSE(generated.empty());
    EXPECT_EQ(generated.back(), ByteTokenizer::kEos) << "no EOS after " << prompt;
    EXPECT_EQ(ByteTokenizer::decode(generated), completion) << "prompt: " << prompt;
  }
}

}  // namespace
}  // namespace flywheel
