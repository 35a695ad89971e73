// train_step_bench: how fast is one training step, measured against what the BLAS can do here.
//
//   train_step_bench [--shape configs/shapes/gpt2-124m.ini] [--threads 2] [--steps 3] [--warmup 1]
//                    [--rows R] [--seq T] [--sgemm-n 2048] [--json FILE] [--profile]
//                    [--model.key=value ...]   (any other shape override, as for `flywheel train`)
//
// 1. Baseline, same process and thread count: OpenBLAS sgemm C = A B at n x n x n (best of 5 after one
//    warm-up), plus the model's dominant GEMM (the MLP up-projection, [tokens x d_ff x d_model], in the
//    layout linear_forward uses) for context.
// 2. The real Trainer on the shape (grad_accum 1): `warmup` untimed steps, then `steps` timed ones.
// 3. Model FLOPs per step = 6 N_active tokens + causal attention (QK^T and PV, forward + backward =
//    3x forward; the flash backward's recomputation is work we choose to do, not model FLOPs), as a
//    rate and as a fraction of the square-sgemm rate (target: >= 0.5).
// 4. Peak RSS next to the 16 bytes/parameter of weights + grads + Adam m, v (LoRA: 4 bytes per frozen base
//    parameter, 16 per adapter parameter).
// 5. --profile: `steps` more real Trainer::train_steps, after the timed ones, with the model's backend
//    (through which the model and the optimizer run every op) replaced by a ProfilingBackend over
//    cpu_backend() (src/backend/profiling_backend.h). Per backend op: calls and seconds per step,
//    the least-disturbed step's seconds, the share of the profiled steps' mean wall time, and for
//    linear, linear_residual, linear_backward and attention(_backward) the rate of the model FLOPs
//    the profiler computed from the op's arguments, also as a fraction of the sgemm rate. The time
//    outside backend ops (the batch, zero_grads, FSDP hooks, activation and temporary buffers,
//    framework code, comm) has no timer: it is the step's wall time minus the sum of its ops. Beside
//    it: comm calls and bytes per step (CommCounters of the mesh's groups) and minor page faults per
//    step -- on this project's VMs a first touch of fresh memory is expensive. The profiled code is
//    the code that trains; the profiler costs one clock pair per op (51 ns measured on the dev VM;
//    ~480 ops per gpt2-124m step).
//
// A benchmark, not a test: it is never registered with ctest.
#include <sys/resource.h>
#include <unistd.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/profiling_backend.h"
#include "bench_args.h"
#include "comm/comm.h"
#include "core/allocator.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/data_source.h"
#include "launch/shape.h"
#include "model/config.h"
#include "ops/gemm.h"
#include "parallel/mesh.h"
#include "train/trainer.h"

namespace {

using flywheel::Buffer;
using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

std::string fmt(const char* format, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}


double min_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

// Deterministic values in [-1, 1) (a cheap counter hash; only the timing matters).
void fill_uniform(float* x, int64_t count, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    x[i] = static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
}

// ---- sgemm baseline ---------------------------------------------------------------------------------

struct GemmRate {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  double best_s = 0, gflops = 0;
};

// C[M,N] = op(A) op(B) through the project's gemm wrapper (cblas_sgemm): one warm-up, best of `reps`.
GemmRate sgemm_rate(int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, int reps) {
  Buffer<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n)), c(static_cast<size_t>(m * n));
  fill_uniform(a.data(), m * k, 1);
  fill_uniform(b.data(), k * n, 2);
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  auto run = [&] {
    const double t0 = now_s();
    flywheel::ops::gemm<float>(trans_a, trans_b, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n);
    return now_s() - t0;
  };
  run();  // warm-up: page faults, BLAS buffers, thread start
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) best = std::min(best, run());
  return {m, n, k, trans_a, trans_b, best, 2.0 * static_cast<double>(m) * n * k / best * 1e-9};
}

// ---- FLOP model -------------------------------------------------------------------------------------

