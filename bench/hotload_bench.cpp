// hotload_bench: how big are weight-snapshot deltas under RL-sized updates, and how fast does a
// replica hot-load one, against memory and read() baselines measured in the same run.
//
//   hotload_bench [--shape configs/shapes/gpt2-124m.ini] [--steps 4] [--lrs 1e-6,1e-5] [--levels 1,3]
//                 [--dtypes fp32,bf16] [--threads 2] [--dir DIR] [--keep] [--section.key=value ...]
//
// For every (serving dtype, zstd level, learning rate): the model's parameters (the real registry:
// HF names and shapes of the shape's ModelConfig, N(0, 0.02) init) are published as a full
// snapshot, then --steps AdamW-sized updates are published as deltas (full_every larger than the
// run) and a replica loads each one. The update per element is lr * (u + 0.1 w), u uniform with unit
// variance: Adam's m / sqrt(v) is O(1) per element, plus decoupled weight decay 0.1.
// With --lora.rank=R (any [lora] override) only the adapters train: the update touches their elements alone,
// the frozen base's bytes never change, and the deltas show what a LoRA run's snapshots cost.
// Per step it prints: changed elements (bit patterns in the serving dtype), delta bytes as a fraction
// of the full serve-dtype bytes, publish ms, and hot-load ms (map the file + verify its XXH3 +
// decompress + XOR in place + checksum of the result) next to three baselines on the same bytes:
// memcpy and XOR of the full serve-dtype bytes already in memory (what applying any delta must
// touch), and read() of the delta file into a buffer (page cache: the file was just written).
// Once per configuration it also compresses one delta's first 64 MiB with the byte planes and
// interleaved, to show what the transposition buys. Prints, never asserts; not a ctest test.
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_args.h"
#include "core/error.h"
#include "core/threads.h"
#include "launch/shape.h"
#include "model/transformer.h"
#include "core/bf16.h"
#include "serve/replica.h"
#include "serve/snapshot_loader.h"
#include "serve/snapshot_publisher.h"

namespace {

using namespace flywheel;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// CPU time of the whole process (all threads), ms: on a shared machine wall time includes waiting
// for a core; CPU time says what the work itself cost.
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// w -= lr * (u + 0.1 w), u uniform on [-sqrt(3), sqrt(3)) (unit variance), keyed by (seed, index).
void adamw_like_step(float* w, int64_t n, float lr, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double u = (static_cast<double>(splitmix64(seed * 0x100000001b3ull + static_cast<uint64_t>(i)) >> 11) *
                          0x1.0p-53 * 2.0 - 1.0) * 1.7320508075688772;
    w[i] -= lr * static_cast<float>(u + 0.1 * w[i]);
  }
}

// Serve-dtype bytes of n values (bf16: round-to-nearest-even).
std::vector<uint8_t> serve_bytes(const float* w, int64_t n, ServeDtype dtype) {
  std::vector<uint8_t> out(static_cast<size_t>(n * serve_dtype_bytes(dtype)));
  if (dtype == ServeDtype::kFp32)
    std::memcpy(out.data(), w, out.size());
  else
    fp32_to_bf16(w, reinterpret_cast<BFloat16*>(out.data()), n);
  return out;
}

// Compressed size of `bytes` in 1 MiB chunks, with or without the byte-plane transposition.
uint64_t compressed_size(const std::vector<uint8_t>& bytes, int64_t item, int level, bool planes) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::vector<uint8_t> split_buf(kSnapshotChunkBytes), out(ZSTD_compressBound(kSnapshotChunkBytes));
  uint64_t total = 0;
  for (size_t at = 0; at < bytes.size(); at += kSnapshotChunkBytes) {
    const size_t n = std::min<size_t>(kSnapshotChunkBytes, bytes.size() - at);
    const uint8_t* src = bytes.data() + at;
    if (planes) {
      split_byte_planes(src, split_buf.data(), static_cast<int64_t>(n) / item, item);
      src = split_buf.data();
    }
    total += ZSTD_compressCCtx(cctx, out.data(), out.size(), src, n, level);
  }
  ZSTD_freeCCtx(cctx);
  return total;
}

