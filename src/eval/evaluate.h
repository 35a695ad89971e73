// Evaluating a run's checkpoints (`flywheel eval`): the accuracy of greedy answers on held-out
// examples of a built-in task, and the token-mean loss on a held-out JSONL file, per committed step.
//
// Held-out task examples are the task's stream for seed train.seed + 2: training draws SFT examples
// from train.seed and the flywheel's RL prompts from train.seed + 1 (rl/rollout_coordinator.h), so
// these indices are never trained on -- though a small task (1-digit addition has 100 problems) repeats
// the same problems under every seed. Answers are greedy (top-k 1) from BOS + prompt, up to EOS or
// max_new_tokens, scored by the task's own checker. The JSONL loss is the cross-entropy of every
// completion token and EOS (the SFT mask), summed in double and divided by their count.
//
// The model is a weights-only copy of the checkpoint on this process (any mesh's checkpoint loads onto
// one rank), run by the decode engine: batch-invariant kernels, so the logprobs are those a serving
// replica computes (they differ from the training forward's OpenBLAS kernels in the last bits).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/data_source.h"
#include "model/config.h"
#include "train/train_config.h"

namespace flywheel {

struct EvalOptions {
  std::string run_dir;
  std::vector<int64_t> steps;  // empty: every committed step
  std::string task;            // "" for none; else a built-in task (data/tasks.h)
  int task_max_digits = 3;
  int64_t examples = 200;      // held-out task examples per step
  int64_t max_new_tokens = 32;
  std::string data_path;       // "" for none; else a JSONL file of {"prompt", "completion"}
  int64_t seq_len = 128;       // rows of the JSONL loss (train.seq_len of the run)
  uint64_t seed = 1234;        // train.seed of the run
  int64_t batch = 32;          // sequences decoded / scored at once
  DataConfig text;             // the run's data.tokenizer, chat_format and enable_thinking (resolved)
  TrainConfig train;           // the run's [train] keys: where a LoRA run's base comes from (train/lora_base.h)
};

struct StepEvaluation {
  int64_t step = 0;
  int64_t correct = 0, examples = 0;  // task accuracy: correct / examples
  double loss_sum = 0;                // JSONL: sum over loss tokens of -log p
  int64_t loss_tokens = 0;
  double accuracy() const { return examples ? static_cast<double>(correct) / static_cast<double>(examples) : 0.0; }
  double loss() const { return loss_tokens ? loss_sum / static_cast<double>(loss_tokens) : 0.0; }
};

// Evaluates each requested step of the run (a model of `model`'s architecture). Throws naming the
// run directory and step when one is not committed or not loadable, and the task or file when bad.
std::vector<StepEvaluation> evaluate_run(const ModelConfig& model, const EvalOptions& options);

}  // namespace flywheel
