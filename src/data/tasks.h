// Verifiable synthetic tasks: generated prompts whose answers a program can check exactly.
//
// They serve twice: as an SFT data source ("task:<name>") and as the reward for RL, where the
// model's completion is scored against the generated one.
//
// Adding a task:
//   1. Subclass Task in tasks.cpp: name() returns the name used in "task:<name>", generate()
//      draws everything from a CounterRng keyed by (seed, RngPurpose::kTaskGenerate, index)
//      so an example is a pure function of (seed, index), max_prompt_bytes() bounds its prompts,
//      and reward() scores a completion.
//   2. Register it in make_task() and add its name to task_names(), so the unknown-name error
//      lists it.
//   3. Cover determinism, the prompt bound and reward correctness in tests/unit/test_data.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flywheel {

struct TaskExample {
  std::string prompt;      // e.g. "123+45="
  std::string completion;  // the one correct answer, e.g. "168" (no EOS, no whitespace)
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Example `index` of the stream for `seed`; the same (seed, index) always gives the same example.
  virtual TaskExample generate(uint64_t seed, int64_t index) const = 0;
  // The longest prompt generate() can return, in bytes (= tokens): what start-up checks size
  // train.seq_len and rl.max_new_tokens against.
  virtual int64_t max_prompt_bytes() const = 0;
  // 1.0 when generated_completion is exactly the correct answer, else 0.0. Pass the decoded
  // completion text only (ByteTokenizer::decode already stops at EOS); nothing is trimmed, so
  // trailing spaces or newlines make an answer wrong.
  virtual double reward(const TaskExample& example, std::string_view generated_completion) const;
};

// Names make_task accepts (a function, not a global, so other static initializers may use it).
const std::vector<std::string>& task_names();

// Difficulty bound shared by all tasks: operand digits for addition, half the string length for
// reverse. 18 keeps the sum of two addition operands inside uint64.
constexpr int kMaxTaskDigits = 18;

// "addition": "<a>+<b>=" -> "<a+b>", each operand with 1..max_digits digits.
// "reverse":  "rev:<s>=" -> reversed s, s of 1..2*max_digits lowercase letters.
// Throws for an unknown name (listing task_names()) or max_digits outside [1, kMaxTaskDigits].
std::unique_ptr<Task> make_task(const std::string& name, int max_digits);

}  // namespace flywheel
