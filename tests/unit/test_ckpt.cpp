// Checkpoints (ckpt/checkpoint.h): bit-exact save/load of weights and Adam moments, the shard and
// model.h5 layout as any HDF5 reader (C API, h5py) sees it, loading onto a different row split,
// and the errors for mismatched requests. Crash recovery is in test_ckpt_recovery.cpp.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "ckpt/checkpoint.h"
#include "ckpt/h5_check.h"
#include "ckpt/h5_util.h"
#include "train/checkpointing.h"
#include "comm/local_comm.h"
#include "core/error.h"
#include "test_util.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

using testing::TempDir;

// Random bit patterns (NaNs and denormals included): equality below means bit equality.
void fill_random_bits(std::vector<float>& v, uint32_t seed) {
  std::mt19937 rng(seed);
  for (float& x : v) {
    const uint32_t bits = rng();
    std::memcpy(&x, &bits, sizeof(x));
  }
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> w, m, v;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t e : shape) n *= e;
    return n;
  }
  int64_t row_size() const { return numel() / shape[0]; }
};

// A few tensors of different ranks, including a single-row one.
std::vector<Tensor> fake_tensors(uint32_t seed) {
  std::vector<Tensor> tensors = {{"model.embed_tokens.weight", {11, 6}, {}, {}, {}},
                                 {"model.layers.0.mlp.up_proj.weight", {7, 6}, {}, {}, {}},
                                 {"model.norm.weight", {6}, {}, {}, {}},
                                 {"model.layers.0.mlp.experts.w", {3, 4, 5}, {}, {}, {}},
                                 {"lm_head.bias", {1, 9}, {}, {}, {}}};
  for (Tensor& t : tensors) {
    for (auto* buffer : {&t.w, &t.m, &t.v}) {
      buffer->resize(static_cast<size_t>(t.numel()));
      fill_random_bits(*buffer, seed++);
    }
  }
  return tensors;
}

// Rows [begin, end) of each tensor, pointing into `t` (or into zeroed `storage` when given).
TensorSlice slice_of(Tensor& t, int64_t begin, int64_t end) {
  const int64_t at = begin * t.row_size();
  return float_slice(t.name, t.shape, begin, end, t.w.data() + at, t.m.data() + at, t.v.data() + at);
}

std::vector<TensorSlice> whole(std::vector<Tensor>& tensors) {
  std::vector<TensorSlice> slices;
  for (Tensor& t : tensors) slices.push_back(slice_of(t, 0, t.shape[0]));
  return slices;
}

CheckpointState state_at(int64_t step) {
  CheckpointState state;
  state.step = step;
  state.seed = 0xfeedbeefcafef00dULL;
  state.shape_text = "[model]\nd_model = 6  # ü\n";
  state.mesh = {{"pp", 1}, {"fsdp", 1}, {"cp", 1}, {"ep", 1}, {"serve", 0}};
  state.extra = {{"data_cursor", 1234}, {"note", "résumé"}};
  return state;
}

using testing::error_message;

std::vector<float> read_whole_dataset(const std::string& file_path, const std::string& dataset_path, int64_t n) {
  H5Handle file = h5_open_file_readonly(file_path);
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(H5Dopen2(file.get(), dataset_path.c_str(), H5P_DEFAULT)));
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Dget_space(dataset.get())));
  EXPECT_EQ(H5Sget_simple_extent_npoints(space.get()), n) << dataset_path;
  std::vector<float> data(static_cast<size_t>(n));
  FW_H5_CHECK(H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()));
  return data;
}

