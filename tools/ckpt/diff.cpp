// flywheel-ckpt diff: per-tensor max abs / max rel difference between two checkpoint steps
// (weights, and with --moments the AdamW moments). Both steps are verified first; tensors are
// read whole, one at a time, through the same row reader the loader uses, so the two sides may
// have any shard layouts (a resharded copy diffs to zero against its source).
#include <cmath>
#include <iostream>

#include "ckpt/offline.h"
#include "common.h"

namespace flywheel::ckpt_tool {
namespace {

struct Difference {
  double max_abs = 0, max_rel = 0;
};

// rel = |a-b| / max(|a|, |b|): symmetric, in [0, 2], 0 when both are 0. A NaN on one side only
// (or two different infinities) is an infinite difference; NaN on both sides counts as equal.
Difference compare(const std::vector<float>& a, const std::vector<float>& b) {
  Difference d;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (std::isnan(x) || std::isnan(y)) {
      if (std::isnan(x) != std::isnan(y)) d.max_abs = d.max_rel = INFINITY;
      continue;
    }
    if (x == y) continue;
    const double abs = std::fabs(x - y);  // inf - inf (same sign) was caught by x == y
    d.max_abs = std::max(d.max_abs, std::isnan(abs) ? INFINITY : abs);
    d.max_rel = std::max(d.max_rel, abs / std::max(std::fabs(x), std::fabs(y)));
  }
  return d;
}

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), v == 0 ? "0" : "%.3e", v);
  return text;
}

StepReader open_side(const RunStep& side, const char* label, ProgressStyle style) {
  const int64_t step = choose_step(side.run_dir, side.step);
  StepReader reader = open_verified_step(side.run_dir, step, std::string("diff: verifying ") + label, style);
  std::cout << label << ": " << reader.check().dir << " (step " << step << ", " << reader.check().shards.size()
            << " shard(s))\n";
  return reader;
}

struct DiffReport {
  std::vector<std::vector<std::string>> rows;  // tensor, shape, max_abs, max_rel
  std::vector<std::string> only_a, only_b, mismatched;
  double worst_abs = 0, worst_rel = 0;
  std::string worst_name;
  size_t compared = 0, identical = 0;
};

// Floats both sides will read for the tensors present in both (progress total).
uint64_t shared_bytes(const StepReader& a, const StepReader& b, const std::vector<std::string>& groups) {
  uint64_t total = 0;
  for (const std::string& g : groups)
    for (const std::string& name : a.names(g))
      if (b.has(g, name) && a.global_shape(g, name) == b.global_shape(g, name)) {
        const std::vector<int64_t>& shape = a.global_shape(g, name);
        total += 8 * static_cast<uint64_t>(shape[0] * row_elements(shape));
      }
  return total;
}

void compare_group(StepReader& a, StepReader& b, const std::string& g, DiffReport& r, ProgressMeter& meter) {
  const std::string prefix = g == "weight" ? "" : g + "/";
  for (const std::string& name : a.names(g)) {
    if (!b.has(g, name)) {
      r.only_a.push_back(prefix + name);
      continue;
    }
    const std::vector<int64_t>& shape = a.global_shape(g, name);
    if (shape != b.global_shape(g, name)) {
      r.mismatched.push_back(prefix + name + ": A " + shape_text(shape) + ", B " + shape_text(b.global_shape(g, name)));
      continue;
    }
    const std::vector<float> va = a.read(g, name), vb = b.read(g, name);  // one tensor in memory at a time
    meter.add(8 * va.size());
    const Difference d = compare(va, vb);
    ++r.compared;
    r.identical += d.max_abs == 0 && d.max_rel == 0;
    if (d.max_abs > r.worst_abs) r.worst_name = prefix + name;
    r.worst_abs = std::max(r.worst_abs, d.max_abs);
    r.worst_rel = std::max(r.worst_rel, d.max_rel);
    r.rows.push_back({prefix + name, shape_text(shape), number(d.max_abs), number(d.max_rel)});
  }
  for (const std::string& name : b.names(g))
    if (!a.has(g, name)) r.only_b.push_back(prefix + name);
}

void print_report(const DiffReport& r) {
  print_table(std::cout, {"tensor", "shape", "max_abs", "max_rel"}, r.rows, {false, false, true, true});
  for (const std::string& n : r.only_a) std::cout << "only in A: " << n << "\n";
  for (const std::string& n : r.only_b) std::cout << "only in B: " << n << "\n";
  for (const std::string& n : r.mismatched) std::cout << "shape differs: " << n << "\n";
  std::cout << "summary: " << r.compared << " tensor(s) compared, " << r.identical << " identical; max abs diff "
            << number(r.worst_abs) << (r.worst_abs > 0 ? " (" + r.worst_name + ")" : "") << ", max rel diff "
            << number(r.worst_rel) << "; " << r.only_a.size() << " only in A, " << r.only_b.size() << " only in B, "
            << r.mismatched.size() << " shape mismatch(es)\n";
}

}  // namespace

int diff_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "diff",
      "Compares two checkpoint steps tensor by tensor: max |a-b| and max |a-b|/max(|a|,|b|) per tensor,\n"
      "tensors only in one side listed. Without :STEP a side uses the step its `latest` names.");
  command.positional("RUN_A[:STEP]", "side A: a run directory, optionally with a step")
      .positional("RUN_B[:STEP]", "side B")
      .flag("moments", "also compare the AdamW moments (adam_m, adam_v)")
      .option<double>("fail-above", "X", "exit 1 when any tensor's max abs difference exceeds X (or shapes differ)");
  add_progress_option(command);
  command.notes("Both steps are verified (checksums) first. Exit code 0 whatever the differences, unless\n"
                "--fail-above is given and exceeded. Tensors only in one side never fail the diff.\n"
                "Example: flywheel-ckpt diff runs/a:100 runs/a:200 --fail-above 1e-3");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::vector<std::string>& sides = args.positionals();
  const std::optional<double> limit = args.find<double>("fail-above");
  if (limit && !(*limit >= 0)) usage_error("--fail-above ", *limit, ": must be a number >= 0");
  const ProgressStyle style = progress_style(args);
  StepReader a = open_side(parse_run_step(sides[0]), "A", style);
  StepReader b = open_side(parse_run_step(sides[1]), "B", style);

  std::vector<std::string> groups = {"weight"};
  if (args.flag("moments")) groups = {"weight", "adam_m", "adam_v"};
  DiffReport report;
  {
    ProgressMeter meter("diff: comparing", shared_bytes(a, b, groups), style);
    for (const std::string& g : groups) compare_group(a, b, g, report, meter);
    meter.finish();
  }
  print_report(report);
  if (limit && (report.worst_abs > *limit || !report.mismatched.empty())) {
    std::cout << "FAILED: " << (report.worst_abs > *limit ? "max abs diff " + number(report.worst_abs) +
                                                                " exceeds --fail-above " + number(*limit)
                                                          : "tensor shapes differ")
              << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
