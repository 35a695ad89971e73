#include "common.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"

namespace flywheel::ckpt_tool {
namespace fs = std::filesystem;

std::string without_source_location(const std::string& message) {
  const size_t at = message.find(".cpp:");
  if (message.rfind("src/", 0) != 0 || at == std::string::npos) return message;
  const size_t colon = message.find(": ", at);
  return colon == std::string::npos ? message : message.substr(colon + 2);
}

CommandLine subcommand(const std::string& name, const std::string& summary) {
  return CommandLine("flywheel-ckpt " + name, summary);
}

int print_help(const CommandLine& command) {
  std::cout << command.help();
  return kExitOk;
}

std::string steps_list(const std::vector<int64_t>& steps) {
  std::string text;
  for (int64_t s : steps) text += (text.empty() ? "" : ", ") + std::to_string(s);
  return text.empty() ? "none" : text;
}

int64_t choose_step(const std::string& run_dir, std::optional<int64_t> requested) {
  std::error_code ec;
  if (!fs::exists(run_dir, ec)) fail("run directory ", run_dir, " does not exist");
  if (!fs::is_directory(run_dir, ec)) fail(run_dir, " is not a directory (expected a run directory)");
  const std::vector<int64_t> steps = committed_steps(run_dir);
  if (steps.empty()) {
    std::string stale;
    for (const std::string& name : stale_step_dirs(run_dir)) stale += (stale.empty() ? "; interrupted: " : ", ") + name;
    fail("no committed checkpoint in ", run_dir, " (no step-NNNNNNNN directory", stale, ")");
  }
  if (requested) {
    if (!std::binary_search(steps.begin(), steps.end(), *requested))
      fail("step ", *requested, " is not a committed checkpoint in ", run_dir, " (committed steps: ",
           steps_list(steps), ")");
    return *requested;
  }
  const std::optional<int64_t> latest = read_latest_step(run_dir);
  if (latest && std::binary_search(steps.begin(), steps.end(), *latest)) return *latest;
  return steps.back();
}

StepReader open_verified_step(const std::string& run_dir, int64_t step, const std::string& label,
                              ProgressStyle style) {
  ProgressMeter meter(label, step_check_bytes(run_dir, step), style);
  StepCheck check = check_step(run_dir, step, [&](uint64_t n) { meter.add(n); });
  meter.finish();
  return StepReader(std::move(check));
}

void add_step_option(CommandLine& command, const std::string& what) {
  command.option<std::string>("step", "N", "step to " + what + " (default: the one `latest` names, else the newest)");
}

std::optional<int64_t> step_option(const ParsedArgs& args) {
  const std::optional<std::string> given = args.find<std::string>("step");
  if (!given) return std::nullopt;
  const std::string& text = *given;
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
    usage_error("--step '", text, "' is not a step number (an integer >= 0)");
  return std::stoll(text);
}

RunStep parse_run_step(const std::string& text) {
  const size_t colon = text.rfind(':');
  std::error_code ec;
  // A directory really named "run:100" stays a path (unless "run" is a directory too).
  const bool whole_is_dir = fs::is_directory(text, ec);
  if (colon != std::string::npos && colon + 1 < text.size() &&
      !(whole_is_dir && !fs::is_directory(text.substr(0, colon), ec)) &&
      std::all_of(text.begin() + colon + 1, text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (text.size() - colon - 1 > 18) usage_error("step in '", text, "' is too large");
    return {text.substr(0, colon), std::stoll(text.substr(colon + 1))};
  }
  return {text, std::nullopt};
}

std::vector<std::string> stale_step_dirs(const std::string& run_dir) {
  std::vector<std::string> stale;
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) return stale;
  for (const fs::directory_entry& entry : fs::directory_iterator(run_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t dot = name.find('.');
    if (dot == std::string::npos || !parse_step_dir_name(name.substr(0, dot))) continue;
    const std::string suffix = name.substr(dot);
    if (suffix == ".partial" || suffix == ".replaced" || suffix == ".deleting") stale.push_back(name);
  }
  std::sort(stale.begin(), stale.end());
  return stale;
}

std::string format_bytes(uint64_t bytes) {
  char text[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (uint64_t{1} << 30))
    std::snprintf(text, sizeof(text), "%.2f GiB", b / (1 << 30));
  else if (bytes >= (uint64_t{1} << 20))
    std::snprintf(text, sizeof(text), "%.2f MiB", b / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(text, sizeof(text), "%.1f KiB", b / 1024);
  else
    std::snprintf(text, sizeof(text), "%llu B", static_cast<unsigned long long>(bytes));
  return text;
}


std::string format_mesh(const nlohmann::json& mesh) {
  if (!mesh.is_object()) return mesh.dump();
  std::string text;
  for (const char* key : {"pp", "fsdp", "cp", "ep", "serve"})
    if (mesh.contains(key)) text += (text.empty() ? "" : " ") + std::string(key) + "=" + mesh[key].dump();
  for (const auto& [key, value] : mesh.items())  // keys a newer writer added
    if (key != "pp" && key != "fsdp" && key != "cp" && key != "ep" && key != "serve")
      text += " " + key + "=" + value.dump();
  return text.empty() ? "{}" : text;
}

uint64_t directory_bytes(const std::string& dir, int* files) {
  uint64_t total = 0;
  int count = 0;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file(ec)) {
      total += entry.file_size(ec);
      ++count;
    }
  if (files) *files = count;
  return total;
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right_align,
                 const std::string& indent) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line = indent;
    for (size_t c = 0; c < header.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      const std::string pad(width[c] - cell.size(), ' ');
      const bool right = c < right_align.size() && right_align[c];
      line += (right ? pad + cell : cell + (c + 1 < header.size() ? pad : "")) + (c + 1 < header.size() ? "  " : "");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

void add_progress_option(CommandLine& command) { command.flag("no-progress", "no progress output on stderr"); }

ProgressStyle progress_style(const ParsedArgs& args) {
  return args.flag("no-progress") ? ProgressStyle::kOff : ProgressStyle::kAuto;
}

}  // namespace flywheel::ckpt_tool
