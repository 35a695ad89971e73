// `flywheel plan --shape FILE [--ranks N] [--device-mem GiB] [--section.key=value ...]`
#include "launch/plan_command.h"

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "launch/command_line.h"
#include "launch/shape.h"
#include "parallel/plan.h"

namespace flywheel {
namespace {

// PlanOptions' defaults as --help shows them: 400e12 / 1e12 -> "400".
std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", v);
  return text;
}

CommandLine plan_command_line() {
  const PlanOptions defaults;
  CommandLine command(
      "flywheel plan",
      "Prints the analytic plan of one optimizer step of the shape on its [mesh], for the worst trainer\n"
      "rank: memory (weights, grads, AdamW state, FSDP working copies, activations, workspace, comm\n"
      "buffers) and the bytes sent per step by collective and by mesh communicator, counted as the MPI\n"
      "backend counts them (ring convention, src/comm/mpi_comm.cpp). Then an ESTIMATED step time.\n"
      "With --ranks N it also searches every legal mesh of N trainer ranks (pp x fsdp x cp = N, any ep)\n"
      "and lists those fitting --device-mem, fastest estimated step first. Runs as a plain process.");
  command.required<std::string>("shape", "FILE", "training shape (configs/shapes/*.ini)", "configs/shapes/llama-8b.ini")
      .option<int64_t>("ranks", "N", "also propose meshes of N trainer ranks")
      .option<double>("device-mem", "GiB", "memory per device for the proposals", "80")
      .option<int64_t>("top", "K", "proposals to list", "10")
      .option<double>("peak-tflops", "X", "estimate: peak FLOP/s per device in TFLOP/s (bf16-class)",
                      number_text(defaults.peak_flops / 1e12))
      .option<double>("mfu", "X", "estimate: achieved fraction of peak", number_text(defaults.mfu))
      .option<double>("link-gbs", "X", "estimate: bytes per second per rank in GB/s (the default: a 200 Gb/s NIC)",
                      number_text(defaults.link_bytes_per_s / 1e9))
      .flag("fsdp-prefetch", "memory: add one more gathered unit (overlapped gathers; not done today)")
      .shape_overrides("override a key of the shape, as for `flywheel train` (see its --help)")
      .notes("What is exact: weights, grads, optimizer state, FSDP working copies and every communicated byte\n"
             "except the expert all-to-all (it depends on routing; uniform routing is assumed). Activations\n"
             "match the stash buffers; workspace, comm buffers, FLOPs and times are estimates.");
  return command;
}

struct PlanArgs {
  int64_t ranks = 0, top = 0;
  double device_mem_gib = 0;
  PlanOptions options;
};

// Every number of `flywheel plan` is positive.
template <typename T>
T positive(const ParsedArgs& args, const std::string& name) {
  const T v = args.get<T>(name);
  if (!(v > 0)) usage_error("--", name, " ", v, ": needs a positive number");
  return v;
}

// The estimate's rates stay PlanOptions' own unless given.
PlanArgs plan_args(const ParsedArgs& args) {
  PlanArgs a;
  if (args.has("ranks")) a.ranks = positive<int64_t>(args, "ranks");
  a.top = positive<int64_t>(args, "top");
  a.device_mem_gib = positive<double>(args, "device-mem");
  if (args.has("peak-tflops")) a.options.peak_flops = 1e12 * positive<double>(args, "peak-tflops");
  if (args.has("mfu")) a.options.mfu = positive<double>(args, "mfu");
  if (args.has("link-gbs")) a.options.link_bytes_per_s = 1e9 * positive<double>(args, "link-gbs");
  a.options.fsdp_prefetch = args.flag("fsdp-prefetch");
  return a;
}

// Parameter counts: "8.03 B", "1.05 M", "854 k".
std::string count(int64_t n) {
  const double v = static_cast<double>(n);
  char text[32];
  if (v >= 1e9) std::snprintf(text, sizeof(text), "%.3g B", v / 1e9);
  else if (v >= 1e6) std::snprintf(text, sizeof(text), "%.3g M", v / 1e6);
  else std::snprintf(text, sizeof(text), "%.3g k", v / 1e3);
  return text;
}

void row(const char* what, const char* kind, int64_t bytes) {
  std::printf("  %-50s %-8s %16lld  %12s\n", what, kind, static_cast<long long>(bytes),
              format_bytes(static_cast<double>(bytes)).c_str());
}

void print_header(const Shape& s, const StepPlan& p) {
  const ModelConfig& m = s.model;
  const TrainConfig& t = s.train;
  const MeshConfig& x = s.mesh;
  std::printf("flywheel plan: %s  (one optimizer step, fp32 as the trainer computes today)\n", s.name.c_str());
  std::printf("  model  %s parameters, %s active per token; %lld layers, d_model %lld, vocab %lld%s\n",
              count(p.total_params).c_str(), count(p.active_params).c_str(), static_cast<long long>(m.n_layers),
              static_cast<long long>(m.d_model), static_cast<long long>(m.vocab_size),
              m.is_moe() ? (", " + std::to_string(m.moe_experts) + " experts top-" + std::to_string(m.moe_top_k)).c_str()
                         : "");
  if (m.lora.enabled())
    std::printf("  lora   rank %lld on %s: %s adapter parameters trained, the base frozen (weights only)\n",
                static_cast<long long>(m.lora.rank), m.lora.targets.c_str(),
                count(m.lora.adapter_params(m)).c_str());
  std::printf("  step   %lld rows x %lld micro-batches x %lld tokens = %lld tokens\n",
              static_cast<long long>(t.micro_batch), static_cast<long long>(t.grad_accum),
              static_cast<long long>(t.seq_len), static_cast<long long>(t.global_batch() * t.seq_len));
  std::printf("  mesh   pp %lld x fsdp %lld x cp %lld, ep %lld = %lld trainer ranks; a rank's micro-batch: "
              "%lld rows x %lld tokens\n\n",
              static_cast<long long>(x.pp), static_cast<long long>(x.fsdp), static_cast<long long>(x.cp),
              static_cast<long long>(x.ep), static_cast<long long>(x.trainer_ranks()),
              static_cast<long long>(t.micro_batch / x.fsdp), static_cast<long long>(t.seq_len / x.cp));
}

void print_memory(const RankPlan& r) {
  const MemoryPlan& m = r.memory;
  std::printf("memory, worst trainer rank %d (stage %d, dp rank %d, ep rank %d)%*s bytes\n", r.trainer_rank,
              r.coords.pp, r.coords.dp, r.coords.ep, 20, "");
  row("weights", "exact", m.weights);
  row("grads", "exact", m.grads);
  row("optimizer state (AdamW m, v)", "exact", m.optimizer);
  row("FSDP working copies (values + grads), peak", "exact", m.working);
  const std::string act = "activations: " + std::to_string(m.in_flight) + " stash" + (m.in_flight > 1 ? "es" : "") +
                          " in flight x " + format_bytes(static_cast<double>(m.activations_per_micro_batch));
  row(act.c_str(), "stash", m.activations);
  row("workspace: backward temporaries, LM-head chunk", "estimate", m.workspace);
  row("comm buffers: sends, pack/unpack, K/V, dispatch", "estimate", m.comm_buffers);
  row("total", "", m.total());
  std::printf("\n");
}

void print_comm(const RankPlan& r) {
  std::printf("communication per step, trainer rank %d (bytes sent; ring convention of src/comm/mpi_comm.cpp)\n",
              r.trainer_rank);
  for (size_t op = 0; op < kCommOps; ++op) {
    const bool estimated = static_cast<CommOp>(op) == CommOp::kAllToAll && r.comm.all_to_all_estimated;
    row(comm_op_name(static_cast<CommOp>(op)), estimated ? "estimate" : "exact", static_cast<int64_t>(r.comm.by_op[op]));
  }
  std::printf("  by communicator:\n");
  for (size_t g = 0; g < kMeshGroups; ++g)
    if (r.comm.by_group[g] > 0)
      row((std::string("  ") + mesh_group_name(static_cast<MeshGroup>(g))).c_str(), "",
          static_cast<int64_t>(r.comm.by_group[g]));
  row("total", r.comm.all_to_all_estimated ? "estimate" : "exact", static_cast<int64_t>(r.comm.total()));
  std::printf("\n");
}

void print_estimate(const StepEstimate& e, const PlanOptions& o) {
  std::printf("step time: ESTIMATE (%.0f TFLOP/s x %.0f%% MFU per device, %.0f GB/s per rank, no overlap)\n",
              o.peak_flops / 1e12, 100 * o.mfu, o.link_bytes_per_s / 1e9);
  std::printf("  compute  %10.4g s  (slowest rank, with the 1F1B bubble (P-1)/(M+P-1) = %.1f%%)\n", e.compute_s,
              100 * e.bubble_fraction);
  std::printf("  comm     %10.4g s  (busiest rank's bytes / link)\n", e.comm_s);
  std::printf("  step     %10.4g s  = %.4g tokens/s over the mesh\n\n", e.step_s, e.tokens_per_s);
}

void print_proposals(const Shape& s, const PlanArgs& a) {
  const int64_t device = static_cast<int64_t>(a.device_mem_gib * 1024 * 1024 * 1024);
  std::string why;
  const std::vector<MeshProposal> fits = propose_meshes(s.model, s.train.batch(), a.ranks, device, a.options, &why);
  if (fits.empty()) {
    std::printf("meshes of %lld trainer ranks: none: %s\n", static_cast<long long>(a.ranks), why.c_str());
    return;
  }
  std::printf("meshes of %lld trainer ranks fitting %.2f GiB per rank, fastest ESTIMATED step first (%zu fit):\n",
              static_cast<long long>(a.ranks), a.device_mem_gib, fits.size());
  std::printf("  %3s %4s %5s %4s %4s %12s %11s %10s %10s %12s\n", "#", "pp", "fsdp", "cp", "ep", "peak", "compute s",
              "comm s", "step s", "tokens/s");
  for (size_t i = 0; i < fits.size() && static_cast<int64_t>(i) < a.top; ++i) {
    const MeshProposal& p = fits[i];
    std::printf("  %3zu %4lld %5lld %4lld %4lld %12s %11.4g %10.4g %10.4g %12.4g\n", i + 1,
                static_cast<long long>(p.mesh.pp), static_cast<long long>(p.mesh.fsdp),
                static_cast<long long>(p.mesh.cp), static_cast<long long>(p.mesh.ep),
                format_bytes(static_cast<double>(p.peak_bytes)).c_str(), p.estimate.compute_s, p.estimate.comm_s,
                p.estimate.step_s, p.estimate.tokens_per_s);
  }
}

}  // namespace

int plan_command(const Runtime& rt, int argc, char** argv) {
  const CommandLine command = plan_command_line();
  const ParsedArgs parsed = command.parse(argc - 1, argv + 1);  // argv[1] is "plan"
  if (rt.rank != 0) return 0;  // a plan needs one process; under mpirun the others stay quiet
  if (parsed.help()) {
    std::cout << command.help();
    return 0;
  }
  const PlanArgs args = plan_args(parsed);
  Shape shape = load_shape(parsed.get<std::string>("shape"), parsed.overrides());
  shape.validate(shape.mesh.world_size());  // planned, not launched: the mesh names its own world
  const StepPlan plan = plan_step(shape.model, shape.train.batch(), shape.mesh, args.options);
  print_header(shape, plan);
  print_memory(plan.worst_memory());
  print_comm(plan.worst_comm());
  print_estimate(plan.estimate, args.options);
  if (args.ranks > 0) print_proposals(shape, args);
  std::fflush(stdout);
  return 0;
}

}  // namespace flywheel