TEST(Checkpoint, ParameterSetRoundTripIsBitExact) {
  TempDir dir;
  auto comm = make_local_comm();
  ParameterSet params;
  params.begin_unit("all", -1, false);
  params.add("model.embed_tokens.weight", {5, 4}, ParamInit::kNormal);
  params.add("model.norm.weight", {4}, ParamInit::kOnes);
  params.add("lm_head.weight", {3, 4}, ParamInit::kNormal);
  params.allocate();
  std::vector<float> values(params.values().begin(), params.values().end()), m(values.size()), v(values.size());
  fill_random_bits(values, 1);
  fill_random_bits(m, 2);
  fill_random_bits(v, 3);
  std::copy(values.begin(), values.end(), params.values().begin());
  save_checkpoint(*comm, dir.str(), state_at(7), whole_tensor_slices(params, m.data(), v.data()), 3);

  std::fill(params.values().begin(), params.values().end(), 0.0f);
  std::vector<float> m2(m.size()), v2(v.size());
  std::vector<TensorSlice> targets = whole_tensor_slices(params, m2.data(), v2.data());
  const LoadResult result = load_checkpoint(*comm, dir.str(), std::nullopt, targets);
  EXPECT_EQ(result.step, 7);
  EXPECT_EQ(result.world_size, 1);
  EXPECT_EQ(result.step_dir, (dir.path / "step-00000007").string());
  // Padding between tensors is not saved, so compare tensor by tensor.
  for (const ParamInfo& p : params.list()) {
    EXPECT_TRUE(same_bits(params.values().data() + p.offset, values.data() + p.offset, p.numel)) << p.name;
    EXPECT_TRUE(same_bits(m2.data() + p.offset, m.data() + p.offset, p.numel)) << p.name;
    EXPECT_TRUE(same_bits(v2.data() + p.offset, v.data() + p.offset, p.numel)) << p.name;
  }
}

TEST(Checkpoint, StateRoundTrips) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(10);
  save_checkpoint(*comm, dir.str(), state_at(42), whole(tensors), 0);
  std::vector<TensorSlice> none;
  const LoadResult result = load_checkpoint(*comm, dir.str(), std::nullopt, none);
  const CheckpointState expected = state_at(42);
  EXPECT_EQ(result.state.step, 42);
  EXPECT_EQ(result.state.seed, expected.seed);
  EXPECT_EQ(result.state.shape_text, expected.shape_text);
  EXPECT_EQ(result.state.mesh, expected.mesh);
  EXPECT_EQ(result.state.extra, expected.extra);
}

TEST(Checkpoint, ShardHoldsSlicesWithGlobalShapeAndOffset) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(20);
  std::vector<TensorSlice> slices = whole(tensors);
  slices.push_back(slice_of(tensors[0], 4, 4));  // zero rows: writes nothing, is no duplicate
  slices.back().adam_m = {};
  save_checkpoint(*comm, dir.str(), state_at(1), slices, 0);

  const std::string shard = (dir.path / "step-00000001" / "shard-00000.h5").string();
  H5Handle file = h5_open_file_readonly(shard);
  EXPECT_EQ(h5_read_attr_int64(file.get(), "rank"), 0);
  EXPECT_EQ(h5_read_attr_int64(file.get(), "world_size"), 1);
  for (const char* group : {"weight", "adam_m", "adam_v"}) {
    H5Handle g = h5_open_group(file.get(), group);
    EXPECT_EQ(h5_list_group(g.get()).size(), tensors.size()) << group;
  }
  const Tensor& t = tensors[3];
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(H5Dopen2(file.get(), ("/adam_v/" + t.name).c_str(), H5P_DEFAULT)));
  EXPECT_EQ(h5_read_attr_int64s(dataset.get(), "global_shape"), t.shape);
  EXPECT_EQ(h5_read_attr_int64s(dataset.get(), "offset"), (std::vector<int64_t>{0, 0, 0}));
  const std::vector<float> data = read_whole_dataset(shard, "/adam_v/" + t.name, t.numel());
  EXPECT_TRUE(same_bits(data.data(), t.v.data(), t.numel()));
}

TEST(Checkpoint, ModelFileStitchesWholeTensorsAfterTheDirectoryMoves) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(30);
  save_checkpoint(*comm, dir.str(), state_at(3), whole(tensors), 0);
  // Source file names in the virtual datasets are relative: a moved step directory still reads.
  const fs::path moved = dir.path / "elsewhere" / "copy-of-step-3";
  fs::create_directories(moved.parent_path());
  fs::rename(dir.path / "step-00000003", moved);
  const std::string model = (moved / "model.h5").string();
  for (const Tensor& t : tensors) {
    EXPECT_TRUE(same_bits(read_whole_dataset(model, "/weight/" + t.name, t.numel()).data(), t.w.data(), t.numel()))
        << t.name;
    EXPECT_TRUE(same_bits(read_whole_dataset(model, "/adam_m/" + t.name, t.numel()).data(), t.m.data(), t.numel()))
        << t.name;
    EXPECT_TRUE(same_bits(read_whole_dataset(model, "/adam_v/" + t.name, t.numel()).data(), t.v.data(), t.numel()))
        << t.name;
  }
}