struct Baselines {
  double memcpy_ms = 0, xor_ms = 0;
};

// memcpy and in-place XOR of `bytes` bytes, best of 3 (the buffers are touched first).
Baselines memory_baselines(uint64_t bytes) {
  std::vector<uint64_t> a(bytes / 8 + 1, 1), b(bytes / 8 + 1, 2);
  Baselines best{1e30, 1e30};
  for (int r = 0; r < 3; ++r) {
    auto t = Clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    best.memcpy_ms = std::min(best.memcpy_ms, ms_since(t));
    t = Clock::now();
    const int64_t words = static_cast<int64_t>(bytes / 8);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < words; ++i) b[static_cast<size_t>(i)] ^= a[static_cast<size_t>(i)];
    best.xor_ms = std::min(best.xor_ms, ms_since(t));
  }
  return best;
}

// read() of the whole file into `buf` (resized and touched beforehand, so no page faults are
// timed); best of 2.
double read_file_ms(const std::string& path, std::vector<char>& buf) {
  const size_t size = static_cast<size_t>(fs::file_size(path));
  if (buf.size() < size) buf.assign(size, 0);
  double best = 1e30;
  for (int r = 0; r < 2; ++r) {
    const auto t = Clock::now();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    FW_CHECK(fd >= 0, "cannot open ", path);
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::read(fd, buf.data() + done, size - done);
      FW_CHECK(n > 0, "reading ", path, " failed");
      done += static_cast<size_t>(n);
    }
    ::close(fd);
    best = std::min(best, ms_since(t));
  }
  return best;
}

struct Config {
  ServeDtype dtype;
  int level;
  float lr;
};

void run_config(const Config& c, Transformer& model, const std::string& dir, int steps, uint64_t seed, bool keep) {
  ParameterSet& params = model.params();
  params.initialize(seed, model.config().init_std, model.config().n_layers);
  // The replica stores its weights in the serve dtype, as a serving replica does.
  Transformer replica_model(model.config(), Transformer::WeightsOnly{storage_dtype(c.dtype)});
  const std::vector<NamedTensor> trainer = parameter_tensors(params);
  const std::vector<NamedTensor> replica = parameter_tensors(replica_model.params());

  fs::remove_all(dir);
  SnapshotPublisher publisher(dir, c.dtype, /*full_every=*/steps + 1, /*keep_full=*/1);
  publisher.set_zstd_level(c.level);
  SnapshotLoader loader(dir, c.dtype);
  float* w = params.values().data();
  std::vector<char> read_buf;
  const int64_t n = params.numel();
  std::printf("\n== %s, zstd level %d, lr %.0e ==\n", serve_dtype_name(c.dtype), c.level, c.lr);
  std::printf("%4s %6s %9s %12s %8s %10s %9s %9s %9s %9s %9s %8s %8s\n", "step", "kind", "changed%", "file bytes",
              "of full", "publish ms", "load ms", "load cpu", "memcpy ms", "xor ms", "read ms", "ld/xor", "ld/read");
  for (int s = 0; s <= steps; ++s) {
    std::vector<uint8_t> before;
    if (s > 0) {
      before = serve_bytes(w, n, c.dtype);
      if (!params.any_frozen())
        adamw_like_step(w, n, c.lr, seed + static_cast<uint64_t>(s));
      else
        for (size_t id = 0; id < params.list().size(); ++id)
          if (params.trainable(static_cast<int>(id)))
            adamw_like_step(w + params.info(static_cast<int>(id)).offset, params.info(static_cast<int>(id)).numel,
                            c.lr, seed + static_cast<uint64_t>(s) * 1000003u + id);
    }
    // LoRA: the frozen base is declared unchanged, as the flywheel's trainer declares it (rl/flywheel_trainer.cpp).
    std::vector<bool> unchanged;
    if (params.any_frozen())
      for (size_t id = 0; id < params.list().size(); ++id) unchanged.push_back(!params.trainable(static_cast<int>(id)));
    const PublishInfo pub = publisher.publish(s, trainer, unchanged);
    const double cpu0 = cpu_ms();
    const LoadInfo got = loader.load(s, replica);
    const double load_cpu = cpu_ms() - cpu0;
    FW_CHECK(got.step == s && !got.fell_back, "replica did not load step ", s, ": ", got.reason);
    const Baselines base = memory_baselines(pub.full_bytes);
    const double read_ms = read_file_ms(pub.path, read_buf);
    double changed = 100.0;
    if (s > 0) {
      const std::vector<uint8_t> after = serve_bytes(w, n, c.dtype);
      const int64_t item = serve_dtype_bytes(c.dtype);
      int64_t diff = 0;
      for (int64_t i = 0; i < n; ++i) diff += std::memcmp(&before[i * item], &after[i * item], item) != 0;
      changed = 100.0 * diff / n;
      if (s == 1) {  // what the byte planes buy, on the first 64 MiB of this delta
        std::vector<uint8_t> x(std::min<size_t>(after.size(), size_t{64} << 20));
        for (size_t i = 0; i < x.size(); ++i) x[i] = before[i] ^ after[i];
        const uint64_t planes = compressed_size(x, item, c.level, true), flat = compressed_size(x, item, c.level, false);
        std::printf("     (first %zu MiB of the delta: byte planes %llu bytes, interleaved %llu bytes: %.2fx)\n",
                    x.size() >> 20, static_cast<unsigned long long>(planes), static_cast<unsigned long long>(flat),
                    static_cast<double>(flat) / static_cast<double>(planes));
      }
    }
    std::printf("%4d %6s %9.2f %12llu %8.4f %10.1f %9.1f %9.1f %9.1f %9.1f %9.2f %8.2f %8.1f\n", s, pub.full ? "full" : "delta",
                changed, static_cast<unsigned long long>(pub.file_bytes),
                static_cast<double>(pub.file_bytes) / static_cast<double>(pub.full_bytes), pub.ms, got.ms, load_cpu,
                base.memcpy_ms, base.xor_ms, read_ms, got.ms / base.xor_ms, got.ms / read_ms);
  }
  if (!keep) fs::remove_all(dir);
}

