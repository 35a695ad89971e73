#include "eval/evaluate.h"

#include <algorithm>
#include <memory>

#include "ckpt/checkpoint.h"
#include "comm/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "data/data_source.h"
#include "data/sampler.h"
#include "data/tasks.h"
#include "data/text_codec.h"
#include "serve/decode_engine.h"
#include "train/run_weights.h"

namespace flywheel {
namespace {

// The training streams are seed (SFT examples) and seed + 1 (RL prompts): see evaluate.h.
constexpr uint64_t kHeldOutSeedOffset = 2;

void load_step(DecodeEngine& engine, const EvalOptions& o, int64_t step, bool& base_loaded) {
  load_run_step(engine.model().params(), engine.model().config(), o.train, o.run_dir, step, base_loaded);
  engine.set_snapshot_step(step);
}

GenerationRequest greedy_request(const TextCodec& codec, const TaskExample& example, int64_t id,
                                 int64_t max_new_tokens, int64_t max_seq_len) {
  GenerationRequest r;
  r.id = id;
  r.prompt = codec.encode_prompt(example.prompt);
  r.sampling.top_k = 1;  // greedy: the argmax, lowest id on ties
  r.sampling.max_new_tokens = std::min<int64_t>(max_new_tokens, max_seq_len - static_cast<int64_t>(r.prompt.size()));
  FW_INPUT_CHECK(r.sampling.max_new_tokens >= 1, "eval: the prompt '", example.prompt,
                 "' leaves no room in model.max_seq_len");
  r.sampling.stop_tokens = codec.stop_tokens();
  return r;
}

void task_accuracy(DecodeEngine& engine, const Task& task, const EvalOptions& o, StepEvaluation& out) {
  const int64_t max_seq_len = engine.model().config().max_seq_len;
  const std::shared_ptr<const TextCodec> codec = TextCodec::open(o.text);
  for (int64_t first = 0; first < o.examples; first += o.batch) {
    const int64_t n = std::min(o.batch, o.examples - first);
    std::vector<TaskExample> examples;
    for (int64_t i = 0; i < n; ++i) {
      examples.push_back(task.generate(o.seed + kHeldOutSeedOffset, first + i));
      engine.submit(greedy_request(*codec, examples.back(), i, o.max_new_tokens, max_seq_len));
    }
    while (!engine.idle())
      for (const GenerationResult& r : engine.step())
        out.correct += task.reward(examples[static_cast<size_t>(r.id)], codec->decode_completion(r.tokens)) > 0.5;
    out.examples += n;
  }
}

void data_loss(Transformer& model, const Sampler& sampler, int64_t size, const EvalOptions& o, StepEvaluation& out) {
  for (int64_t first = 0; first < size; first += o.batch) {
    const Batch b = sampler.make_batch(first, std::min(o.batch, size - first));
    std::vector<float> logp(b.tokens.size());
    model.forward_logprobs(b.tokens.data(), b.targets.data(), b.rows, b.seq, logp.data(), b.loss_mask.data());
    for (size_t t = 0; t < logp.size(); ++t) {
      if (b.loss_mask[t] == 0) continue;
      out.loss_sum -= static_cast<double>(logp[t]);
      ++out.loss_tokens;
    }
  }
}

std::vector<int64_t> steps_to_evaluate(const EvalOptions& o) {
  const std::vector<int64_t> committed = committed_steps(o.run_dir);
  FW_INPUT_CHECK(!committed.empty(), "eval: ", o.run_dir,
                 " holds no committed checkpoint (expected step-N/ directories)");
  if (o.steps.empty()) return committed;
  for (int64_t s : o.steps)
    FW_INPUT_CHECK(std::find(committed.begin(), committed.end(), s) != committed.end(), "eval: step ", s,
                   " is not a committed checkpoint of ", o.run_dir, " (committed: ", committed.front(), " .. ",
                   committed.back(), "; flywheel-ckpt inspect ", o.run_dir, " lists them)");
  return o.steps;
}

}  // namespace

std::vector<StepEvaluation> evaluate_run(const ModelConfig& model, const EvalOptions& o) {
  FW_INPUT_CHECK(!o.task.empty() || !o.data_path.empty(), "eval: nothing to evaluate: give a task or a JSONL file");
  FW_INPUT_CHECK(o.examples >= 1 && o.batch >= 1 && o.max_new_tokens >= 1, "eval: examples, batch and max_new_tokens ",
                 "must be >= 1 (got ", o.examples, ", ", o.batch, ", ", o.max_new_tokens, ")");
  const std::vector<int64_t> steps = steps_to_evaluate(o);
  std::unique_ptr<Task> task = o.task.empty() ? nullptr : make_task(o.task, o.task_max_digits);
  std::unique_ptr<DataSource> data;
  std::unique_ptr<Sampler> sampler;
  if (!o.data_path.empty()) {
    DataConfig held_out = o.text;
    held_out.source = "jsonl:" + o.data_path;
    held_out.task_max_digits = o.task_max_digits;
    data = make_data_source(held_out, o.seq_len, o.seed);
    sampler = std::make_unique<Sampler>(*data, o.seed, o.seq_len);
  }
  DecodeEngine engine(model, o.batch);
  std::vector<StepEvaluation> results;
  bool base_loaded = false;
  for (int64_t step : steps) {
    load_step(engine, o, step, base_loaded);
    StepEvaluation e;
    e.step = step;
    if (task) task_accuracy(engine, *task, o, e);
    if (sampler) data_loss(engine.model(), *sampler, data->size(), o, e);
    results.push_back(e);
  }
  return results;
}

}  // namespace flywheel
