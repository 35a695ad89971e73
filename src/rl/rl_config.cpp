#include "rl/rl_config.h"

#include <cmath>
#include <utility>

#include "core/error.h"
#include "data/tasks.h"

namespace flywheel {

void RlConfig::validate() const {
  make_task(task, 1);  // throws naming the task and listing the known ones
  FW_INPUT_CHECK(prompts == "task" || (chat_prompts() && !chat_prompt_file().empty()), "rl.prompts = '", prompts,
                 "': allowed values are task (rl.task's examples) and chat:FILE (a JSONL file of OpenAI-format ",
                 "conversations ending with a user message)");
  // Every floating-point key first: infinity passes "> 0" and ">= 0" below (0 turns the optional
  // terms off; there is no "infinitely off").
  auto finite = [](const char* key, double v) {
    FW_INPUT_CHECK(std::isfinite(v), "rl.", key, " = ", v, ": must be a finite number");
  };
  for (const auto& [key, value] : {std::pair<const char*, double>{"temperature", temperature}, {"top_p", top_p},
                                   {"lr", lr}, {"clip_low", clip_low}, {"clip_high", clip_high},
                                   {"kl_beta", kl_beta}, {"tis_cap", tis_cap}, {"dpo_beta", dpo_beta}})
    finite(key, value);
  auto non_negative = [](const char* key, int64_t v) {
    FW_INPUT_CHECK(v >= 0, "rl.", key, " = ", v, ": must be >= 0");
  };
  auto positive = [](const char* key, int64_t v) { FW_INPUT_CHECK(v > 0, "rl.", key, " = ", v, ": must be > 0"); };
  non_negative("sft_steps", sft_steps);
  positive("prompts_per_step", prompts_per_step);
  FW_INPUT_CHECK(group_size >= 2, "rl.group_size = ", group_size,
                 ": must be >= 2 (advantages compare samples of a group)");
  positive("max_new_tokens", max_new_tokens);
  positive("full_every", full_every);
  positive("max_batch", max_batch);
  FW_INPUT_CHECK(serve_port >= -1 && serve_port <= 65535, "rl.serve_port = ", serve_port,
                 ": allowed -1 (no endpoint), 0 (a free port per replica) or a port 1 .. 65535");
  non_negative("top_k", top_k);
  FW_INPUT_CHECK(temperature > 0, "rl.temperature = ", temperature, ": must be > 0 (use rl.top_k = 1 for greedy)");
  FW_INPUT_CHECK(top_p > 0 && top_p <= 1, "rl.top_p = ", top_p, ": must be in (0, 1]");
  FW_INPUT_CHECK(rollout_lag == 0 || rollout_lag == 1, "rl.rollout_lag = ", rollout_lag, ": allowed values are 0, 1");
  FW_INPUT_CHECK(serve_dtype == "fp32" || serve_dtype == "bf16", "rl.serve_dtype = '", serve_dtype,
                 "': allowed values are fp32 (exact), bf16 (fast)");
  FW_INPUT_CHECK(swap == "sync" || swap == "async", "rl.swap = '", swap, "': allowed values are sync, async");
  FW_INPUT_CHECK(lr > 0, "rl.lr = ", lr, ": must be > 0");
  FW_INPUT_CHECK(clip_low >= 0 && clip_low < 1, "rl.clip_low = ", clip_low, ": must be in [0, 1)");
  FW_INPUT_CHECK(clip_high >= 0, "rl.clip_high = ", clip_high, ": must be >= 0");
  FW_INPUT_CHECK(kl_beta >= 0, "rl.kl_beta = ", kl_beta, ": must be >= 0 (0 turns the KL penalty off)");
  FW_INPUT_CHECK(tis_cap == 0 || tis_cap >= 1, "rl.tis_cap = ", tis_cap, ": must be 0 (off) or >= 1");
  FW_INPUT_CHECK(reward == "task" || reward == "file", "rl.reward = '", reward, "': allowed values are task, file");
  FW_INPUT_CHECK(reward != "file" || !reward_command.empty(),
                 "rl.reward = file needs rl.reward_command (run as `<command> ROLLOUTS.jsonl SCORED.jsonl`)");
}

}  // namespace flywheel
