#include "data/tasks.h"

#include "core/error.h"
#include "core/rng.h"

namespace flywheel {

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"addition", "reverse"};
  return names;
}

double Task::reward(const TaskExample& example, std::string_view generated_completion) const {
  return generated_completion == example.completion ? 1.0 : 0.0;
}

namespace {

// One stream per example; step is unused (0) because the index alone names the example.
CounterRng example_rng(uint64_t seed, int64_t index) {
  FW_CHECK(index >= 0, "task example index ", index, " is negative; indices start at 0");
  return CounterRng(RngKey{seed, RngPurpose::kTaskGenerate, 0, static_cast<uint64_t>(index)});
}

uint64_t power_of_ten(int exponent) {
  uint64_t value = 1;
  for (int i = 0; i < exponent; ++i) value *= 10;
  return value;
}

class AdditionTask final : public Task {
 public:
  explicit AdditionTask(int max_digits) : max_digits_(max_digits) {}
  std::string name() const override { return "addition"; }
  int64_t max_prompt_bytes() const override { return 2 * max_digits_ + 2; }  // "<a>+<b>="

  TaskExample generate(uint64_t seed, int64_t index) const override {
    CounterRng rng = example_rng(seed, index);
    const uint64_t a = draw_operand(rng);
    const uint64_t b = draw_operand(rng);
    return {std::to_string(a) + "+" + std::to_string(b) + "=", std::to_string(a + b)};
  }

 private:
  // Uniform digit count first, so short and long operands are equally common (uniform values
  // would make almost every operand max_digits long). One-digit operands include 0.
  uint64_t draw_operand(CounterRng& rng) const {
    const int digits = 1 + static_cast<int>(rng.below(static_cast<uint64_t>(max_digits_)));
    const uint64_t low = digits == 1 ? 0 : power_of_ten(digits - 1);
    const uint64_t high = power_of_ten(digits);  // exclusive
    return low + rng.below(high - low);
  }

  int max_digits_;
};

class ReverseTask final : public Task {
 public:
  explicit ReverseTask(int max_digits) : max_length_(2 * max_digits) {}
  std::string name() const override { return "reverse"; }
  int64_t max_prompt_bytes() const override { return max_length_ + 5; }  // "rev:<s>="

  TaskExample generate(uint64_t seed, int64_t index) const override {
    CounterRng rng = example_rng(seed, index);
    const int length = 1 + static_cast<int>(rng.below(static_cast<uint64_t>(max_length_)));
    std::string text(static_cast<size_t>(length), 'a');
    for (char& c : text) c = static_cast<char>('a' + rng.below(26));
    std::string reversed(text.rbegin(), text.rend());
    return {"rev:" + text + "=", reversed};
  }

 private:
  int max_length_;
};

std::string joined_task_names() {
  std::string joined;
  for (const std::string& name : task_names()) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

}  // namespace

std::unique_ptr<Task> make_task(const std::string& name, int max_digits) {
  // The name is checked first so a typo is reported as such, whatever max_digits says.
  std::unique_ptr<Task> task;
  if (name == "addition") {
    task = std::make_unique<AdditionTask>(max_digits);
  } else if (name == "reverse") {
    task = std::make_unique<ReverseTask>(max_digits);
  } else {
    FW_INPUT_THROW("unknown task '", name, "'; allowed tasks: ", joined_task_names());
  }
  FW_INPUT_CHECK(max_digits >= 1 && max_digits <= kMaxTaskDigits, "data.task_max_digits = ", max_digits,
                 " is out of range for task '", name, "'; allowed: 1..", kMaxTaskDigits);
  return task;
}

}  // namespace flywheel
