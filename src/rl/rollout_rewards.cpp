#include "rl/rollout_rewards.h"

#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "rl/rollout_file.h"
#include "data/text_codec.h"

namespace flywheel {
namespace {

std::vector<double> task_rewards(const FlywheelSpec& spec, const std::vector<RolloutSample>& samples) {
  const auto task = make_task(spec.rl.task, spec.data.task_max_digits);
  const std::shared_ptr<const TextCodec> codec = TextCodec::open(spec.data);
  std::vector<double> rewards;
  for (const RolloutSample& s : samples)
    rewards.push_back(task->reward(s.example, codec->decode_completion(s.result.tokens)));
  return rewards;
}

// Shell quoting for a path: single quotes, with embedded ones closed, escaped and reopened.
std::string quoted(const std::string& path) {
  std::string out = "'";
  for (char c : path) {
    if (c == '\'')
      out.append("'\\''");
    else
      out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

// What std::system's wait status says about the command: "exit status 3", "killed by signal 9
// (Killed)" (the raw status, 768 for exit 3, means nothing to a user).
std::string command_outcome(int status) {
  if (status == -1) return detail::concat("could not be run (", std::strerror(errno), ")");
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    return detail::concat("exit status ", code, code == 127 ? " (the shell found no such command)" : "");
  }
  if (WIFSIGNALED(status))
    return detail::concat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return detail::concat("wait status ", status);
}

std::vector<double> file_rewards(const FlywheelSpec& spec, int64_t step, const std::vector<RolloutSample>& samples,
                                 const std::filesystem::path& run_dir) {
  const std::filesystem::path folder = run_dir / "rollouts";
  std::filesystem::create_directories(folder);
  const std::string in = (folder / ("step-" + std::to_string(step) + ".jsonl")).string();
  const std::string out = (folder / ("step-" + std::to_string(step) + ".scored.jsonl")).string();
  const std::shared_ptr<const TextCodec> codec = TextCodec::open(spec.data);
  std::vector<Rollout> written;
  for (const RolloutSample& s : samples) {
    Rollout r;
    r.id = detail::concat('s', step, "-g", s.prompt_index, "-k", s.sample);  // unique within the step's file
    r.step = step;
    r.group = s.prompt_index;
    r.prompt = s.example.prompt;
    r.completion = codec->decode_completion(s.result.tokens);
    r.prompt_tokens = s.prompt_tokens;
    r.completion_tokens = s.result.tokens;
    r.logprobs = s.result.logprobs;
    if (s.chat) r.messages = s.chat->messages, r.fields = s.chat->fields;
    written.push_back(std::move(r));
  }
  write_rollouts(in, written);
  const std::string command = spec.rl.reward_command + " " + quoted(in) + " " + quoted(out);
  const int status = std::system(command.c_str());
  FW_INPUT_CHECK(status == 0, "rl.reward_command failed on step ", step, ": ", command_outcome(status),
                 "; the command was: ", command);
  return read_scored_rollouts(out, written);
}

}  // namespace

std::vector<double> compute_rewards(const FlywheelSpec& spec, int64_t step, const std::vector<RolloutSample>& samples,
                                    const std::filesystem::path& run_dir) {
  return spec.rl.reward == "file" ? file_rewards(spec, step, samples, run_dir) : task_rewards(spec, samples);
}

}  // namespace flywheel
