#include "train/shape_change.h"

#include <boost/program_options/parsers.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string_view>

#include "core/error.h"

namespace po = boost::program_options;

namespace flywheel {
namespace {

// The keys a resume may change: how the run is driven, not what it trains. Every other key (the
// model, the data, the optimiser, the seed, the objective, [rl]) is the run's identity: a resume
// that changed it would train some other run on top of this one's weights and call it this run.
//   train.steps         extends or shortens the run (what that does to the learning rate is logged)
//   every [mesh] key    a checkpoint loads onto any mesh: rows are read from whichever shards hold them
//   train.threads, train.log_every, train.checkpoint_every, train.keep_last: run control
//   train.out_dir, train.run_name: where the run lives (a moved run directory, a job's name for it)
//   train.resume        auto, the one value that resumes
// docs/operations.md ("Resume") lists the same keys.
constexpr std::string_view kResumableKeys[] = {"train.steps",     "train.threads",     "train.log_every",
                                               "train.checkpoint_every", "train.keep_last", "train.out_dir",
                                               "train.run_name",  "train.resume"};
constexpr std::string_view kResumableSection = "mesh.";

// section.key -> value as the shape reader sees it (the same Boost parser, every key unregistered).
std::map<std::string, std::string> ini_values(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  std::map<std::string, std::string> values;
  try {
    const po::options_description none;
    for (const po::option& o : po::parse_config_file(in, none, /*allow_unregistered=*/true).options)
      values[o.string_key] = o.value.empty() ? "" : o.value.back();
  } catch (const po::error& e) {
    FW_THROW("the shape text of ", origin, " is not INI: ", e.what());
  }
  return values;
}

// One spelling per value: numbers by value, booleans as the reader accepts them.
std::string canonical(const std::string& value) {
  if (value == "true" || value == "yes" || value == "on") return "true";
  if (value == "false" || value == "no" || value == "off") return "false";
  char* end = nullptr;
  const double number = std::strtod(value.c_str(), &end);
  if (!value.empty() && end == value.c_str() + value.size()) {
    char text[40];
    std::snprintf(text, sizeof(text), "%.17g", number);
    return text;
  }
  return value;
}

}  // namespace

std::vector<ShapeChange> shape_changes(const std::string& before, const std::string& after, const std::string& origin) {
  const std::map<std::string, std::string> old_values = ini_values(before, origin);
  const std::map<std::string, std::string> new_values = ini_values(after, "this run");
  std::map<std::string, ShapeChange> changes;
  for (const auto& [key, value] : old_values) {
    const auto found = new_values.find(key);
    if (found == new_values.end())
      changes[key] = {key, value, std::nullopt};
    else if (canonical(found->second) != canonical(value))
      changes[key] = {key, value, found->second};
  }
  for (const auto& [key, value] : new_values)
    if (!old_values.count(key)) changes[key] = {key, std::nullopt, value};
  std::vector<ShapeChange> sorted;
  for (auto& [key, change] : changes) sorted.push_back(std::move(change));
  return sorted;
}

bool resumable_key(const std::string& key) {
  if (key.rfind(kResumableSection, 0) == 0) return true;
  for (std::string_view allowed : kResumableKeys)
    if (key == allowed) return true;
  return false;
}

std::string resumable_keys_text() {
  std::string text = "every [mesh] key";
  for (std::string_view key : kResumableKeys) text += ", " + std::string(key);
  return text;
}

std::string change_text(const ShapeChange& change) {
  return change.key + ": " + change.before.value_or("(not set)") + " -> " + change.after.value_or("(not set)");
}

std::string schedule_change_text(const TrainConfig& now, int64_t old_steps, int64_t next_step) {
  TrainConfig before = now;
  before.steps = old_steps;
  char text[320];
  std::snprintf(text, sizeof(text),
                "train.steps: %lld -> %lld: the learning-rate schedule (warmup %lld steps, then cosine down to "
                "train.steps) %s to the new length: step %lld runs at lr %.3e, not %.3e as before, and min_lr is "
                "reached at step %lld",
                static_cast<long long>(old_steps), static_cast<long long>(now.steps),
                static_cast<long long>(now.warmup_steps), now.steps > old_steps ? "stretches" : "shrinks",
                static_cast<long long>(next_step + 1), learning_rate(now, next_step), learning_rate(before, next_step),
                static_cast<long long>(now.steps));
  return text;
}

}  // namespace flywheel