int run(int argc, char** argv) {
  CommandLine command("hotload_bench", "Snapshot delta sizes and hot-load latency vs memory/read baselines.");
  command.option<std::string>("shape", "FILE", "model shape (INI)",
                              std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/gpt2-124m.ini")
      .option<int>("steps", "N", "delta steps per configuration", "4")
      .option<std::string>("lrs", "LIST", "learning rates", "1e-6,1e-5")
      .option<std::string>("levels", "LIST", "zstd levels", "1,3")
      .option<std::string>("dtypes", "LIST", "serving dtypes", "fp32,bf16")
      .option<int>("threads", "N", "OpenMP threads (publisher compression, loader decompression)", "2")
      .option<std::string>("dir", "DIR", "publish directory (default: a new one under the build directory)")
      .flag("keep", "leave the last configuration's snapshots in the publish directory (to inspect them)")
      .shape_overrides();
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) {
    std::cout << command.help();
    return 0;
  }
  const int threads = args.get<int>("threads");
  set_thread_count(threads);
  const Shape shape = load_shape(args.get<std::string>("shape"), args.overrides());
  Transformer model(shape.model);
  const std::string dir = args.has("dir") ? args.get<std::string>("dir")
                                          : std::string(FLYWHEEL_BINARY_DIR) + "/hotload-bench-publish";
  std::printf("hotload_bench: %s, %lld parameters in %zu tensors, %d threads, publish dir %s\n",
              shape.path.c_str(), static_cast<long long>(model.params().numel()), model.params().list().size(),
              threads, dir.c_str());
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("load average (1 min) before: %.2f\n", load[0]);
  for (const std::string& dtype : split(args.get<std::string>("dtypes")))
    for (const std::string& level : split(args.get<std::string>("levels")))
      for (const std::string& lr : split(args.get<std::string>("lrs")))
        run_config({parse_serve_dtype(dtype), std::stoi(level), std::stof(lr)}, model, dir, args.get<int>("steps"),
                   shape.train.seed, args.flag("keep"));
  getloadavg(load, 3);
  std::printf("\nload average (1 min) after: %.2f\n", load[0]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench::guarded_main("hotload_bench", [&] { return run(argc, argv); }); }
