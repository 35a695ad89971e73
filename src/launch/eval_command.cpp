// `flywheel eval --run DIR [--step N ...] [--task NAME] [--data FILE] [--examples N] [--json FILE]`
#include "launch/eval_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/evaluate.h"
#include "launch/command_line.h"
#include "launch/hf_shape.h"
#include "launch/shape.h"

namespace flywheel {
namespace {

CommandLine eval_command_line() {
  CommandLine command(
      "flywheel eval",
      "Evaluates the committed checkpoints of a run: the accuracy of greedy answers on held-out examples\n"
      "of a built-in task, and the token-mean loss of a held-out JSONL file ({\"prompt\", \"completion\"}\n"
      "per line; completion tokens and EOS count). Prints a line of text per step on stderr and a JSON\n"
      "object per step on stdout (or into --json FILE). Runs as a plain process.");
  command.required<std::string>("run", "DIR", "run directory (holds shape.ini and step-N/)", "checkpoints/default")
      .repeatable("step", "N", "evaluate step N (repeatable); default: every committed step")
      .option<std::string>("task", "NAME", "built-in task to score (default: the run's task, if it trained on one)")
      .option<std::string>("data", "FILE", "held-out JSONL file to compute the loss on")
      .option<int64_t>("examples", "N", "held-out task examples per step", "200")
      .option<int64_t>("max-new-tokens", "N", "answer budget per example", "32")
      .option<int64_t>("batch", "N", "sequences decoded or scored at once", "32")
      .option<std::string>("json", "FILE", "write the JSON lines to FILE instead of stdout")
      .notes("Held-out task examples are the task's stream for train.seed + 2 (training uses train.seed and\n"
             "train.seed + 1), so none was trained on by index; a small task (1-digit addition: 100 problems)\n"
             "still repeats the same problems. The model runs with the batch-invariant kernels of a serving\n"
             "replica. Example: flywheel eval --run checkpoints/default --step 200");
  return command;
}

// The task a run trained on: its SFT data source "task:<name>", or the flywheel's rl.task.
std::string run_task(const Shape& shape) {
  if (shape.data.source.rfind("task:", 0) == 0) return shape.data.source.substr(5);
  if (shape.train.objective == "grpo") return shape.rl.task;
  return "";
}

int64_t positive(const ParsedArgs& args, const std::string& name) {
  const int64_t v = args.get<int64_t>(name);
  if (v < 1) usage_error("--", name, " = ", v, ": needs a positive number");
  return v;
}

nlohmann::json to_json(const StepEvaluation& e, const EvalOptions& o) {
  nlohmann::json j = {{"run", o.run_dir}, {"step", e.step}};
  if (!o.task.empty()) {
    j["task"] = o.task;
    j["examples"] = e.examples;
    j["correct"] = e.correct;
    j["accuracy"] = e.accuracy();
  }
  if (!o.data_path.empty()) {
    j["data"] = o.data_path;
    j["loss"] = e.loss();
    j["loss_tokens"] = e.loss_tokens;
  }
  return j;
}

void print_line(const StepEvaluation& e, const EvalOptions& o) {
  std::fprintf(stderr, "step %lld", static_cast<long long>(e.step));
  if (!o.task.empty())
    std::fprintf(stderr, " | %s accuracy %.3f (%lld / %lld held-out)", o.task.c_str(), e.accuracy(),
                 static_cast<long long>(e.correct), static_cast<long long>(e.examples));
  if (!o.data_path.empty())
    std::fprintf(stderr, " | %s loss %.4f over %lld tokens", o.data_path.c_str(), e.loss(),
                 static_cast<long long>(e.loss_tokens));
  std::fprintf(stderr, "\n");
}

}  // namespace

int eval_command(const Runtime& rt, int argc, char** argv) {
  const CommandLine command = eval_command_line();
  const ParsedArgs args = command.parse(argc - 1, argv + 1);  // argv[1] is "eval"
  if (rt.rank != 0) return 0;  // one process evaluates; under mpirun the others stay quiet
  if (args.help()) {
    std::cout << command.help();
    return 0;
  }
  EvalOptions o;
  o.run_dir = args.get<std::string>("run");
  const Shape shape = load_shape(o.run_dir + "/shape.ini", {}, FromHf::kAsRecorded);
  shape.model.validate();
  o.train = shape.train;
  for (const std::string& step : args.list("step")) {
    if (step.empty() || step.size() > 18 || step.find_first_not_of("0123456789") != std::string::npos)
      usage_error("--step '", step, "' is not a step number (an integer >= 0)");
    o.steps.push_back(std::stoll(step));
  }
  o.task = args.find<std::string>("task").value_or(run_task(shape));
  o.data_path = args.find<std::string>("data").value_or("");
  if (o.task.empty() && o.data_path.empty())
    usage_error("nothing to evaluate: the run trained on ", shape.data.source, ", not a built-in task; give --task ",
                "NAME or --data FILE");
  o.task_max_digits = shape.data.task_max_digits;
  o.examples = positive(args, "examples");
  o.max_new_tokens = positive(args, "max-new-tokens");
  o.batch = positive(args, "batch");
  o.seq_len = shape.train.seq_len;
  o.seed = shape.train.seed;
  o.text = shape.data;  // data.tokenizer = auto: the model's tokenizer the run kept in hf/ (train/hf_import.h)
  const std::string kept = o.run_dir + "/hf";
  resolve_tokenizer(o.text, std::filesystem::exists(kept + "/tokenizer.json") ? kept : shape.train.from_hf);
  const std::vector<StepEvaluation> results = evaluate_run(shape.model, o);
  std::ofstream file;
  if (args.has("json")) {
    file.open(args.get<std::string>("json"));
    FW_INPUT_CHECK(file, "cannot write --json ", args.get<std::string>("json"));
  }
  std::ostream& out = args.has("json") ? static_cast<std::ostream&>(file) : std::cout;
  for (const StepEvaluation& e : results) {
    print_line(e, o);
    out << to_json(e, o).dump() << "\n";
  }
  return 0;
}

}  // namespace flywheel
