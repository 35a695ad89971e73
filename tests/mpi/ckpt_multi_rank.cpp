// Multi-rank checkpoint test (run under mpirun, label `mpi`): each rank holds a row range of a few
// tensors; the job saves, then loads onto different row splits (reversed rank order with other
// boundaries, a 2-rank sub-group, a 1-rank sub-group), reads whole tensors through model.h5, falls
// back past a corrupt shard on every rank, and checks that a bad request on one rank makes every
// rank throw instead of hanging. Usage: ckpt_multi_rank <work dir>. Exit 0 when every case passed.
#include <mpi.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/h5_util.h"
#include "comm/comm.h"
#include "core/error.h"
#include "core/log.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
};
// "model.norm.weight" has fewer rows than ranks, so some rank holds none of it.
const std::vector<Spec> kSpecs = {{"model.embed_tokens.weight", {10, 3}},
                                  {"model.layers.0.mlp.up_proj.weight", {7, 4}},
                                  {"model.layers.0.mlp.experts.w", {5, 2, 2}},
                                  {"model.norm.weight", {2}},
                                  {"lm_head.weight", {1, 4}}};

int64_t row_size(const Spec& s) { return row_elements(s.shape); }

// Element i of array k of tensor t at `step`: 32 random bits (NaNs included), so equality is bit equality.
float expected_value(int64_t step, size_t t, int k, int64_t i) {
  const int64_t key[4] = {step, static_cast<int64_t>(t), k, i};
  const uint32_t bits = static_cast<uint32_t>(XXH3_64bits(key, sizeof(key)));
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// How a rank's rows are chosen: the chunk index this rank takes, and floor or ceil boundaries.
struct Split {
  bool reversed = false;  // rank r takes chunk P-1-r
  bool ceil = false;      // chunk c starts at ceil(n c / P) instead of floor
  int64_t begin(int64_t n, int c, int p) const { return ceil ? (n * c + p - 1) / p : n * c / p; }
};

// This rank's rows of every tensor, with storage.
struct Holding {
  std::vector<std::vector<float>> w, m, v;
  std::vector<TensorSlice> slices;

  Holding(const Comm& comm, Split split) {
    const int p = comm.size(), c = split.reversed ? p - 1 - comm.rank() : comm.rank();
    for (const Spec& s : kSpecs) {
      const int64_t n = s.shape[0], b = split.begin(n, c, p), e = split.begin(n, c + 1, p);
      const size_t count = static_cast<size_t>((e - b) * row_size(s));
      w.emplace_back(count), m.emplace_back(count), v.emplace_back(count);
      slices.push_back(float_slice(s.name, s.shape, b, e, w.back().data(), m.back().data(), v.back().data()));
    }
  }
  void fill(int64_t step) {
    for (size_t t = 0; t < slices.size(); ++t) {
      const int64_t first = slices[t].row_begin * row_size(kSpecs[t]);
      for (size_t i = 0; i < w[t].size(); ++i) {
        w[t][i] = expected_value(step, t, 0, first + i);
        m[t][i] = expected_value(step, t, 1, first + i);
        v[t][i] = expected_value(step, t, 2, first + i);
      }
    }
  }
  // "" when every element is bit-identical to step's values.
  std::string mismatch(int64_t step) const {
    for (size_t t = 0; t < slices.size(); ++t) {
      const int64_t first = slices[t].row_begin * row_size(kSpecs[t]);
      for (int k = 0; k < 3; ++k) {
        const std::vector<float>& data = k == 0 ? w[t] : k == 1 ? m[t] : v[t];
        for (size_t i = 0; i < data.size(); ++i) {
          const float want = expected_value(step, t, k, first + i);
          if (std::memcmp(&data[i], &want, sizeof(float)) != 0)
            return detail::concat(kSpecs[t].name, " array ", k, " element ", first + i, " differs from step ", step);
        }
      }
    }
    return {};
  }
};

CheckpointState state_at(int64_t step, int world) {
  CheckpointState state;
  state.step = step;
  state.seed = 17;
  state.mesh = {{"pp", 1}, {"fsdp", world}, {"cp", 1}, {"ep", 1}, {"serve", 0}};
  return state;
}

std::string load_and_compare(Comm& comm, const std::string& dir, Split split, int64_t want_step) {
  Holding loaded(comm, split);
  const LoadResult result = load_checkpoint(comm, dir, std::nullopt, loaded.slices);
  if (result.step != want_step) return detail::concat("loaded step ", result.step, ", expected ", want_step);
  return loaded.mismatch(want_step);
}

std::string whole_tensors_from_model_file(Comm& comm, const std::string& dir, int64_t step) {
  if (comm.rank() != 0) return {};
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(step));
  H5Handle file = h5_open_file_readonly((fs::path(dir) / name / "model.h5").string());
  for (size_t t = 0; t < kSpecs.size(); ++t) {
    const int64_t n = kSpecs[t].shape[0] * row_size(kSpecs[t]);
    std::vector<float> data(static_cast<size_t>(n));
    H5Handle ds =
        H5Handle::dataset(FW_H5_CHECK(H5Dopen2(file.get(), ("/adam_v/" + kSpecs[t].name).c_str(), H5P_DEFAULT)));
    FW_H5_CHECK(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()));
    for (int64_t i = 0; i < n; ++i) {
      const float want = expected_value(step, t, 2, i);
      if (std::memcmp(&data[i], &want, sizeof(float)) != 0)
        return detail::concat("model.h5 /adam_v/", kSpecs[t].name, " element ", i, " differs");
    }
  }
  return {};
}

