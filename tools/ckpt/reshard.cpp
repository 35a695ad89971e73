// flywheel-ckpt reshard: rewrites one committed step for another mesh, offline. Every tensor
// (weights and moments) is read whole from the verified source, cut into the rows each trainer
// rank of the target mesh would hold, and written as a new committed step (one shard per target
// trainer rank) with save_checkpoint_offline: same files, checks and commit protocol as a job's save.
//
// The new state.h5 records the target mesh in two places, kept consistent: the `mesh` JSON, and
// the [mesh] section of `shape_text` (pp/fsdp/cp/ep/serve lines rewritten, everything else
// verbatim), so a job resuming from the shape text alone sees the mesh the shards are laid out for.
// `extra` (data cursor, RNG counters) is copied unchanged.
#include <algorithm>
#include <array>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/state_file.h"
#include "ckpt/offline.h"
#include "common.h"
#include "model/transformer.h"
#include "reshard_plan.h"
#include "shape_text.h"
#include "train/run_preference.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

constexpr const char* kGroups[] = {"weight", "adam_m", "adam_v"};

// Every array of every tensor, whole. Memory: the checkpoint's tensor bytes.
using WholeTensors = std::map<std::string, std::array<std::vector<float>, 3>>;

// The checkpoint must hold exactly the model's tensors with the model's shapes: a tensor the model
// does not have would have no owner on the target mesh and silently vanish.
void check_tensors_match_model(const StepReader& reader, const ModelConfig& model) {
  std::map<std::string, std::vector<int64_t>> weights;
  for (const std::string& name : reader.names("weight")) weights[name] = reader.global_shape("weight", name);
  const std::vector<std::string> problems = model_mismatches(model, weights);
  if (problems.empty()) return;
  std::string message = "checkpoint " + reader.check().dir + " does not match the model its shape text describes (" +
                        model_summary(model) + "):";
  for (size_t i = 0; i < problems.size() && i < 10; ++i) message += "\n  " + problems[i];
  if (problems.size() > 10) message += "\n  ... and " + std::to_string(problems.size() - 10) + " more";
  fail(message, "\nIf the run was started with command-line overrides the shape text may lack them: give them with ",
       "--set (e.g. --set model.n_layers=2); they are written into the resharded checkpoint's shape text.");
}

WholeTensors read_everything(StepReader& reader, ProgressStyle style) {
  uint64_t total = 0;
  for (const char* g : kGroups)
    for (const std::string& name : reader.names(g)) {
      const std::vector<int64_t>& shape = reader.global_shape(g, name);
      total += 4 * static_cast<uint64_t>(shape[0] * row_elements(shape));
    }
  ProgressMeter meter("reshard: reading", total, style);
  WholeTensors whole;
  for (size_t g = 0; g < 3; ++g)
    for (const std::string& name : reader.names(kGroups[g])) {
      whole[name][g] = reader.read(kGroups[g], name);
      meter.add(4 * whole[name][g].size());
    }
  meter.finish();
  return whole;
}

std::vector<std::vector<TensorSlice>> cut_slices(const std::vector<RankPlan>& plans, WholeTensors& whole) {
  std::vector<std::vector<TensorSlice>> per_rank;
  for (const RankPlan& plan : plans) {
    std::vector<TensorSlice>& slices = per_rank.emplace_back();
    for (const RowRange& t : plan.tensors) {
      auto& arrays = whole.at(t.name);
      const int64_t offset = t.row_begin * row_elements(t.shape);
      auto at = [&](size_t g) { return arrays[g].empty() ? nullptr : arrays[g].data() + offset; };
      slices.push_back(float_slice(t.name, t.shape, t.row_begin, t.row_end, at(0), at(1), at(2)));
    }
  }
  return per_rank;
}

