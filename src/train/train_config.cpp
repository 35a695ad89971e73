#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "core/error.h"

namespace flywheel {

void TrainConfig::validate() const {
  // Every floating-point key first: infinity passes "> 0" (train.lr = inf would fail at step 1).
  auto finite = [](const char* key, double value) {
    FW_INPUT_CHECK(std::isfinite(value), "train.", key, " = ", value, ": must be a finite number");
  };
  for (const auto& [key, value] : {std::pair<const char*, double>{"lr", lr}, {"min_lr", min_lr},
                                   {"weight_decay", weight_decay}, {"beta1", beta1}, {"beta2", beta2},
                                   {"adam_eps", adam_eps}, {"grad_clip", grad_clip}})
    finite(key, value);
  FW_INPUT_CHECK(steps > 0, "train.steps = ", steps, ": must be a positive integer");
  FW_INPUT_CHECK(init_from.empty() || from_hf.empty(), "train.init_from = '", init_from, "' and model.from_hf = '",
                 from_hf, "': a run starts from one set of weights, give one of them");
  FW_INPUT_CHECK(seq_len > 0, "train.seq_len = ", seq_len, ": must be a positive integer");
  FW_INPUT_CHECK(micro_batch > 0, "train.micro_batch = ", micro_batch, ": must be a positive integer");
  FW_INPUT_CHECK(grad_accum > 0, "train.grad_accum = ", grad_accum, ": must be a positive integer");
  FW_INPUT_CHECK(objective == "sft" || objective == "dpo" || objective == "grpo", "train.objective = '", objective,
                 "': allowed objectives are: sft, dpo (flywheel train), grpo (flywheel run)");
  FW_INPUT_CHECK(lr > 0, "train.lr = ", lr, ": must be > 0");
  FW_INPUT_CHECK(min_lr >= 0 && min_lr <= lr, "train.min_lr = ", min_lr, ": must be in [0, train.lr = ", lr, "]");
  FW_INPUT_CHECK(warmup_steps >= 0, "train.warmup_steps = ", warmup_steps, ": must be >= 0");
  FW_INPUT_CHECK(weight_decay >= 0, "train.weight_decay = ", weight_decay, ": must be >= 0");
  FW_INPUT_CHECK(beta1 >= 0 && beta1 < 1, "train.beta1 = ", beta1, ": must be in [0, 1)");
  FW_INPUT_CHECK(beta2 >= 0 && beta2 < 1, "train.beta2 = ", beta2, ": must be in [0, 1)");
  FW_INPUT_CHECK(adam_eps > 0, "train.adam_eps = ", adam_eps, ": must be > 0");
  FW_INPUT_CHECK(grad_clip >= 0, "train.grad_clip = ", grad_clip, ": must be >= 0 (0 turns clipping off)");
  FW_INPUT_CHECK(threads >= 0, "train.threads = ", threads, ": must be >= 0 (0: automatic)");
  FW_INPUT_CHECK(log_every > 0, "train.log_every = ", log_every, ": must be a positive integer");
  FW_INPUT_CHECK(checkpoint_every >= 0, "train.checkpoint_every = ", checkpoint_every,
                 ": must be >= 0 (0: only at the end)");
  FW_INPUT_CHECK(keep_last >= 0, "train.keep_last = ", keep_last, ": must be >= 0 (0: keep every checkpoint)");
  FW_INPUT_CHECK(resume == "auto" || resume == "never", "train.resume = '", resume,
                 "': allowed values are auto, never");
  FW_INPUT_CHECK(!out_dir.empty(), "train.out_dir is empty: give a directory for runs");
  FW_INPUT_CHECK(run_name.find('/') == std::string::npos, "train.run_name = '", run_name,
                 "': must be a plain name without '/' (it becomes a directory under train.out_dir)");
}

double learning_rate(const TrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, c.steps - 1 - c.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / decay_steps);
  return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace flywheel
