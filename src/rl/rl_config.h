// The [rl] section of a training shape: how the serving group generates rollouts and how the
// trainer learns from them (`flywheel run`, docs/rl.md).
//
// One RL step s (0-based, counted like every optimizer step of the run, after train.sft_steps of
// SFT warm-up): trainer rank 0 draws rl.prompts_per_step prompts of the task for step s, asks the
// replicas for rl.group_size samples of each, scores them, and every trainer rank takes its rows of
// the resulting batch. The weights that generated step s's rollouts are those of step s -
// rl.rollout_lag - 1 (lag 0: on-policy, generation waits for the previous step's snapshot).
#pragma once

#include <cstdint>
#include <string>

namespace flywheel {

struct RlConfig {
  std::string task = "addition";  // built-in verifiable task (src/data/tasks.h): prompts and rewards
  // Where RL prompts come from: "task" (rl.task's examples) or "chat:FILE" (OpenAI-format conversations
  // ending with a user turn, rl/rl_prompts.h), which the task's exact-match rule scores against each
  // line's "answer" (rl.reward = task) or an external scorer scores (rl.reward = file).
  std::string prompts = "task";
  int64_t sft_steps = 20;         // SFT warm-up steps on the task's reference answers before RL
  int64_t prompts_per_step = 8;   // prompts per RL step (the global batch is prompts x group_size rows)
  int64_t group_size = 4;         // samples per prompt (GRPO's G)
  int64_t max_new_tokens = 12;    // completion budget per sample (EOS ends a sample earlier)
  double temperature = 1.0;       // sampling temperature (> 0); the trainer's logprobs use the same
  double top_p = 1.0;             // nucleus sampling; 1: off
  int64_t top_k = 0;              // 0: off
  int64_t rollout_lag = 0;        // 0: on-policy; 1: rollouts of step s+1 generate while step s trains

  std::string serve_dtype = "fp32";  // fp32 ("exact": train/serve logprobs bit-identical) | bf16 ("fast")
  std::string swap = "sync";         // sync: in-flight sequences finish on old weights | async: swap mid-sequence
  int64_t full_every = 10;           // a full snapshot every K published steps, deltas in between
  int64_t max_batch = 32;            // decode slots per replica (continuous batching)
  // The replicas' OpenAI-compatible endpoints (docs/serving.md): replica r listens on 127.0.0.1:serve_port + r;
  // 0 picks a free port for each; -1 (default) serves none. FLYWHEEL_API_KEY, when set, is their key.
  int64_t serve_port = -1;

  double lr = 2e-4;        // constant learning rate of the RL phase (AdamW normalises the sparse, noisy
                           // policy gradient to steps of ~lr, so RL wants far less than SFT)
  double clip_low = 0.2;   // PPO ratio clip: [1 - clip_low, 1 + clip_high] (DAPO's decoupled bounds)
  double clip_high = 0.28;
  double kl_beta = 0.0;    // k3 KL penalty to the reference (the weights at the first RL step); 0: off
  double tis_cap = 0.0;    // truncated importance sampling cap against the inference logprobs; 0: off
  double dpo_beta = 0.1;   // DPO's inverse temperature of the implicit reward (train.objective = dpo)
  std::string reward = "task";  // task: the task's checker | file: rollouts written out, rewards read back
  std::string reward_command;   // reward = file: shell command run as `<command> IN OUT` on trainer rank 0

  bool exact() const { return serve_dtype == "fp32"; }
  bool chat_prompts() const { return prompts.rfind("chat:", 0) == 0; }
  std::string chat_prompt_file() const { return chat_prompts() ? prompts.substr(5) : std::string(); }
  void validate() const;
};

}  // namespace flywheel