CheckpointState target_state(const CheckpointState& source, const MeshConfig& mesh, const std::string& origin) {
  CheckpointState state = source;
  if (!state.mesh.is_object()) state.mesh = nlohmann::json::object();
  const std::pair<const char*, int64_t> keys[] = {
      {"pp", mesh.pp}, {"fsdp", mesh.fsdp}, {"cp", mesh.cp}, {"ep", mesh.ep}, {"serve", mesh.serve}};
  for (const auto& [key, value] : keys) {
    state.mesh[key] = value;
    state.shape_text = set_ini_value(state.shape_text, "mesh", key, std::to_string(value));
  }
  const Shape check = parse_shape_text(state.shape_text, origin + " (rewritten)");
  if (check.mesh.pp != mesh.pp || check.mesh.fsdp != mesh.fsdp || check.mesh.cp != mesh.cp || check.mesh.ep != mesh.ep)
    fail("rewriting the [mesh] section of the shape text of ", origin, " did not take effect (",
         "the text sets the mesh some other way); refusing to write an inconsistent checkpoint");
  return state;
}

void write_resharded(const std::string& out, const CheckpointState& state,
                     const std::vector<std::vector<TensorSlice>>& per_rank, ProgressStyle style) {
  uint64_t total = 0;  // tensor bytes: the shard files' sizes less HDF5's few KiB of metadata each
  for (const std::vector<TensorSlice>& slices : per_rank)
    for (const TensorSlice& s : slices)
      for (SliceArray array : kSliceArrays)
        if (slice_array(s, array).defined()) total += 4 * static_cast<uint64_t>(slice_rows(s) * row_elements(s.global_shape));
  ProgressMeter meter("reshard: writing", total, style);
  save_checkpoint_offline(out, state, per_rank, /*keep_last=*/0, [&](int, uint64_t bytes) { meter.add(bytes); });
  meter.finish();
}

void print_plan(const std::vector<RankPlan>& plans) {
  std::vector<std::vector<std::string>> rows;
  for (const RankPlan& p : plans) {
    int64_t floats = 0, tensors = 0;
    for (const RowRange& t : p.tensors)
      if (t.row_end > t.row_begin) {
        floats += (t.row_end - t.row_begin) * row_elements(t.shape);
        ++tensors;
      }
    rows.push_back({shard_file_name(p.rank), std::to_string(p.coords.pp), std::to_string(p.coords.fsdp),
                    std::to_string(p.coords.cp), std::to_string(p.coords.ep),
                    detail::concat("[", p.stage.first_layer, ", ", p.stage.end_layer, ")"), std::to_string(tensors),
                    format_bytes(4 * static_cast<uint64_t>(floats))});
  }
  print_table(std::cout, {"shard", "pp", "fsdp", "cp", "ep", "layers", "tensors", "weight bytes"}, rows,
              {false, true, true, true, true, false, true, true});
}

// The source's shape text with the --set corrections written in.
std::string corrected_shape_text(const std::string& state_path, const ParsedArgs& args) {
  std::vector<std::string> corrections;
  for (const std::string& item : args.list("set")) corrections.push_back("--" + item);
  const std::string text = read_state_file(state_path).state.shape_text;
  try {
    return apply_overrides(text, corrections);
  } catch (const std::exception& e) {
    usage_error("--set: ", e.what());
  }
}

// The checks `flywheel train` makes of a mesh (TrainSpec::validate: parallel/mesh_rules.h on the
// model and the batch the checkpoint's shape text records; DPO's own), before anything is read or
// written: shards for a mesh the trainer refuses are shards no run can load.
void check_mesh_as_train_does(const Shape& shape, const MeshConfig& mesh) {
  check_mesh_for_model(shape.model, mesh);  // the tool's own wording for pp, ep and tied embeddings
  TrainSpec spec = shape.train_spec();
  spec.mesh = mesh;
  try {
    spec.validate();
    if (shape.train.objective == "dpo") check_preference_spec(spec, shape.dpo_config());
  } catch (const std::exception& e) {
    fail("target mesh ", mesh_spec_text(mesh), ": ", without_source_location(e.what()),
         " (what `flywheel train` requires, with the batch the checkpoint's shape text records)");
  }
}

