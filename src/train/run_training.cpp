// The training loop around Trainer: run directory, progress lines with rates and ETA, metrics.jsonl.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "parallel/mesh.h"
#include "train/metrics_log.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

std::string default_run_name(const std::string& shape_name) {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &utc);
  return shape_name + "-" + stamp;
}

// Creates the run directory; refuses to mix two runs' metrics in one directory.
std::filesystem::path create_run_dir(const Shape& shape) {
  const std::filesystem::path dir = std::filesystem::path(shape.train.out_dir) / shape.train.run_name;
  FW_CHECK(!std::filesystem::exists(dir / "metrics.jsonl"), "run directory '", dir.string(),
           "' already holds a run (metrics.jsonl): choose another train.run_name or remove it");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  FW_CHECK(!ec, "cannot create run directory '", dir.string(), "': ", ec.message());
  std::ofstream(dir / "shape.ini", std::ios::binary) << shape.text;
  return dir;
}

std::string format_rate(double per_second) {
  char text[32];
  if (per_second >= 1e6)
    std::snprintf(text, sizeof(text), "%.2fM", per_second / 1e6);
  else if (per_second >= 1e3)
    std::snprintf(text, sizeof(text), "%.1fk", per_second / 1e3);
  else
    std::snprintf(text, sizeof(text), "%.0f", per_second);
  return text;
}

nlohmann::json to_json(const StepMetrics& m, double elapsed) {
  return {{"step", m.step + 1},         {"loss", m.loss},
          {"ce_loss", m.ce_loss},       {"aux_loss", m.aux_loss},
          {"lr", m.lr},                 {"grad_norm", m.grad_norm},
          {"loss_tokens", m.loss_tokens}, {"tokens", m.tokens},
          {"step_seconds", m.seconds},  {"tokens_per_second", m.tokens / m.seconds},
          {"elapsed_seconds", elapsed}};
}

// Rank 0 decides the run name (it may contain the time) and every trainer learns it.
std::string agree_on_run_name(const Shape& shape, Comm& comm) {
  std::string name = shape.train.run_name.empty() ? default_run_name(shape.name) : shape.train.run_name;
  int64_t length = static_cast<int64_t>(name.size());
  comm.broadcast(&length, sizeof(length), 0);
  name.resize(length);
  comm.broadcast(name.data(), length, 0);
  return name;
}

std::string mesh_description(const Mesh& mesh) {
  const MeshConfig& m = mesh.config();
  return detail::concat("mesh pp", m.pp, " x fsdp", m.fsdp, " x cp", m.cp, " (ep ", m.ep, ")");
}

}  // namespace

std::string run_training(const Shape& shape, const DataSource& source, Mesh& mesh) {
  Trainer trainer(shape, source, mesh);  // builds and initialises before anything is written
  Comm& comm = mesh.trainers();
  Shape named = shape;
  named.train.run_name = agree_on_run_name(shape, comm);
  const bool writer = comm.rank() == 0;
  const std::filesystem::path dir = std::filesystem::path(shape.train.out_dir) / named.train.run_name;
  std::unique_ptr<MetricsLog> metrics;
  if (writer) {
    create_run_dir(named);
    metrics = std::make_unique<MetricsLog>((dir / "metrics.jsonl").string());
  }
  comm.barrier();
  const ModelConfig& mc = shape.model;
  log_info("run ", dir.string(), ": ", shape.name, ", ", mc.total_params() / 1e6, "M parameters (",
           mc.is_moe() ? "MoE" : "dense", "), data ", source.describe(), ", ", shape.train.steps, " steps x ",
           shape.train.global_batch(), " rows x ", shape.train.seq_len, " tokens, ", mesh_description(mesh), ", ",
           thread_count(), " threads per rank");
  log_info("per-rank parameters + grads + AdamW moments: ", trainer.shards().shard_elements() * 16 / 1048576.0,
           " MiB (", trainer.shards().shard_elements(), " of ", mc.total_params(), " parameters on this rank)");

  const auto start = std::chrono::steady_clock::now();
  double recent_seconds = 0;  // exponential moving average of step time, for the ETA
  for (int64_t step = 0; step < shape.train.steps; ++step) {
    const StepMetrics m = trainer.train_step(step);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    recent_seconds = step == 0 ? m.seconds : 0.8 * recent_seconds + 0.2 * m.seconds;
    if (writer) metrics->append(to_json(m, elapsed));
    const bool last = step + 1 == shape.train.steps;
    if ((step + 1) % shape.train.log_every == 0 || last) {
      char line[256];
      std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %s tok/s | ETA %s",
                    static_cast<long long>(step + 1), static_cast<long long>(shape.train.steps), m.loss, m.lr,
                    m.grad_norm, format_rate(m.tokens / m.seconds).c_str(),
                    format_duration(recent_seconds * static_cast<double>(shape.train.steps - step - 1)).c_str());
      log_info(line);
    }
  }
  log_info("done in ", format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()),
           "; metrics in ", (dir / "metrics.jsonl").string());
  return dir.string();
}

}  // namespace flywheel