// Causal attention, model FLOPs of one forward: QK^T and PV over the visible half, 2 FLOPs per MAC.
double attention_forward_flops(const flywheel::ModelConfig& c, int64_t rows, int64_t seq) {
  const double pairs = static_cast<double>(seq) * static_cast<double>(seq + 1) / 2.0;
  return static_cast<double>(rows) * 2.0 * 2.0 * static_cast<double>(c.n_heads * c.resolved_head_dim()) * pairs;
}

// Matrix products: 2 FLOPs per parameter per token forward, 2 for the input gradient, 2 for the weight gradient.
// A LoRA base is frozen: 4 N (no weight gradient), and its adapters 6 N_adapter (backward's recomputation of
// x A^T is work we choose to do, not model FLOPs).
double model_flops_per_step(const flywheel::ModelConfig& c, int64_t rows, int64_t seq) {
  const double tokens = static_cast<double>(rows * seq);
  const double base = (c.lora.enabled() ? 4.0 : 6.0) * static_cast<double>(c.active_matmul_params());
  const double adapters = 6.0 * static_cast<double>(c.lora.adapter_params(c, /*active=*/true));
  return (base + adapters) * tokens + 3.0 * static_cast<double>(c.n_layers) * attention_forward_flops(c, rows, seq);
}


// ---- load, memory -----------------------------------------------------------------------------------

// What the rest of the machine did while we measured: busy CPU time from /proc/stat (steal included:
// time the hypervisor gave to someone else) minus this process's own CPU time, in cores. On a shared
// machine this says whether a timing can be trusted: 0.0 is a quiet machine, 1.0 a whole core lost.
struct CpuSnapshot {
  double wall = 0, busy = 0, self = 0;
};

CpuSnapshot cpu_snapshot() {
  CpuSnapshot s;
  s.wall = now_s();
  std::ifstream f("/proc/stat");
  std::string label;
  double v[8] = {};  // user nice system idle iowait irq softirq steal
  f >> label;
  for (double& x : v) f >> x;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (f && label == "cpu") s.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  s.self = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  return s;
}

