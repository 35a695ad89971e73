// flywheel-ckpt ledger: the hot-load ledger RUN_DIR/ledger.jsonl, written by the serving group
// as it loads checkpoints into replicas: one JSON object per line,
//   {"event": "loaded", "step": 120, "replica": 0, "ms": 812.5, "bytes": 1048576, "reason": "...", "time": "..."}
// "event" (string) and "step" (integer >= 0) are required; replica (integer or string), ms
// (number >= 0), bytes (integer >= 0), reason (string) and time (string or number) are optional.
// Unknown fields are ignored (newer writers may add some); a line that is not such an object is an
// error naming its line number, since a silently skipped event would make the summary lie.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "common.h"

namespace flywheel::ckpt_tool {
namespace {

struct LedgerEvent {
  int line = 0;
  std::string event, replica, reason, time;
  int64_t step = 0;
  std::optional<double> ms;
  std::optional<uint64_t> bytes;
};

std::string as_text(const nlohmann::json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// Throws naming the line when a field is missing or of the wrong type.
LedgerEvent parse_event(const nlohmann::json& j, const std::string& where, int line) {
  if (!j.is_object()) fail(where, ": expected a JSON object, got ", j.type_name());
  auto bad = [&](const char* key, const char* allowed) {
    fail(where, ": \"", key, "\" is ", j.at(key).dump(), " (", j.at(key).type_name(), "); allowed: ", allowed);
  };
  LedgerEvent e;
  e.line = line;
  if (!j.contains("event")) fail(where, ": missing \"event\" (every line needs \"event\" and \"step\")");
  if (!j["event"].is_string() || j["event"].get<std::string>().empty()) bad("event", "a non-empty string");
  e.event = j["event"].get<std::string>();
  if (!j.contains("step")) fail(where, ": missing \"step\" (every line needs \"event\" and \"step\")");
  if (!j["step"].is_number_integer() || j["step"].get<int64_t>() < 0) bad("step", "an integer >= 0");
  e.step = j["step"].get<int64_t>();
  if (j.contains("replica")) {
    if (!(j["replica"].is_string() || (j["replica"].is_number_integer() && j["replica"].get<int64_t>() >= 0)))
      bad("replica", "an integer >= 0 or a string");
    e.replica = as_text(j["replica"]);
  }
  if (j.contains("ms")) {
    if (!j["ms"].is_number() || j["ms"].get<double>() < 0) bad("ms", "a number >= 0");
    e.ms = j["ms"].get<double>();
  }
  if (j.contains("bytes")) {
    if (!j["bytes"].is_number_integer() || j["bytes"].get<int64_t>() < 0) bad("bytes", "an integer >= 0");
    e.bytes = j["bytes"].get<uint64_t>();
  }
  if (j.contains("reason")) {
    if (!j["reason"].is_string()) bad("reason", "a string");
    e.reason = j["reason"].get<std::string>();
  }
  if (j.contains("time")) {
    if (!j["time"].is_string() && !j["time"].is_number()) bad("time", "a string or a number");
    e.time = as_text(j["time"]);
  }
  return e;
}

std::vector<LedgerEvent> read_ledger(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path, " for reading");
  std::vector<LedgerEvent> events;
  std::string text;
  int line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines carry nothing
    const std::string where = path + " line " + std::to_string(line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      // A last line without its newline may still be being written.
      fail(where, ": not valid JSON (", e.what(), ")", in.eof() ? "; it is the last line and has no newline: the "
                                                                  "writer may have been interrupted mid-line" : "");
    }
    events.push_back(parse_event(j, where, line));
  }
  return events;
}

std::string ms_text(double ms) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", ms);
  return text;
}

void print_events(const std::vector<LedgerEvent>& events, size_t tail) {
  const size_t first = tail > 0 && events.size() > tail ? events.size() - tail : 0;
  std::vector<std::vector<std::string>> rows;
  for (size_t i = first; i < events.size(); ++i) {
    const LedgerEvent& e = events[i];
    rows.push_back({std::to_string(e.line), e.time, e.event, std::to_string(e.step), e.replica,
                    e.ms ? ms_text(*e.ms) : "", e.bytes ? format_bytes(*e.bytes) : "", e.reason});
  }
  std::cout << "events" << (first ? " (last " + std::to_string(events.size() - first) + ")" : "") << ":\n";
  print_table(std::cout, {"line", "time", "event", "step", "replica", "ms", "bytes", "reason"}, rows,
              {true, false, false, true, false, true, true, false});
}

void print_summary(const std::vector<LedgerEvent>& events) {
  struct StepSummary {
    int count = 0;
    std::map<std::string, int> kinds;
    std::set<std::string> replicas;
    std::optional<double> max_ms;
    uint64_t bytes = 0;
  };
  std::map<int64_t, StepSummary> steps;
  for (const LedgerEvent& e : events) {
    StepSummary& s = steps[e.step];
    ++s.count;
    ++s.kinds[e.event];
    if (!e.replica.empty()) s.replicas.insert(e.replica);
    if (e.ms) s.max_ms = std::max(s.max_ms.value_or(0), *e.ms);
    s.bytes += e.bytes.value_or(0);
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [step, s] : steps) {
    std::string kinds;
    for (const auto& [kind, n] : s.kinds) kinds += (kinds.empty() ? "" : ", ") + kind + " x" + std::to_string(n);
    rows.push_back({std::to_string(step), std::to_string(s.count), kinds, std::to_string(s.replicas.size()),
                    s.max_ms ? ms_text(*s.max_ms) : "", s.bytes ? format_bytes(s.bytes) : ""});
  }
  std::cout << "\nper step:\n";
  print_table(std::cout, {"step", "events", "by event", "replicas", "max ms", "bytes"}, rows,
              {true, true, false, true, true, true});
  std::cout << "\n" << events.size() << " event(s) over " << steps.size() << " step(s)\n";
}

}  // namespace

int ledger_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "ledger",
      "Shows the hot-load ledger RUN_DIR/ledger.jsonl (one JSON object per line, written by the\n"
      "serving group): every event in order, then a summary per step.");
  command.positional("RUN_DIR", "the run directory")
      .option<int64_t>("tail", "N", "show only the last N events (the summary covers all); 0: all", "0")
      .notes("Each line needs \"event\" (string) and \"step\" (integer >= 0); optional: \"replica\",\n"
             "\"ms\", \"bytes\", \"reason\", \"time\"; other fields are ignored. A malformed line is an\n"
             "error naming its line number (exit 1). No ledger yet: says so, exit 0.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  const int64_t tail = args.get<int64_t>("tail");
  if (tail < 0) usage_error("--tail ", tail, ": must be >= 0");
  std::error_code ec;
  if (!std::filesystem::is_directory(run_dir, ec)) fail("run directory ", run_dir, " does not exist");
  const std::string path = (std::filesystem::path(run_dir) / "ledger.jsonl").string();
  if (!std::filesystem::exists(path, ec)) {
    std::cout << "no hot-load events recorded yet (" << path << " does not exist)\n";
    return kExitOk;
  }
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, " is not a file (the ledger is a JSONL file)");
  const std::vector<LedgerEvent> events = read_ledger(path);
  if (events.empty()) {
    std::cout << "no hot-load events recorded yet (" << path << " is empty)\n";
    return kExitOk;
  }
  std::cout << "ledger: " << path << "\n";
  print_events(events, static_cast<size_t>(tail));
  print_summary(events);
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
