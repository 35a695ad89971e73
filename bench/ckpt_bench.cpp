// ckpt_bench: how fast does a training checkpoint save and load, against what the disk does with dd.
//
//   ckpt_bench [--shape configs/shapes/gpt2-124m.ini] [--dir DIR] [--repeats 5] [--threads 2] [--keep]
//              [--section.key=value ...]   (shape overrides, as for `flywheel train`)
//
// 1. The real Trainer on the shape (single process): one untimed training step (so Adam moments are
//    non-zero), one timed step (the step time the stall is compared with).
// 2. --repeats rounds, each: `dd if=/dev/zero of=DIR/dd.bin bs=4M count=N conv=fsync` with N x 4 MiB ~
//    the checkpoint's tensor bytes (weights + Adam m, v) -- the sequential write rate with fsync --
//    then `dd if=DIR/dd.bin of=/dev/null bs=4M`, then one timed save_training_checkpoint
//    (train.keep_last = 2, so from the third round on a save also retires an old step, as in training;
//    its files are deleted on a background thread, which the round waits for outside the timing).
//    dd and save alternate so that both see the same disk and machine load over the run; on a shared
//    machine the rounds still differ by tens of percent, so the report gives best, median and mean,
//    and the median of each round's own save/dd ratio. Nothing is dropped from the page cache (that
//    needs root), so the read figures are normally page-cache rates; mincore says how much was resident.
// 3. --repeats timed resume_training calls into the same shards (the tensors are checked unchanged).
//    Bytes = the step directory's size on disk (shards + model.h5 + state.h5).
// 4. Prints bytes, save GB/s and its ratio to the dd+fsync rate (target: >= 0.7), load GB/s next to
//    the dd read rate, and the stall per save (save wall time) as a fraction of one training step.
//    Each save also logs where its time went ("checkpoint: saved step ... in X s: ..." on stderr).
//    Prints, never asserts. The 1-minute load average is printed before, during and after: the
//    figures are only as good as the machine was quiet.
//
// A benchmark, not a test: it is never registered with ctest. GB = 1e9 bytes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "bench_args.h"
#include "core/error.h"
#include "core/threads.h"
#include "launch/shape.h"
#include "train/checkpointing.h"
#include "data/data_source.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Of wall times in seconds: best = the shortest.
struct Stats {
  double best = 0, median = 0, mean = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  s.best = *std::min_element(v.begin(), v.end());
  s.median = median(v);
  for (double x : v) s.mean += x / static_cast<double>(v.size());
  return s;
}

std::string list(const std::vector<double>& v) {
  std::string out;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%s%.3f", out.empty() ? "" : " ", x);
    out += buf;
  }
  return out + " s";
}

double load1() {
  double l[3] = {0, 0, 0};
  return getloadavg(l, 3) > 0 ? l[0] : -1;
}

// Bytes allocated on disk under `dir` (st_blocks x 512), and apparent bytes.
void dir_bytes(const fs::path& dir, uint64_t& on_disk, uint64_t& apparent) {
  on_disk = apparent = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (e.is_regular_file() && ::stat(e.path().c_str(), &st) == 0) {
      on_disk += static_cast<uint64_t>(st.st_blocks) * 512;
      apparent += static_cast<uint64_t>(st.st_size);
    }
  }
}

// Fraction of the file's pages resident in the page cache (-1: unknown).
double resident_fraction(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return -1;
  struct stat st {};
  double frac = -1;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      const long page = ::sysconf(_SC_PAGESIZE);
      const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
      std::vector<unsigned char> vec(pages);
      if (::mincore(p, static_cast<size_t>(st.st_size), vec.data()) == 0) {
        size_t in = 0;
        for (unsigned char c : vec) in += c & 1;
        frac = static_cast<double>(in) / static_cast<double>(pages);
      }
      ::munmap(p, static_cast<size_t>(st.st_size));
    }
  }
  ::close(fd);
  return frac;
}

// Runs a shell command, returning its wall time; throws if it fails.
double timed_system(const std::string& cmd) {
  const double t0 = now_s();
  const int rc = std::system(cmd.c_str());
  const double dt = now_s() - t0;
  FW_CHECK(rc == 0, "command failed (status ", rc, "): ", cmd);
  return dt;
}

std::string resolve_shape_path(const std::string& path) {
  if (fs::exists(path)) return path;
#ifdef FLYWHEEL_SOURCE_DIR
  const fs::path in_source = fs::path(FLYWHEEL_SOURCE_DIR) / path;
  if (path.front() != '/' && fs::exists(in_source)) return in_source.string();
#endif
  return path;  // load_shape reports the missing file
}

uint64_t hash_floats(const float* p, int64_t n) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(n) * sizeof(float)));
}