// The h5py recipes of docs/checkpoint-format.md, run by Debian's python3 from another directory.
TEST(Checkpoint, ModelFileAndShardsReadWithH5py) {
  if (std::system("/usr/bin/python3 -c 'import h5py, numpy' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with h5py and numpy is not available";
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(40);
  save_checkpoint(*comm, dir.str(), state_at(9), whole(tensors), 0);
  const fs::path script = dir.path / "read.py";
  std::ofstream(script) << R"(import glob, os, sys
import h5py, numpy as np
step_dir, out = sys.argv[1], sys.argv[2]
with h5py.File(os.path.join(step_dir, "state.h5"), "r") as f:
    assert int(f.attrs["step"]) == 9 and int(f.attrs["world_size"]) == 1, dict(f.attrs)
# Whole tensors through the virtual datasets of model.h5.
with h5py.File(os.path.join(step_dir, "model.h5"), "r") as f:
    whole = {name: f["weight"][name][...] for name in sorted(f["weight"])}
# The same tensors stitched from the shards' global_shape/offset attributes.
stitched = {}
for path in sorted(glob.glob(os.path.join(step_dir, "shard-*.h5"))):
    with h5py.File(path, "r") as f:
        for name, ds in f["weight"].items():
            t = stitched.setdefault(name, np.empty(tuple(ds.attrs["global_shape"]), np.float32))
            r0 = int(ds.attrs["offset"][0])
            t[r0:r0 + ds.shape[0]] = ds[...]
assert sorted(whole) == sorted(stitched)
for name in whole:
    assert whole[name].dtype == np.float32
    assert np.array_equal(whole[name].view(np.uint32), stitched[name].view(np.uint32)), name
with open(out, "wb") as f:
    for name in sorted(whole):
        f.write(whole[name].tobytes())
)";
  const fs::path out = dir.path / "weights.bin";
  const std::string command = "cd / && /usr/bin/python3 " + script.string() + " " +
                              (dir.path / "step-00000009").string() + " " + out.string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::vector<const Tensor*> by_name;
  for (const Tensor& t : tensors) by_name.push_back(&t);
  std::sort(by_name.begin(), by_name.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  std::ifstream in(out, std::ios::binary);
  for (const Tensor* t : by_name) {
    std::vector<float> data(static_cast<size_t>(t->numel()));
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
    EXPECT_TRUE(in && same_bits(data.data(), t->w.data(), t->numel())) << t->name;
  }
}

TEST(Checkpoint, LoadsIntoADifferentRowSplit) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(50);
  save_checkpoint(*comm, dir.str(), state_at(4), whole(tensors), 0);
  // Two "ranks": rows [0, k) and [k, n) of every tensor (k = 0 for one-row tensors: an empty side).
  std::vector<Tensor> loaded = tensors;
  for (Tensor& t : loaded)
    for (auto* buffer : {&t.w, &t.m, &t.v}) std::fill(buffer->begin(), buffer->end(), 0.0f);
  for (int part = 0; part < 2; ++part) {
    std::vector<TensorSlice> slices;
    for (Tensor& t : loaded) {
      const int64_t k = t.shape[0] / 2;
      slices.push_back(part == 0 ? slice_of(t, 0, k) : slice_of(t, k, t.shape[0]));
    }
    EXPECT_EQ(load_checkpoint(*comm, dir.str(), std::nullopt, slices).step, 4);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_TRUE(same_bits(loaded[i].w.data(), tensors[i].w.data(), tensors[i].numel())) << tensors[i].name;
    EXPECT_TRUE(same_bits(loaded[i].m.data(), tensors[i].m.data(), tensors[i].numel())) << tensors[i].name;
    EXPECT_TRUE(same_bits(loaded[i].v.data(), tensors[i].v.data(), tensors[i].numel())) << tensors[i].name;
  }
}

TEST(Checkpoint, ShapeMismatchNamesTheTensorAndBothShapes) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(60);
  save_checkpoint(*comm, dir.str(), state_at(2), whole(tensors), 0);
  std::vector<TensorSlice> slices = whole(tensors);
  slices[1].global_shape = {7, 5};
  const std::string message = error_message([&] { load_checkpoint(*comm, dir.str(), std::nullopt, slices); });
  EXPECT_NE(message.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[7, 6]"), std::string::npos) << message;
  EXPECT_NE(message.find("[7, 5]"), std::string::npos) << message;

  std::vector<TensorSlice> unknown = {slices[0]};
  unknown[0].name = "model.layers.9.nothing";
  EXPECT_NE(
      error_message([&] { load_checkpoint(*comm, dir.str(), std::nullopt, unknown); }).find("is not in checkpoint"),
      std::string::npos);
}

TEST(Checkpoint, SaveRefusesRowsNotCoveredExactlyOnce) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<Tensor> tensors = fake_tensors(70);
  std::vector<TensorSlice> slices = whole(tensors);
  slices[0].row_end = 5;  // rows [5, 11) of the embedding are held by no rank
  const std::string message = error_message([&] { save_checkpoint(*comm, dir.str(), state_at(1), slices, 0); });
  EXPECT_NE(message.find("/weight/model.embed_tokens.weight: rows [5, 11) are held by no rank"), std::string::npos)
      << message;
  slices = whole(tensors);
  slices.push_back(slices[1]);  // the same rows twice on one rank
  EXPECT_NE(error_message([&] { save_checkpoint(*comm, dir.str(), state_at(1), slices, 0); }).find("passed twice"),
            std::string::npos);
  // Refused before anything was written.
  EXPECT_TRUE(committed_steps(dir.str()).empty());
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(CheckpointH5Check, NamesFileLineCallAndHdf5MessageWithoutStderrNoise) {
  h5_silence_error_printing();
  ::testing::internal::CaptureStderr();
  const std::string message =
      error_message([] { FW_H5_CHECK(H5Fopen("/nonexistent-dir/x.h5", H5F_ACC_RDONLY, H5P_DEFAULT)); });
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(message.find("test_ckpt.cpp:"), std::string::npos) << message;
  EXPECT_NE(message.find("H5Fopen(\"/nonexistent-dir/x.h5\""), std::string::npos) << message;
  EXPECT_NE(message.find("unable to open file"), std::string::npos) << message;
  EXPECT_EQ(printed, "");
}

TEST(CheckpointLocalComm, CollectivesAreLocalCopies) {
  auto comm = make_local_comm("test");
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->name(), "test");
  std::vector<float> in = {1, 2, 3}, out(3);
  comm->all_gather(in.data(), 3, out.data());
  EXPECT_EQ(out, in);
  float y = 2.5f;
  comm->all_reduce(&y, 1, DType::kF32, ReduceOp::kSum);
  EXPECT_EQ(y, 2.5f);
  double x = 2.5;
  comm->control().all_reduce_sum(&x, 1);
  EXPECT_EQ(x, 2.5);
  int64_t value = 9;
  comm->broadcast(&value, 1, DType::kI64, 0);
  comm->control().broadcast(&value, sizeof(value), 0);
  EXPECT_EQ(value, 9);
  EXPECT_THROW(comm->broadcast(&value, 1, DType::kI64, 1), Error);
  EXPECT_THROW(comm->control().broadcast(&value, sizeof(value), 1), Error);
  EXPECT_THROW(comm->send(in.data(), 3, 1, 0), Error);
  EXPECT_THROW(comm->control().send(in.data(), 12, 1, 0), Error);
  EXPECT_FALSE(comm->control().probe(ControlChannel::kAnySource, ControlChannel::kAnyTag));
  EXPECT_EQ(comm->split(-1, 0, "none"), nullptr);
  EXPECT_EQ(comm->split(0, 0, "sub")->size(), 1);
}

}  // namespace
}  // namespace flywheel