// What those checks let through: a mesh with more ranks than the model has rows to give them (e.g.
// --set train.micro_batch=100000 --mesh fsdp=100000), where some shard would hold nothing.
void check_every_shard_holds_rows(const std::vector<RankPlan>& plans, const MeshConfig& mesh) {
  int empty = 0, first_empty = -1;
  for (const RankPlan& p : plans) {
    bool holds = false;
    for (const RowRange& t : p.tensors) holds = holds || t.row_end > t.row_begin;
    if (holds) continue;
    if (empty++ == 0) first_empty = p.rank;
  }
  if (empty > 0)
    fail("target mesh ", mesh_spec_text(mesh), ": ", empty, " of its ", plans.size(),
         " shards would hold no tensor rows at all (the first is shard ", first_empty,
         "): the mesh has more ranks than the model has rows to spread over them; use fewer ranks");
}

void check_output_dir(const std::string& run_dir, const std::string& out, int64_t step, bool force) {
  std::error_code ec;
  if (fs::exists(out, ec) && fs::equivalent(out, run_dir, ec))
    fail("--out ", out, " is the source run directory; write the resharded copy to a new directory");
  const std::vector<int64_t> steps = committed_steps(out);
  if (std::find(steps.begin(), steps.end(), step) != steps.end() && !force)
    fail(out, " already has a committed step ", step, "; pass --force to replace it");
}

}  // namespace

int reshard_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "reshard",
      "Writes a copy of one committed step laid out for another mesh: one shard file per trainer rank\n"
      "of the target mesh, holding exactly the rows that rank holds when training (weights and AdamW\n"
      "moments). The step number, seed and extra state are kept; the mesh is updated in state.h5.");
  command.positional("RUN_DIR", "the run directory to read")
      .required<std::string>("out", "OUT_RUN_DIR", "run directory to write (created if needed)")
      .required<std::string>("mesh", "SPEC", "target mesh: pp=,fsdp=,cp=,ep=,serve= (unset: pp/fsdp/cp/ep 1, serve 0)",
                             "pp=2,fsdp=2,cp=1,ep=1")
      .flag("force", "replace the step in OUT_RUN_DIR if it is already committed there")
      .repeatable("set", "KEY=VALUE", "correct the recorded shape text: section.key=value, e.g. model.n_layers=2");
  add_step_option(command, "reshard");
  add_progress_option(command);
  command.notes("The mesh must pass the checks of `flywheel train` on the model and batch of the recorded\n"
                "shape: pp divides n_layers, ep divides moe_experts and fsdp x cp, fsdp divides micro_batch,\n"
                "2 x cp divides seq_len (cp > 1); and every target shard must hold some rows.\n"
                "The target mesh is recorded in state.h5 both as the mesh JSON and in the [mesh]\n"
                "section of the shape text. Memory: the whole step (weights + moments) is held at once.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  const std::string out = args.get<std::string>("out");
  const MeshConfig mesh = parse_mesh_spec(args.get<std::string>("mesh"));
  const ProgressStyle style = progress_style(args);

  const int64_t step = choose_step(run_dir, step_option(args));
  check_output_dir(run_dir, out, step, args.flag("force"));
  const std::string origin = step_dir_path(run_dir, step) + "/state.h5";
  // The mesh is checked against the model and batch before the (long) verification pass.
  const std::string recorded = corrected_shape_text(origin, args);
  const Shape shape = parse_shape_text(recorded, origin);
  check_mesh_as_train_does(shape, mesh);
  const std::vector<RankPlan> plans = plan_target_mesh(shape.model, mesh);
  check_every_shard_holds_rows(plans, mesh);
  StepReader reader = open_verified_step(run_dir, step, "reshard: verifying", style);
  check_tensors_match_model(reader, shape.model);
  CheckpointState source = reader.record().state;
  source.shape_text = recorded;  // with the --set corrections
  const CheckpointState state = target_state(source, mesh, origin);

  WholeTensors whole = read_everything(reader, style);
  write_resharded(out, state, cut_slices(plans, whole), style);
  std::cout << "resharded step " << step << " of " << run_dir << " (" << format_mesh(reader.record().state.mesh)
            << ", " << reader.record().shards.size() << " shard(s)) to " << step_dir_path(out, step) << " ("
            << mesh_spec_text(mesh) << ", " << plans.size() << " shard(s)):\n";
  print_plan(plans);
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