int run(int argc, char** argv) {
#ifdef FLYWHEEL_BINARY_DIR
  const std::string default_parent = FLYWHEEL_BINARY_DIR;
#else
  const std::string default_parent = ".";
#endif
  flywheel::CommandLine command(
      "ckpt_bench", "Checkpoint save/load rate against dd (with fsync) on the same disk, and the training stall\n"
                    "per save.");
  command.option<std::string>("shape", "FILE", "training shape (INI)", "configs/shapes/gpt2-124m.ini")
      .option<std::string>("dir", "DIR",
                           "scratch directory on the disk to measure (created fresh, removed at the end unless\n"
                           "--keep; default: a new directory under the build directory)")
      .option<int>("repeats", "N", "rounds of dd + save, and timed loads (best, median and mean are reported)", "5")
      .option<int>("threads", "N", "OpenMP + BLAS threads for the training step", "2")
      .flag("keep", "keep the scratch directory (checkpoints and dd.bin)")
      .shape_overrides("override a key of the shape, as for `flywheel train`");
  const flywheel::ParsedArgs args = command.parse(argc, argv);
  if (args.help()) {
    std::cout << command.help();
    return 0;
  }
  std::vector<std::string> overrides = args.overrides();
  const int repeats = args.get<int>("repeats"), threads = args.get<int>("threads");
  FW_CHECK(repeats >= 1 && threads >= 1, "--repeats and --threads must be >= 1");
  overrides.push_back("--train.keep_last=2");
  overrides.push_back("--train.threads=" + std::to_string(threads));

  fs::path dir = args.has("dir") ? fs::path(args.get<std::string>("dir"))
                                 : fs::path(default_parent) / ("ckpt_bench-" + std::to_string(::getpid()));
  FW_CHECK(!fs::exists(dir) || fs::is_empty(dir), "--dir ", dir.string(), " exists and is not empty");
  fs::create_directories(dir);
  dir = fs::canonical(dir);
  const fs::path run_dir = dir / "run";
  const fs::path dd_file = dir / "dd.bin";
  const double load_start = load1();

  flywheel::Shape shape = flywheel::load_shape(resolve_shape_path(args.get<std::string>("shape")), overrides);
  shape.validate(1);
  flywheel::set_thread_count(threads);
  std::printf("shape %s, %d threads, scratch dir %s, load average (1 min) at start %.2f on %ld CPUs\n",
              shape.name.c_str(), threads, dir.c_str(), load_start, ::sysconf(_SC_NPROCESSORS_ONLN));

  auto source = flywheel::make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
  flywheel::Trainer trainer(shape.train_spec(), *source);
  flywheel::Fsdp& shards = trainer.shards();
  const int64_t numel = shards.shard_elements();
  const uint64_t tensor_bytes = static_cast<uint64_t>(numel) * 3 * sizeof(float);

  // 1. Train (moments non-zero), then time a step.
  trainer.train_step(0);
  const double t_step0 = now_s();
  trainer.train_step(1);
  const double step_s = now_s() - t_step0;
  const int64_t steps_done = 2;
  std::printf("training step: %.3f s (second step; %lld parameters held)\n", step_s, static_cast<long long>(numel));
  std::fflush(stdout);

  // 2. Rounds of dd (sized like the checkpoint's tensor data) and one save each.
  const uint64_t mib4 = 4ull << 20;
  const uint64_t count = std::max<uint64_t>(1, (tensor_bytes + mib4 - 1) / mib4);
  const uint64_t dd_bytes = count * mib4;
  std::vector<double> dd_w, dd_r, saves, loads_during;
  double dd_resident = -1;
  for (int r = 0; r < repeats; ++r) {
    fs::remove(dd_file);
    dd_w.push_back(timed_system("dd if=/dev/zero of='" + dd_file.string() + "' bs=4M count=" + std::to_string(count) +
                                " conv=fsync status=none"));
    dd_resident = resident_fraction(dd_file);
    dd_r.push_back(timed_system("dd if='" + dd_file.string() + "' of=/dev/null bs=4M status=none"));
    fs::remove(dd_file);  // the save gets the same free space dd had
    const double t0 = now_s();
    flywheel::save_training_checkpoint(trainer, run_dir.string(), steps_done + r);
    saves.push_back(now_s() - t0);
    // Retention's file deletion runs in the background during training; let it finish here so it
    // does not slow the next round's dd (timed apart: it is not part of the stall).
    const double t1 = now_s();
    flywheel::wait_for_step_deletions();
    const double deletion_s = now_s() - t1;
    loads_during.push_back(load1());
    std::printf("round %d: dd write+fsync %.3f s, save %.3f s (then %.3f s more of background deletion), "
                "load average (1 min) %.2f\n",
                r + 1, dd_w.back(), saves.back(), deletion_s, loads_during.back());
    std::fflush(stdout);
  }
  const Stats ddw = stats(dd_w), ddr = stats(dd_r);
  const double ddw_gbs = dd_bytes / ddw.best / 1e9, ddr_gbs = dd_bytes / ddr.best / 1e9;
  std::printf("dd write+fsync %.2f GB (bs=4M count=%llu): best %.3f s = %.3f GB/s, median %.3f s = %.3f GB/s, "
              "mean %.3f s = %.3f GB/s\n",
              dd_bytes / 1e9, static_cast<unsigned long long>(count), ddw.best, ddw_gbs, ddw.median,
              dd_bytes / ddw.median / 1e9, ddw.mean, dd_bytes / ddw.mean / 1e9);
  std::printf("dd read: best %.3f s = %.3f GB/s, median %.3f GB/s -- %.0f%% of the file was in the page cache before "
              "reading (no cache drop: %s)\n",
              ddr.best, ddr_gbs, dd_bytes / ddr.median / 1e9, 100 * dd_resident,
              dd_resident > 0.9 ? "a page-cache rate, not the disk's" : "partly from disk");
  const int64_t last_step = steps_done + repeats - 1;
  char step_name[64];
  std::snprintf(step_name, sizeof step_name, "step-%08lld", static_cast<long long>(last_step));
  uint64_t ck_disk = 0, ck_apparent = 0;
  dir_bytes(run_dir / step_name, ck_disk, ck_apparent);
  double ck_resident = 1;
  for (const auto& e : fs::directory_iterator(run_dir / step_name))
    if (e.path().filename().string().rfind("shard-", 0) == 0) ck_resident = std::min(ck_resident, resident_fraction(e.path()));

  const uint64_t h_before = hash_floats(shards.values().data(), numel) ^ (hash_floats(shards.adam_m().data(), numel) * 3) ^
                            (hash_floats(shards.adam_v().data(), numel) * 7);
  std::vector<double> loads;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_s();
    const auto got = flywheel::resume_training(trainer, run_dir.string());
    loads.push_back(now_s() - t0);
    FW_CHECK(got && *got == last_step, "resume_training did not load step ", last_step);
  }
  const uint64_t h_after = hash_floats(shards.values().data(), numel) ^ (hash_floats(shards.adam_m().data(), numel) * 3) ^
                           (hash_floats(shards.adam_v().data(), numel) * 7);

  // 4. Report.
  const Stats sv = stats(saves), ld = stats(loads);
  const double save_gbs = ck_disk / sv.best / 1e9, load_gbs = ck_disk / ld.best / 1e9;
  // Each round's save rate over the same round's dd rate: the pairing cancels slow drifts in load.
  std::vector<double> round_ratios;
  for (int r = 0; r < repeats; ++r) round_ratios.push_back((ck_disk / saves[r]) / (dd_bytes / dd_w[r]));
  std::string round_text;
  for (double x : round_ratios) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.2f", round_text.empty() ? "" : " ", x);
    round_text += buf;
  }
  std::printf("checkpoint %s: %llu bytes on disk (%.3f GB; apparent %llu; tensors %llu = 3 x 4 B x %lld)\n", step_name,
              static_cast<unsigned long long>(ck_disk), ck_disk / 1e9, static_cast<unsigned long long>(ck_apparent),
              static_cast<unsigned long long>(tensor_bytes), static_cast<long long>(numel));
  std::printf("save (save_training_checkpoint, %d runs): best %.3f s = %.3f GB/s, median %.3f s = %.3f GB/s, "
              "mean %.3f s = %.3f GB/s\n",
              repeats, sv.best, save_gbs, sv.median, ck_disk / sv.median / 1e9, sv.mean, ck_disk / sv.mean / 1e9);
  std::printf("save / dd+fsync (target >= 0.7): best/best = %.2f, median/median = %.2f, mean/mean = %.2f, "
              "per round %s (median %.2f)\n",
              save_gbs / ddw_gbs, (ck_disk / sv.median) / (dd_bytes / ddw.median),
              (ck_disk / sv.mean) / (dd_bytes / ddw.mean), round_text.c_str(), median(round_ratios));
  std::printf("load (resume_training, %d runs): best %.3f s = %.3f GB/s, mean %.3f s = %.3f GB/s; best/dd read = %.2f "
              "(shards %.0f%% in page cache before loading: %s); tensors after load %s\n",
              repeats, ld.best, load_gbs, ld.mean, ck_disk / ld.mean / 1e9, load_gbs / ddr_gbs, 100 * ck_resident,
              ck_resident > 0.9 ? "a page-cache load, like the dd read" : "partly from disk",
              h_before == h_after ? "bit-identical to before" : "DIFFER from before (unexpected)");
  std::printf("all runs: dd write %s; dd read %s; save %s; load %s\n", list(dd_w).c_str(), list(dd_r).c_str(),
              list(saves).c_str(), list(loads).c_str());
  std::printf("stall per save (save wall time): best %.3f s, median %.3f s = %.2f / %.2f training steps of %.3f s\n",
              sv.best, sv.median, sv.best / step_s, sv.median / step_s, step_s);
  std::printf("load average (1 min): %.2f at start, %.2f to %.2f after the saves, %.2f at end\n", load_start,
              *std::min_element(loads_during.begin(), loads_during.end()),
              *std::max_element(loads_during.begin(), loads_during.end()), load1());
  if (!args.flag("keep")) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return flywheel::bench::guarded_main("ckpt_bench", [&] { return run(argc, argv); });
}