// Runs `body` on every rank; expects every rank to throw flywheel::Error containing `text`.
std::string expect_error_everywhere(const std::function<void()>& body, const std::string& text) {
  try {
    body();
  } catch (const Error& e) {
    const std::string message = e.what();
    return message.find(text) != std::string::npos ? "" : "error does not mention '" + text + "': " + message;
  }
  return "no error thrown on this rank";
}

}  // namespace

int run(Comm& world, const std::string& dir) {
  const int p = world.size();
  int passed = 0, failed = 0;
  auto check = [&](const std::string& name, const std::function<std::string()>& body) {
    std::string error;
    try {
      error = body();
    } catch (const std::exception& e) {
      error = std::string("threw: ") + e.what();
    }
    if (!error.empty()) std::fprintf(stderr, "[rank %d] FAIL %s: %s\n", world.rank(), name.c_str(), error.c_str());
    double failures = error.empty() ? 0 : 1;
    world.control().all_reduce_sum(&failures, 1);
    (failures == 0 ? passed : failed) += 1;
    if (world.rank() == 0) std::printf("%s %s\n", failures == 0 ? "[PASS]" : "[FAIL]", name.c_str());
  };
  const Split even{false, false}, other{true, true};

  check("save three steps, keep_last=2", [&] {
    for (int64_t step : {10, 20, 30}) {
      Holding h(world, even);
      h.fill(step);
      save_checkpoint(world, dir, state_at(step, p), h.slices, 2);
    }
    const std::vector<int64_t> steps = committed_steps(dir);
    return steps == std::vector<int64_t>{20, 30} ? "" : "committed steps are not {20, 30}";
  });
  check("load onto reversed ranks with other boundaries", [&] { return load_and_compare(world, dir, other, 30); });
  check("model.h5 reads whole tensors", [&] { return whole_tensors_from_model_file(world, dir, 30); });
  check("load onto a 2-rank and a 1-rank group", [&] {
    std::unique_ptr<Comm> group = world.split(world.rank() < 2 ? 0 : 1, world.rank(), "group");
    return load_and_compare(*group, dir, other, 30);
  });
  check("corrupt shard: every rank falls back to step 20", [&] {
    if (world.rank() == 0) {
      std::fstream f(fs::path(dir) / "step-00000030" / "shard-00001.h5",
                     std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(2000);
      f.put('\x5a');
    }
    world.control().barrier();
    return load_and_compare(world, dir, even, 20);
  });
  check("bad request on one rank throws on every rank", [&] {
    Holding h(world, even);
    if (world.rank() == p - 1) h.slices[0].global_shape = {10, 4};
    return expect_error_everywhere([&] { load_checkpoint(world, dir, std::nullopt, h.slices); }, "global shape");
  });
  check("rows held by no rank are refused before writing", [&] {
    Holding h(world, even);
    if (world.rank() == p - 1) h.slices.erase(h.slices.begin());
    const std::string error = expect_error_everywhere(
        [&] { save_checkpoint(world, dir, state_at(40, p), h.slices, 2); }, "are held by no rank");
    return error.empty() && fs::exists(fs::path(dir) / "step-00000040.partial") ? "a partial directory was created"
                                                                                : error;
  });

  if (world.rank() == 0) std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace flywheel

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int code = 1;
  try {
    FW_CHECK(argc == 2, "usage: ckpt_multi_rank <work dir>");
    std::unique_ptr<flywheel::Comm> world = flywheel::make_mpi_world_comm();
    flywheel::configure_logging(world->rank(), flywheel::LogLevel::kInfo);
    const std::string dir = std::filesystem::path(argv[1]) / "run";
    if (world->rank() == 0) {
      std::filesystem::remove_all(argv[1]);
      std::filesystem::create_directories(argv[1]);
    }
    world->control().barrier();
    code = flywheel::run(*world, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ckpt_multi_rank: error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}
