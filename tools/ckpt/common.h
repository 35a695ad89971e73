// Shared pieces of flywheel-ckpt's subcommands: their command lines (launch/command_line.h), choosing
// a committed step, formatting (sizes, meshes, tables) and progress settings.
//
// Exit codes (every subcommand): 0 ok, 1 error or failed check, 2 usage error.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "ckpt/offline.h"
#include "core/error.h"
#include "core/progress.h"
#include "launch/command_line.h"

namespace flywheel::ckpt_tool {

inline constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;

// A tool-level error without the library's "src/file.cpp:123:" prefix (the message names the
// file / step / tensor the user gave, which is what they can act on).
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

// A library error's message without its "src/file.cpp:123: " prefix (meaningless to a tool user).
std::string without_source_location(const std::string& message);

// Every subcommand: (args after the command name). Returns the exit code.
int list_command(int argc, char** argv);
int inspect_command(int argc, char** argv);
int verify_command(int argc, char** argv);
int diff_command(int argc, char** argv);
int reshard_command(int argc, char** argv);
int export_command(int argc, char** argv);
int ledger_command(int argc, char** argv);
int rollback_command(int argc, char** argv);
int publish_command(int argc, char** argv);

// The command line of subcommand `name` ("flywheel-ckpt <name>"). Its UsageErrors: main prints them
// with a pointer to --help and exits 2.
CommandLine subcommand(const std::string& name, const std::string& summary);
// Prints the command's --help; returns kExitOk.
int print_help(const CommandLine& command);

// The step a command works on: `requested`, else the step `latest` names, else the newest committed.
// Errors name the run directory and list the committed steps.
int64_t choose_step(const std::string& run_dir, std::optional<int64_t> requested);
// --step N: `what` completes "step to <what>"; read as text so a bad value gets a step's message.
void add_step_option(CommandLine& command, const std::string& what);
std::optional<int64_t> step_option(const ParsedArgs& args);
// "RUN[:STEP]": a trailing ":<digits>" is the step (a path may contain ':' elsewhere; an existing
// directory named "x:12" whose prefix "x" is not a directory is taken as a path).
struct RunStep {
  std::string run_dir;
  std::optional<int64_t> step;
};
RunStep parse_run_step(const std::string& text);

// Verifies the step (every shard's checksum; progress labelled `label`) and opens it for reading.
// Throws naming the step directory and every problem when it fails.
StepReader open_verified_step(const std::string& run_dir, int64_t step, const std::string& label,
                              ProgressStyle style);

// Step directories an interrupted save / delete left (step-N.partial, .replaced, .deleting), by name.
std::vector<std::string> stale_step_dirs(const std::string& run_dir);
std::string steps_list(const std::vector<int64_t>& steps);  // "10, 20" or "none"

std::string format_bytes(uint64_t bytes);                     // "12.3 MiB"
std::string format_mesh(const nlohmann::json& mesh);          // "pp=2 fsdp=2 cp=1 ep=1 serve=0"
uint64_t directory_bytes(const std::string& dir, int* files = nullptr);  // regular files directly inside

// Left-aligned columns except those marked in right_align (numbers).
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right_align,
                 const std::string& indent = "  ");

// --no-progress → off; otherwise a bar on a TTY, a line per ~10% elsewhere.
void add_progress_option(CommandLine& command);
ProgressStyle progress_style(const ParsedArgs& args);

}  // namespace flywheel::ckpt_tool
