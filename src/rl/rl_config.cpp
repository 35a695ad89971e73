#include "rl/rl_config.h"

#include <boost/program_options.hpp>

#include "core/error.h"
#include "rl/tasks.h"

namespace po = boost::program_options;

namespace flywheel {

po::options_description rl_options(RlConfig& r) {
  po::options_description rl("[rl] rollouts and the RL objective (flywheel run)");
  rl.add_options()
      ("rl.task", po::value(&r.task)->default_value(r.task), "built-in task for prompts and rewards: addition | reverse")
      ("rl.sft_steps", po::value(&r.sft_steps)->default_value(r.sft_steps), "SFT warm-up steps before RL")
      ("rl.prompts_per_step", po::value(&r.prompts_per_step)->default_value(r.prompts_per_step), "prompts per RL step")
      ("rl.group_size", po::value(&r.group_size)->default_value(r.group_size), "samples per prompt (G)")
      ("rl.max_new_tokens", po::value(&r.max_new_tokens)->default_value(r.max_new_tokens), "completion budget")
      ("rl.temperature", po::value(&r.temperature)->default_value(r.temperature), "sampling temperature (> 0)")
      ("rl.top_p", po::value(&r.top_p)->default_value(r.top_p), "nucleus sampling mass; 1: off")
      ("rl.top_k", po::value(&r.top_k)->default_value(r.top_k), "top-k sampling; 0: off")
      ("rl.rollout_lag", po::value(&r.rollout_lag)->default_value(r.rollout_lag),
       "0: on-policy | 1: generate step s+1 while step s trains")
      ("rl.serve_dtype", po::value(&r.serve_dtype)->default_value(r.serve_dtype),
       "fp32 (exact: bit-identical train/serve) | bf16 (fast)")
      ("rl.swap", po::value(&r.swap)->default_value(r.swap),
       "sync: in-flight sequences finish on old weights | async: swap between decode steps")
      ("rl.full_every", po::value(&r.full_every)->default_value(r.full_every), "full snapshot every K steps")
      ("rl.max_batch", po::value(&r.max_batch)->default_value(r.max_batch), "decode slots per replica")
      ("rl.lr", po::value(&r.lr)->default_value(r.lr), "constant learning rate of the RL phase")
      ("rl.clip_low", po::value(&r.clip_low)->default_value(r.clip_low), "PPO clip below 1")
      ("rl.clip_high", po::value(&r.clip_high)->default_value(r.clip_high), "PPO clip above 1")
      ("rl.kl_beta", po::value(&r.kl_beta)->default_value(r.kl_beta), "k3 KL penalty to the reference; 0: off")
      ("rl.tis_cap", po::value(&r.tis_cap)->default_value(r.tis_cap),
       "truncated importance sampling cap vs inference logprobs; 0: off")
      ("rl.dpo_beta", po::value(&r.dpo_beta)->default_value(r.dpo_beta),
       "DPO beta (flywheel train with train.objective = dpo)")
      ("rl.reward", po::value(&r.reward)->default_value(r.reward), "task | file (see rl.reward_command)")
      ("rl.reward_command", po::value(&r.reward_command)->default_value(r.reward_command),
       "reward = file: command run as `<command> ROLLOUTS.jsonl SCORED.jsonl`");
  return rl;
}

void RlConfig::validate() const {
  make_task(task, 1);  // throws naming the task and listing the known ones
  auto non_negative = [](const char* key, int64_t v) { FW_CHECK(v >= 0, "rl.", key, " = ", v, ": must be >= 0"); };
  auto positive = [](const char* key, int64_t v) { FW_CHECK(v > 0, "rl.", key, " = ", v, ": must be > 0"); };
  non_negative("sft_steps", sft_steps);
  positive("prompts_per_step", prompts_per_step);
  FW_CHECK(group_size >= 2, "rl.group_size = ", group_size, ": must be >= 2 (advantages compare samples of a group)");
  positive("max_new_tokens", max_new_tokens);
  positive("full_every", full_every);
  positive("max_batch", max_batch);
  non_negative("top_k", top_k);
  FW_CHECK(temperature > 0, "rl.temperature = ", temperature, ": must be > 0 (use rl.top_k = 1 for greedy)");
  FW_CHECK(top_p > 0 && top_p <= 1, "rl.top_p = ", top_p, ": must be in (0, 1]");
  FW_CHECK(rollout_lag == 0 || rollout_lag == 1, "rl.rollout_lag = ", rollout_lag, ": allowed values are 0, 1");
  FW_CHECK(serve_dtype == "fp32" || serve_dtype == "bf16", "rl.serve_dtype = '", serve_dtype,
           "': allowed values are fp32 (exact), bf16 (fast)");
  FW_CHECK(swap == "sync" || swap == "async", "rl.swap = '", swap, "': allowed values are sync, async");
  FW_CHECK(lr > 0, "rl.lr = ", lr, ": must be > 0");
  FW_CHECK(clip_low >= 0 && clip_low < 1, "rl.clip_low = ", clip_low, ": must be in [0, 1)");
  FW_CHECK(clip_high >= 0, "rl.clip_high = ", clip_high, ": must be >= 0");
  FW_CHECK(kl_beta >= 0, "rl.kl_beta = ", kl_beta, ": must be >= 0 (0 turns the KL penalty off)");
  FW_CHECK(tis_cap == 0 || tis_cap >= 1, "rl.tis_cap = ", tis_cap, ": must be 0 (off) or >= 1");
  FW_CHECK(reward == "task" || reward == "file", "rl.reward = '", reward, "': allowed values are task, file");
  FW_CHECK(reward != "file" || !reward_command.empty(),
           "rl.reward = file needs rl.reward_command (run as `<command> ROLLOUTS.jsonl SCORED.jsonl`)");
}

}  // namespace flywheel