double others_cores(const CpuSnapshot& a, const CpuSnapshot& b) {
  const double wall = b.wall - a.wall;
  return wall > 0 ? std::max(0.0, ((b.busy - a.busy) - (b.self - a.self)) / wall) : 0.0;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

int64_t minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// ---- profile: the real train_step through a ProfilingBackend ----------------------------------------

// One backend op over the profiled steps.
struct OpProfile {
  std::string op;
  int64_t calls = 0;              // summed over the steps
  double seconds = 0, flops = 0;  // summed over the steps
  double min_seconds = 0;         // the least-disturbed step's (0 if some step did not call the op)
  int steps_called = 0;
};

struct StepProfile {
  std::vector<double> step_s;  // per step: StepMetrics::seconds (the whole train_step, wall)
  std::vector<double> ops_s;   // per step: the sum of its backend ops' wall seconds
  std::vector<OpProfile> ops;  // slowest (mean seconds) first
  flywheel::CommCounters comm;  // summed over the steps and the mesh's groups
  int64_t faults = 0;           // minor page faults, summed over the steps
  double other_load = 0;        // cores used by other processes meanwhile
  int steps() const { return static_cast<int>(step_s.size()); }
};

// Every group of the mesh: a rank's traffic is the sum of their counters.
std::vector<flywheel::Comm*> mesh_groups(flywheel::Mesh& m) {
  return {&m.world(), &m.trainers(), &m.pp(), &m.dp(), &m.fsdp(), &m.cp(), &m.ep(), &m.edp()};
}

// to += (after - before), per collective kind.
void add_comm(flywheel::CommCounters& to, const flywheel::CommCounters& before, const flywheel::CommCounters& after) {
  for (size_t i = 0; i < to.calls.size(); ++i) {
    to.calls[i] += after.calls[i] - before.calls[i];
    to.bytes_sent[i] += after.bytes_sent[i] - before.bytes_sent[i];
  }
}

// Folds one step's op tallies into the profile.
void add_step(StepProfile& p, const std::vector<flywheel::ProfilingBackend::OpTime>& times, double step_seconds) {
  double ops = 0;
  for (const auto& t : times) {
    auto it = std::find_if(p.ops.begin(), p.ops.end(), [&](const OpProfile& o) { return o.op == t.op; });
    if (it == p.ops.end()) it = p.ops.insert(p.ops.end(), OpProfile{t.op});
    it->calls += t.calls;
    it->seconds += t.seconds;
    it->flops += t.flops;
    it->min_seconds = it->steps_called == 0 ? t.seconds : std::min(it->min_seconds, t.seconds);
    it->steps_called += 1;
    ops += t.seconds;
  }
  p.step_s.push_back(step_seconds);
  p.ops_s.push_back(ops);
}

// Puts the model back on its own backend when the profile ends, however it ends.
struct BackendRestore {
  flywheel::Transformer& model;
  flywheel::Backend& previous;
  ~BackendRestore() { model.set_backend(previous); }
};

// Runs `steps` real Trainer::train_steps from `first_step` with the model's backend (which the
// optimizer uses too) wrapped in a ProfilingBackend over cpu_backend(), and collects each step's
// per-op tallies, wall time, comm counters and page faults. The tallies are read between steps.
StepProfile profile_steps(flywheel::Trainer& trainer, int64_t first_step, int steps) {
  flywheel::ProfilingBackend profiler(flywheel::cpu_backend());
  const BackendRestore restore{trainer.model(), trainer.model().backend()};
  trainer.model().set_backend(profiler);
  const std::vector<flywheel::Comm*> groups = mesh_groups(trainer.mesh());
  StepProfile p;
  const CpuSnapshot cpu0 = cpu_snapshot();
  for (int s = 0; s < steps; ++s) {
    profiler.reset();
    std::vector<flywheel::CommCounters> before;
    for (const flywheel::Comm* g : groups) before.push_back(g->counters());
    const int64_t faults0 = minor_faults();
    const double seconds = trainer.train_step(first_step + s).seconds;
    p.faults += minor_faults() - faults0;
    for (size_t g = 0; g < groups.size(); ++g) add_comm(p.comm, before[g], groups[g]->counters());
    add_step(p, profiler.times(), seconds);
  }
  p.other_load = others_cores(cpu0, cpu_snapshot());
  for (OpProfile& o : p.ops)
    if (o.steps_called < steps) o.min_seconds = 0;  // scale_in_place: clipping, only when the norm is over
  std::stable_sort(p.ops.begin(), p.ops.end(),
                   [](const OpProfile& a, const OpProfile& b) { return a.seconds > b.seconds; });
  return p;
}

double mean_of(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
}

// Per step of the profile: its wall time minus the time inside backend ops.
std::vector<double> outside_ops(const StepProfile& p) {
  std::vector<double> out;
  for (size_t s = 0; s < p.step_s.size(); ++s) out.push_back(p.step_s[s] - p.ops_s[s]);
  return out;
}

// The per-op table, slowest first; returns its rows as JSON.
nlohmann::json report_ops(const StepProfile& p, double step_mean, double sgemm_gflops) {
  const double inv = 1.0 / static_cast<double>(p.steps());
  std::printf("  %-48s %7s %8s %8s %7s %9s %8s\n", "backend op", "calls", "s/step", "min", "share", "GFLOP/s",
              "of sgemm");
  nlohmann::json rows = nlohmann::json::array();
  for (const OpProfile& o : p.ops) {
    const double seconds = o.seconds * inv, calls = static_cast<double>(o.calls) * inv;
    const double gflops = o.flops > 0 && o.seconds > 0 ? o.flops / o.seconds * 1e-9 : 0.0;
    const std::string rate = gflops > 0 ? fmt(" %9.1f", gflops) + fmt(" %8.2f", gflops / sgemm_gflops) : "";
    std::printf("  %-48s %7g %8.3f %8.3f %6.1f%%%s\n", o.op.c_str(), calls, seconds, o.min_seconds,
                100.0 * seconds / step_mean, rate.c_str());
    rows.push_back({{"op", o.op},
                    {"calls", calls},
                    {"seconds", seconds},
                    {"min_seconds", o.min_seconds},
                    {"share", seconds / step_mean},
                    {"flops", o.flops * inv},
                    {"gflops", gflops},
                    {"ratio_to_sgemm", gflops / sgemm_gflops}});
  }
  return rows;
}

// Calls and bytes sent per step, per collective kind that was called at all.
nlohmann::json report_comm(const StepProfile& p) {
  const double inv = 1.0 / static_cast<double>(p.steps());
  nlohmann::json kinds = nlohmann::json::object();
  std::string line;
  for (size_t i = 0; i < p.comm.calls.size(); ++i) {
    if (p.comm.calls[i] == 0) continue;
    const char* name = flywheel::comm_op_name(static_cast<flywheel::CommOp>(i));
    const double calls = static_cast<double>(p.comm.calls[i]) * inv;
    const double bytes = static_cast<double>(p.comm.bytes_sent[i]) * inv;
    kinds[name] = {{"calls", calls}, {"bytes", bytes}};
    line += (line.empty() ? "" : ", ") + std::string(name) + fmt(" %g calls", calls) + fmt(" %.0f bytes", bytes);
  }
  std::printf("  comm per step (CommCounters of the mesh's groups): %s\n", line.empty() ? "none" : line.c_str());
  return kinds;
}

// Figures of the unprofiled timed steps that the profile is compared with.
struct TimedSteps {
  double mean_s = 0, min_s = 0, faults_per_step = 0, model_flops = 0, sgemm_gflops = 0;
};

// Prints the profile: the op table, the time outside ops (a difference), the step, and what the
// profiled steps did beside the ops; returns the same figures as JSON.
nlohmann::json report_profile(const StepProfile& p, const TimedSteps& timed) {
  const double step_mean = mean_of(p.step_s), step_min = min_of(p.step_s);
  const std::vector<double> outside = outside_ops(p);
  double op_flops = 0;
  for (const OpProfile& o : p.ops) op_flops += o.flops / static_cast<double>(p.steps());
  std::printf("\nprofile: %d real train_steps, every op of the model and the optimizer through a ProfilingBackend"
              " over cpu_backend();\ns/step is the mean, min the least-disturbed step; shares are of the profiled"
              " steps' mean wall time (%.3f s);\nGFLOP/s counts model FLOPs from each op's arguments (linear: 2 n in"
              " out per product; attention: the causal half, backward = 2x forward, no recomputation)\n",
              p.steps(), step_mean);
  nlohmann::json rows = report_ops(p, step_mean, timed.sgemm_gflops);
  const double ops_mean = mean_of(p.ops_s), outside_mean = mean_of(outside);
  const double step_gflops = op_flops / step_mean * 1e-9;
  std::printf("  %-48s %7s %8.3f %8.3f %6.1f%%\n", "sum of backend ops", "", ops_mean, min_of(p.ops_s),
              100.0 * ops_mean / step_mean);
  std::printf("  %-48s %7s %8.3f %8.3f %6.1f%%\n", "outside ops = step - sum of ops (a difference)", "",
              outside_mean, min_of(outside), 100.0 * outside_mean / step_mean);
  std::printf("  %-48s %7s %8.3f %8.3f %6.1f%% %9.1f %8.2f\n", "train_step (wall, profiled)", "", step_mean, step_min,
              100.0, step_gflops, step_gflops / timed.sgemm_gflops);
  std::printf("  outside ops is not timed: it is what the step spent outside backend ops -- the batch, zero_grads,"
              " FSDP hooks,\n  allocating and zero-filling activations and temporaries (page faults), framework"
              " code between ops, comm\n");
  std::printf("  model FLOPs counted by the ops: %.3f GFLOP per step = %.6f x the formula above (%.3f GFLOP)\n",
              op_flops * 1e-9, op_flops / timed.model_flops, timed.model_flops * 1e-9);
  nlohmann::json comm = report_comm(p);
  const double faults = static_cast<double>(p.faults) / p.steps();
  std::printf("  minor page faults per step: %.0f in the profiled steps, %.0f in the timed steps above\n", faults,
              timed.faults_per_step);
  std::printf("  profiled steps minus timed steps above: %+.3f s (mean), %+.3f s (min); the profiler adds one clock"
              " pair per op,\n  tens of microseconds per step: more than that is the machine (compare the loads)\n",
              step_mean - timed.mean_s, step_min - timed.min_s);
  std::printf("  other processes on this machine during the profile: %.2f cores%s\n", p.other_load,
              p.other_load > 0.1 ? " (timings disturbed)" : "");
  return {{"method", "Trainer::train_step with the model's backend a ProfilingBackend over cpu_backend()"},
          {"steps", p.steps()},
          {"step_seconds", p.step_s},
          {"step_mean_s", step_mean},
          {"step_min_s", step_min},
          {"ops", rows},
          {"ops_s", ops_mean},
          {"ops_min_s", min_of(p.ops_s)},
          {"outside_ops_s", outside_mean},
          {"outside_ops_min_s", min_of(outside)},
          {"outside_ops_share", outside_mean / step_mean},
          {"outside_ops_is", "step wall time minus the sum of the ops' wall times (a difference, not a timer)"},
          {"op_model_flops_per_step", op_flops},
          {"comm_per_step", comm},
          {"minor_faults_per_step", faults},
          {"other_load_cores", p.other_load}};
}

std::string resolve_shape_path(const std::string& path) {
  if (std::filesystem::exists(path)) return path;
#ifdef FLYWHEEL_SOURCE_DIR
  const std::filesystem::path in_source = std::filesystem::path(FLYWHEEL_SOURCE_DIR) / path;
  if (path.front() != '/' && std::filesystem::exists(in_source)) return in_source.string();
#endif
  return path;  // load_shape reports the missing file
}

int run(int argc, char** argv) {
  flywheel::CommandLine command("train_step_bench",
                                "Training-step throughput against the OpenBLAS sgemm rate at the same thread count.");
  command.option<std::string>("shape", "FILE", "training shape (INI)", "configs/shapes/gpt2-124m.ini")
      .option<int>("threads", "N", "OpenMP + BLAS threads", "2")
      .option<int>("steps", "N", "timed training steps", "3")
      .option<int>("warmup", "N", "untimed training steps first", "1")
      .option<int64_t>("rows", "R", "rows per step (train.micro_batch; default: the shape's)")
      .option<int64_t>("seq", "T", "tokens per row (train.seq_len; default: the shape's)")
      .option<int64_t>("sgemm-n", "N", "square sgemm baseline size", "2048")
      .option<int>("sgemm-reps", "N", "sgemm repetitions after one warm-up (best is reported)", "5")
      .flag("profile", "also run `steps` more steps through a profiling backend and report where their time goes")
      .option<std::string>("json", "FILE", "also write the figures as one JSON object to FILE")
      .shape_overrides("override a key of the shape, as for `flywheel train`");
  const flywheel::ParsedArgs args = command.parse(argc, argv);
  if (args.help()) {
    std::cout << command.help();
    return 0;
  }
  std::vector<std::string> overrides = args.overrides();
  const int threads = args.get<int>("threads");
  const int steps = args.get<int>("steps"), warmup = args.get<int>("warmup");
  FW_CHECK(steps >= 1 && warmup >= 0, "--steps must be >= 1 and --warmup >= 0");
  if (args.has("rows")) overrides.push_back("--train.micro_batch=" + std::to_string(args.get<int64_t>("rows")));
  if (args.has("seq")) overrides.push_back("--train.seq_len=" + std::to_string(args.get<int64_t>("seq")));
  overrides.push_back("--train.grad_accum=1");
  overrides.push_back("--train.threads=" + std::to_string(threads));

  flywheel::Shape shape = flywheel::load_shape(resolve_shape_path(args.get<std::string>("shape")), overrides);
  shape.validate(1);
  const flywheel::ModelConfig& mc = shape.model;
  const int64_t rows = shape.train.micro_batch, seq = shape.train.seq_len, tokens = rows * seq;

  flywheel::set_thread_count(threads);
  nlohmann::json out;
  out["shape"] = shape.name;
  out["shape_path"] = shape.path;
  out["threads"] = threads;
  out["rows"] = rows;
  out["seq"] = seq;
  out["tokens_per_step"] = tokens;
  out["openblas"] = {{"core", openblas_get_corename()}, {"config", openblas_get_config()}};

  // 1. sgemm baselines.
  const int64_t sn = args.get<int64_t>("sgemm-n");
  const int reps = args.get<int>("sgemm-reps");
  const CpuSnapshot cpu0 = cpu_snapshot();
  const GemmRate square = sgemm_rate(sn, sn, sn, false, false, reps);
  std::printf("openblas: %s\n", openblas_get_config());
  std::printf("sgemm n=%lld, %d threads: %.1f GFLOP/s (best of %d)\n", static_cast<long long>(sn), threads,
              square.gflops, reps);
  const GemmRate up = sgemm_rate(tokens, mc.d_ff, mc.d_model, false, true, reps);
  std::printf("sgemm MLP up-projection [%lld x %lld x %lld] (NT, as linear_forward): %.1f GFLOP/s (best of %d)\n",
              static_cast<long long>(tokens), static_cast<long long>(mc.d_ff), static_cast<long long>(mc.d_model),
              up.gflops, reps);
  const CpuSnapshot cpu1 = cpu_snapshot();
  if (__builtin_cpu_supports("avx512f") && std::string(openblas_get_corename()).find("kylake") == std::string::npos &&
      std::string(openblas_get_corename()).find("ooperlake") == std::string::npos &&
      std::string(openblas_get_corename()).find("apphire") == std::string::npos)
    std::printf("note: the CPU has AVX-512 but OpenBLAS chose its %s kernels (it does not recognise this CPU);"
                " OPENBLAS_CORETYPE=SkylakeX in the environment selects the AVX-512 ones\n",
                openblas_get_corename());
  std::fflush(stdout);
  out["sgemm"] = {{"n", sn}, {"reps", reps}, {"best_s", square.best_s}, {"gflops", square.gflops}};
  out["sgemm_mlp_up"] = {{"m", up.m},           {"n", up.n}, {"k", up.k}, {"layout", "NT"}, {"best_s", up.best_s},
                         {"gflops", up.gflops}};

  // 2. The trainer.
  auto source = flywheel::make_data_source(shape.data, seq, shape.train.seed);
  flywheel::Trainer trainer(shape.train_spec(), *source);
  const int64_t numel = trainer.model().params().numel();
  for (int s = 0; s < warmup; ++s) trainer.train_step(s);
  const CpuSnapshot cpu2 = cpu_snapshot();
  const int64_t faults0 = minor_faults();
  std::vector<double> seconds;
  double last_loss = 0;
  for (int s = 0; s < steps; ++s) {
    const flywheel::StepMetrics m = trainer.train_step(warmup + s);
    FW_CHECK(m.tokens == tokens, "step processed ", m.tokens, " tokens, expected ", tokens);
    seconds.push_back(m.seconds);
    last_loss = m.loss;
  }
  const CpuSnapshot cpu3 = cpu_snapshot();
  const double faults_per_step = static_cast<double>(minor_faults() - faults0) / steps;
  const double mean_s = mean_of(seconds);
  const double min_s = min_of(seconds);
  const double load_sgemm = others_cores(cpu0, cpu1), load_steps = others_cores(cpu2, cpu3);
  const double peak_mib = peak_rss_mib();  // of the timed steps (the profiled ones come after)
  // Values 4 B per parameter, gradients and AdamW m, v 12 B per trained one (a LoRA run: the adapters).
  const double trained = static_cast<double>(trainer.shards().trainable_elements());
  const double state_mib = (4.0 * static_cast<double>(numel) + 12.0 * trained) / (1024.0 * 1024.0);

  const double flops = model_flops_per_step(mc, rows, seq);
  const double attn_flops = 3.0 * static_cast<double>(mc.n_layers) * attention_forward_flops(mc, rows, seq);
  const double rate_mean = flops / mean_s * 1e-9, rate_best = flops / min_s * 1e-9;
  std::printf("train step %s (%.1fM params, %lld tokens): %.3f s mean, %.3f s min over %d steps (loss %.3f)\n",
              shape.name.c_str(), static_cast<double>(numel) / 1e6, static_cast<long long>(tokens), mean_s, min_s,
              steps, last_loss);
  if (mc.lora.enabled())
    std::printf("model FLOPs/step: %.1f GFLOP (frozen base 4 x %.1fM active + LoRA rank %lld adapters 6 x %.2fM, x %lld "
                "tokens + attention %.1f GFLOP)\n",
                flops * 1e-9, static_cast<double>(mc.active_matmul_params()) / 1e6,
                static_cast<long long>(mc.lora.rank), static_cast<double>(mc.lora.adapter_params(mc, true)) / 1e6,
                static_cast<long long>(tokens), attn_flops * 1e-9);
  else
    std::printf("model FLOPs/step: %.1f GFLOP (6 x %.1fM active x %lld tokens + attention %.1f GFLOP)\n",
                flops * 1e-9, static_cast<double>(mc.active_matmul_params()) / 1e6, static_cast<long long>(tokens),
                attn_flops * 1e-9);
  std::printf("model FLOP/s: %.1f GFLOP/s = %.2f of sgemm (best step: %.1f GFLOP/s = %.2f; target >= 0.5)\n",
              rate_mean, rate_mean / square.gflops, rate_best, rate_best / square.gflops);
  std::printf("tokens/s: %.0f (mean)\n", static_cast<double>(tokens) / mean_s);
  std::printf("peak RSS: %.0f MiB (weights+grads+Adam: %.0f MiB, %.1fM of %.1fM parameters trained); %.0f minor page "
              "faults per step\n",
              peak_mib, state_mib, trained / 1e6, static_cast<double>(numel) / 1e6, faults_per_step);
  std::printf("other processes on this machine: %.2f cores during sgemm, %.2f cores during the timed steps%s\n",
              load_sgemm, load_steps,
              std::max(load_sgemm, load_steps) > 0.1 ? " (timings disturbed: rerun on a quiet machine)" : "");
  std::fflush(stdout);
  out["params"] = numel;
  out["trained_params"] = trained;
  out["active_matmul_params"] = mc.active_matmul_params();
  out["step"] = {{"warmup", warmup}, {"steps", steps},  {"seconds", seconds}, {"mean_s", mean_s},
                 {"min_s", min_s},   {"last_loss", last_loss}};
  out["model_flops_per_step"] = flops;
  out["attention_flops_per_step"] = attn_flops;
  out["model_gflops"] = rate_mean;
  out["model_gflops_best"] = rate_best;
  out["ratio_to_sgemm"] = rate_mean / square.gflops;
  out["ratio_to_sgemm_best"] = rate_best / square.gflops;
  out["tokens_per_s"] = static_cast<double>(tokens) / mean_s;
  out["peak_rss_mib"] = peak_mib;
  out["state_mib"] = state_mib;
  out["minor_faults_per_step"] = faults_per_step;
  out["other_load_cores"] = {{"sgemm", load_sgemm}, {"steps", load_steps}};

  // 3. Profile: `steps` more real steps, every op timed by the backend it runs through.
  if (args.flag("profile")) {
    const StepProfile profile = profile_steps(trainer, warmup + steps, steps);
    out["profile"] = report_profile(profile, {mean_s, min_s, faults_per_step, flops, square.gflops});
  }

  if (args.has("json")) {
    const std::string path = args.get<std::string>("json");
    std::ofstream f(path);
    FW_CHECK(f.good(), "cannot write --json file ", path);
    f << out.dump(2) << "\n";
    FW_CHECK(f.good(), "error writing --json file ", path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  flywheel::keep_freed_memory();  // as flywheel's main does
  return flywheel::bench::guarded_main("train_step_bench", [&] { return run(argc, argv); });
}
