// safetensors import read rate: a random BF16 file (~200 MB by default) read into fp32 through
// ckpt/safetensors, whole and as one rank's 1/8 row range of every tensor (an fsdp8 mesh), against a
// dd-like read(2) loop over the same file in the same run. Every pass runs from the page cache (the
// file is read once first), so the ratio measures our parsing and widening, not the disk.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "bench_args.h"
#include "ckpt/safetensors.h"

namespace flywheel {
namespace {
namespace st = safetensors;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The dd baseline: 8 MiB read(2) calls into one reused buffer, as `dd bs=8M` does.
double dd_seconds(const std::string& path) {
  std::vector<char> buffer(8 << 20);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FW_CHECK(fd >= 0, "cannot open ", path);
  const auto start = std::chrono::steady_clock::now();
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  const double s = seconds_since(start);
  ::close(fd);
  return s;
}

// Reads rows [0, rows / parts) of every tensor, into fresh tensors (first-touch page faults
// included) or into one reused buffer (as an import fills memory it has already touched).
double read_seconds(const std::string& path, int parts, bool fresh, uint64_t& bytes) {
  std::vector<float> reused(4096 * 1536);
  const auto start = std::chrono::steady_clock::now();
  const st::File file(path);
  for (const st::TensorInfo& t : file.tensors())
    if (fresh) file.read_rows_f32(t.name, 0, t.rows() / parts);
    else file.read_rows_into(t.name, 0, t.rows() / parts, reused.data());
  bytes = file.bytes_read();
  return seconds_since(start);
}

void write_random_file(const std::string& path, int tensors, int64_t rows, int64_t cols) {
  std::vector<st::Source> sources;
  for (int i = 0; i < tensors; ++i)
    sources.push_back({"model.layers." + std::to_string(i) + ".mlp.up_proj.weight", {rows, cols}, [=] {
                         std::mt19937 rng(static_cast<uint32_t>(i));
                         std::normal_distribution<float> normal(0.f, 0.02f);
                         std::vector<float> v(static_cast<size_t>(rows * cols));
                         for (float& x : v) x = normal(rng);
                         return v;
                       }});
  st::WriteOptions options;
  options.dtype = DType::kBF16;
  st::write_file(path, sources, options);
}

int run(const ParsedArgs& args) {
  const std::string path = args.get<std::string>("file");
  const int tensors = args.get<int>("tensors"), repeats = args.get<int>("repeats");
  write_random_file(path, tensors, 4096, 1536);
  const double mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
  dd_seconds(path);  // into the page cache
  double dd = 1e9;
  for (int r = 0; r < repeats; ++r) dd = std::min(dd, dd_seconds(path));
  std::printf("file: %s, %.1f MB, %d BF16 tensors of [4096, 1536]; best of %d, page cache warm\n", path.c_str(), mb,
              tensors, repeats);
  std::printf("dd-like read(2), 8 MiB blocks        : %8.1f MB/s\n", mb / dd);
  for (const int parts : {1, 8})
    for (const bool fresh : {true, false}) {
      double best = 1e9;
      uint64_t bytes = 0;
      for (int r = 0; r < repeats; ++r) best = std::min(best, read_seconds(path, parts, fresh, bytes));
      const double rate = double(bytes) / 1e6 / best;
      std::printf("-> fp32, %s, %-13s: %8.1f MB/s, %6.1f MB read (%.3f of the file), ratio to dd %.2f\n",
                  parts == 1 ? "whole   " : "rows 1/8", fresh ? "fresh tensors" : "reused buffer", rate,
                  double(bytes) / 1e6, double(bytes) / 1e6 / mb, rate / (mb / dd));
    }
  std::filesystem::remove(path);
  return 0;
}

}  // namespace
}  // namespace flywheel

int main(int argc, char** argv) {
  using namespace flywheel;
  return bench::guarded_main("safetensors_read_bench", [&] {
    CommandLine command("safetensors_read_bench", "safetensors BF16 -> fp32 read rate against a dd-like read(2).");
    command.option<std::string>("file", "PATH", "scratch file to write, read and remove", "/tmp/st_bench.safetensors")
        .option<int>("tensors", "N", "tensors of [4096, 1536] BF16 (12.6 MB each)", "16")
        .option<int>("repeats", "N", "passes of each reader (the best is reported)", "3");
    const ParsedArgs args = command.parse(argc, argv);
    if (args.help()) {
      std::printf("%s", command.help().c_str());
      return 0;
    }
    return run(args);
  });
}
