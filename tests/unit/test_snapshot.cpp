// Weight snapshots and hot-loading (serve/snapshot_*.h, docs/hot-load.md): bit-exact full + delta
// round trips in fp32 and bf16, delta size under small AdamW-like updates, every fallback path
// (corrupt, truncated, missing, wrong base, checksum after apply), fresh replicas, retention, and
// the ledger (fields as tools/ckpt/ledger.cpp reads them; concurrent appends).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "core/error.h"
#include "core/bf16.h"
#include "serve/ledger.h"
#include "serve/snapshot_loader.h"
#include "serve/snapshot_publisher.h"

#include "test_util.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

using testing::TempDir;

std::string snapshot_path(const TempDir& dir, int64_t step, SnapshotKind kind) {
  return (dir.path / snapshot_file_name(step, kind)).string();
}

// A small model: the first tensor spans several 1 MiB frames in both dtypes (563200 elements). A
// trainer holds fp32; a replica holds its weights in the serve dtype (bf16: 2 bytes each).
struct Model {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"model.embed_tokens.weight", {1100, 512}},
      {"model.layers.0.mlp.up_proj.weight", {96, 512}},
      {"model.layers.0.self_attn.q_proj.weight", {4, 8, 16}},
      {"model.norm.weight", {512}}};
  DType dtype;
  std::vector<std::vector<uint8_t>> bytes;  // each tensor's elements in `dtype`

  explicit Model(uint32_t seed, bool zero = false, DType storage = DType::kF32) : dtype(storage) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (size_t t = 0; t < shapes.size(); ++t) {
      bytes.emplace_back(static_cast<size_t>(shape_numel(shapes[t].second)) * dtype_bytes(dtype), 0);
      if (!zero)
        for (int64_t i = 0; i < numel(t); ++i) set(t, i, normal(rng));
    }
  }
  int64_t numel(size_t t) const { return static_cast<int64_t>(bytes[t].size() / dtype_bytes(dtype)); }
  float at(size_t t, int64_t i) const {
    if (dtype == DType::kBF16) return to_fp32(reinterpret_cast<const BFloat16*>(bytes[t].data())[i]);
    return reinterpret_cast<const float*>(bytes[t].data())[i];
  }
  void set(size_t t, int64_t i, float value) {
    if (dtype == DType::kBF16)
      reinterpret_cast<BFloat16*>(bytes[t].data())[i] = to_bf16(value);
    else
      reinterpret_cast<float*>(bytes[t].data())[i] = value;
  }
  std::vector<NamedTensor> views() {
    std::vector<NamedTensor> v;
    for (size_t i = 0; i < shapes.size(); ++i)
      v.push_back({shapes[i].first, Tensor::view(bytes[i].data(), dtype, shapes[i].second)});
    return v;
  }
  // One AdamW-like step: |update| ~ lr (Adam's m / sqrt(v) is O(1)), plus decoupled weight decay.
  void step(float lr, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (size_t t = 0; t < bytes.size(); ++t)
      for (int64_t i = 0; i < numel(t); ++i) {
        const float x = at(t, i);
        set(t, i, x - lr * (std::clamp(normal(rng), -3.0f, 3.0f) + 0.1f * x));
      }
  }
};

// A replica's model for `dtype`: zero weights, stored as that replica stores them.
Model replica_for(ServeDtype dtype) { return Model(0, /*zero=*/true, storage_dtype(dtype)); }

// What a replica must hold for the trainer's weights: bit-identical fp32 / bf16-rounded values.
void expect_served(const Model& trainer, const Model& replica, ServeDtype dtype, const std::string& where) {
  ASSERT_EQ(replica.dtype, storage_dtype(dtype)) << where;
  for (size_t t = 0; t < trainer.bytes.size(); ++t)
    for (int64_t i = 0; i < trainer.numel(t); ++i) {
      const float want = dtype == ServeDtype::kFp32 ? trainer.at(t, i) : round_to_bf16(trainer.at(t, i));
      if (fp32_bits(replica.at(t, i)) != fp32_bits(want)) {
        FAIL() << where << ": tensor " << trainer.shapes[t].first << " element " << i << " is " << replica.at(t, i)
               << ", expected " << want;
      }
    }
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// Publishes steps [0, steps) (trainer updated before each publish except the first).
std::vector<Model> publish_steps(const std::string& dir, ServeDtype dtype, int steps, int64_t full_every,
                                 float lr = 1e-4f, int keep_full = 100) {
  SnapshotPublisher publisher(dir, dtype, full_every, keep_full);
  Model trainer(7);
  std::vector<Model> history;
  for (int s = 0; s < steps; ++s) {
    if (s > 0) trainer.step(lr, 100 + s);
    publisher.publish(s, trainer.views());
    history.push_back(trainer);
  }
  return history;
}

TEST(SnapshotBf16, RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(bf16_bits_from_fp32(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits_from_fp32(fp32_from_bits(0x3f808000)), 0x3f80);  // tie, kept part even: down
  EXPECT_EQ(bf16_bits_from_fp32(fp32_from_bits(0x3f818000)), 0x3f82);  // tie, kept part odd: up
  EXPECT_EQ(bf16_bits_from_fp32(fp32_from_bits(0x3f808001)), 0x3f81);  // above the tie: up
  EXPECT_EQ(bf16_bits_from_fp32(fp32_from_bits(0xbf807fff)), 0xbf80);  // below the tie: down
  EXPECT_EQ(bf16_bits_from_fp32(INFINITY), 0x7f80);
  EXPECT_EQ(bf16_bits_from_fp32(-INFINITY), 0xff80);
  EXPECT_EQ(bf16_bits_from_fp32(3.4e38f), 0x7f80);  // beyond bf16's largest finite value: +Inf
  EXPECT_TRUE(std::isnan(round_to_bf16(fp32_from_bits(0x7f800001))));  // payload only in the dropped bits
  EXPECT_TRUE(std::isnan(round_to_bf16(fp32_from_bits(0xffffffff))));
  EXPECT_TRUE(std::isnan(round_to_bf16(NAN)));
}

TEST(SnapshotFormat, ParseServeDtypeNamesValueAndAllowed) {
  EXPECT_EQ(parse_serve_dtype("fp32"), ServeDtype::kFp32);
  EXPECT_EQ(parse_serve_dtype("bf16"), ServeDtype::kBf16);
  try {
    parse_serve_dtype("fp16");
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"fp16\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fp32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
}

TEST(SnapshotFormat, BytePlanesRoundTrip) {
  std::vector<uint8_t> bytes(4 * 37), planes(bytes.size()), back(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + 7);
  for (int64_t item : {2, 4}) {
    split_byte_planes(bytes.data(), planes.data(), static_cast<int64_t>(bytes.size()) / item, item);
    EXPECT_EQ(planes[1], bytes[item]);  // plane 0 holds byte 0 of each element
    join_byte_planes(planes.data(), back.data(), static_cast<int64_t>(bytes.size()) / item, item);
    EXPECT_EQ(back, bytes);
  }
}

void round_trip(ServeDtype dtype) {
  TempDir dir;
  SnapshotPublisher publisher(dir.str(), dtype, /*full_every=*/4);
  SnapshotLoader loader(dir.str(), dtype);
  Model trainer(1), replica = replica_for(dtype);
  for (int64_t s = 0; s < 10; ++s) {
    if (s > 0) trainer.step(1e-4f, 10 + static_cast<uint32_t>(s));
    const PublishInfo pub = publisher.publish(s, trainer.views());
    EXPECT_EQ(pub.full, s % 4 == 0) << "step " << s;
    EXPECT_EQ(pub.base_step, s % 4 == 0 ? -1 : s - 1);
    EXPECT_TRUE(fs::exists(pub.path)) << pub.path;
    const LoadInfo got = loader.load(s, replica.views());
    EXPECT_EQ(got.step, s);
    EXPECT_FALSE(got.fell_back) << got.reason;
    EXPECT_EQ(got.applied_delta, !pub.full);
    EXPECT_EQ(loader.loaded_checksum(), pub.checksum);
    expect_served(trainer, replica, dtype, "step " + std::to_string(s));
  }
}

TEST(SnapshotRoundTrip, Fp32FullThenDeltasBitExact) { round_trip(ServeDtype::kFp32); }
TEST(SnapshotRoundTrip, Bf16FullThenDeltasEqualRoundedTrainerWeights) { round_trip(ServeDtype::kBf16); }

// One publish of a full then a delta after one AdamW-like step at lr (1e-5, and RL's 1e-6): the
// fraction of changed elements and the delta's size as a fraction of the full serve-dtype bytes.
// N(0, 0.02) weights: bf16's ulp near 0.02 is 2^-13 = 1.2e-4, so most bf16 values do not move; in
// fp32 (ulp 1.9e-9) all of them do, but only in the low mantissa bits.
TEST(SnapshotDeltaSize, SmallUpdatesGiveSmallBf16Deltas) {
  TempDir dir;
  struct Case {
    ServeDtype dtype;
    float lr;
    double max_changed, max_fraction;  // ~1.5x what was measured (docs/hot-load.md)
  };
  for (const Case c : {Case{ServeDtype::kBf16, 1e-5f, 0.30, 0.20}, Case{ServeDtype::kBf16, 1e-6f, 0.05, 0.05},
                       Case{ServeDtype::kFp32, 1e-5f, 1.0, 0.70}, Case{ServeDtype::kFp32, 1e-6f, 1.0, 0.65}}) {
    const std::string sub = (dir.path / (std::string(serve_dtype_name(c.dtype)) + std::to_string(c.lr))).string();
    SnapshotPublisher publisher(sub, c.dtype, 100);
    Model trainer(3);
    const PublishInfo full = publisher.publish(0, trainer.views());
    const Model before = trainer;
    trainer.step(c.lr, 5);
    const PublishInfo delta = publisher.publish(1, trainer.views());
    int64_t changed = 0, total = 0;
    for (size_t t = 0; t < trainer.bytes.size(); ++t)
      for (int64_t i = 0; i < trainer.numel(t); ++i, ++total)
        changed += c.dtype == ServeDtype::kBf16
                       ? bf16_bits_from_fp32(before.at(t, i)) != bf16_bits_from_fp32(trainer.at(t, i))
                       : fp32_bits(before.at(t, i)) != fp32_bits(trainer.at(t, i));
    const double changed_frac = static_cast<double>(changed) / static_cast<double>(total);
    const double size_frac = static_cast<double>(delta.file_bytes) / static_cast<double>(delta.full_bytes);
    std::printf("[ info     ] %s lr %.0e: %.2f%% of elements change; delta %llu bytes = %.4f of the full "
                "serve bytes (%llu; full file %llu)\n",
                serve_dtype_name(c.dtype), c.lr, 100.0 * changed_frac, static_cast<unsigned long long>(delta.file_bytes),
                size_frac, static_cast<unsigned long long>(delta.full_bytes),
                static_cast<unsigned long long>(full.file_bytes));
    EXPECT_FALSE(delta.full);
    EXPECT_LT(delta.file_bytes, full.file_bytes);
    EXPECT_LE(changed_frac, c.max_changed);
    EXPECT_LT(size_frac, c.max_fraction);
  }
}

// A LoRA run's delta: only a small tensor changes (the adapters), the big ones are frozen. Their chunks XOR to
// zero and are stored as zero frames (no bytes, nothing decompressed); a full snapshot's all-zero chunks too (a
// fresh adapter's B). The replica still ends bit-exact, through a delta and through a replay from the full.
TEST(SnapshotZeroFrames, UnchangedChunksCostNothingAndStillLoadExactly) {
  for (const ServeDtype dtype : {ServeDtype::kFp32, ServeDtype::kBf16}) {
    TempDir dir;
    SnapshotPublisher publisher(dir.str(), dtype, /*full_every=*/100);
    SnapshotLoader loader(dir.str(), dtype);
    Model trainer(4), replica = replica_for(dtype);
    for (int64_t i = 0; i < trainer.numel(1); ++i) trainer.set(1, i, 0.0f);  // up_proj: all zero
    const PublishInfo full = publisher.publish(0, trainer.views());
    {
      const SnapshotFile file(full.path);
      uint64_t zero = 0;
      for (uint64_t f = 0; f < file.frame_count(); ++f) zero += file.zero_frame(f);
      EXPECT_EQ(zero, 1u) << "the all-zero up_proj (96 x 512 elements) is one frame";
    }
    ASSERT_FALSE(loader.load(0, replica.views()).fell_back);
    for (int64_t s = 1; s <= 2; ++s) {
      for (int64_t i = 0; i < trainer.numel(2); ++i) trainer.set(2, i, trainer.at(2, i) + 0.01f * (s + 1));
      const PublishInfo delta = publisher.publish(s, trainer.views());
      ASSERT_FALSE(delta.full);
      const SnapshotFile file(delta.path);
      uint64_t zero = 0;
      for (uint64_t f = 0; f < file.frame_count(); ++f) zero += file.zero_frame(f);
      EXPECT_EQ(zero, file.frame_count() - 1) << "only q_proj's one frame changed";
      // Header, table, frame index and footer (~600 bytes), and at most the raw bytes of the 512 changed elements.
      EXPECT_LT(delta.file_bytes, 512u * serve_dtype_bytes(dtype) + 1024u) << "a delta of 512 changed elements";
      const LoadInfo got = loader.load(s, replica.views());
      EXPECT_FALSE(got.fell_back) << got.reason;
      EXPECT_TRUE(got.applied_delta);
      expect_served(trainer, replica, dtype, std::string(serve_dtype_name(dtype)) + " step " + std::to_string(s));
    }
    // The caller may say which tensors did not change (a LoRA run's frozen base): their frames are zero frames
    // without being read, and the result is the same.
    for (int64_t i = 0; i < trainer.numel(2); ++i) trainer.set(2, i, trainer.at(2, i) - 0.02f);
    const PublishInfo told = publisher.publish(3, trainer.views(), {true, true, false, true});
    const SnapshotFile told_file(told.path);
    uint64_t told_zero = 0;
    for (uint64_t f = 0; f < told_file.frame_count(); ++f) told_zero += told_file.zero_frame(f);
    EXPECT_EQ(told_zero, told_file.frame_count() - 1);
    EXPECT_FALSE(loader.load(3, replica.views()).fell_back);
    expect_served(trainer, replica, dtype, std::string(serve_dtype_name(dtype)) + " step 3 (unchanged flags)");
    Model fresh = replica_for(dtype);  // a fresh replica: the full, then every delta replayed
    SnapshotLoader fresh_loader(dir.str(), dtype);
    EXPECT_FALSE(fresh_loader.load(3, fresh.views()).fell_back);
    expect_served(trainer, fresh, dtype, std::string(serve_dtype_name(dtype)) + " fresh replica");
  }
}

TEST(SnapshotFallback, CorruptDeltaByteFallsBackAndNamesFile) {
  TempDir dir;
  const std::vector<Model> history = publish_steps(dir.str(), ServeDtype::kFp32, 4, 100);
  SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
  Model replica = replica_for(ServeDtype::kFp32);
  loader.load(1, replica.views());
  flip_byte(snapshot_path(dir, 2, SnapshotKind::kDelta), 500);
  const LoadInfo got = loader.load(2, replica.views());
  EXPECT_TRUE(got.fell_back);
  EXPECT_FALSE(got.applied_delta);
  EXPECT_NE(got.reason.find("step-00000002.delta"), std::string::npos) << got.reason;
  EXPECT_NE(got.reason.find("corrupt"), std::string::npos) << got.reason;
  EXPECT_EQ(got.step, 1);  // step 2 exists only as that delta: the intact chain ends at 1
  EXPECT_EQ(got.full_step, 0);
  EXPECT_EQ(got.deltas_replayed, 1);
  expect_served(history[1], replica, ServeDtype::kFp32, "after the fallback");
  // Step 3's delta is over step 2, which nobody can build: the replica stays at 1, and says so.
  const LoadInfo next = loader.load(3, replica.views());
  EXPECT_TRUE(next.fell_back);
  EXPECT_EQ(next.step, 1);
  EXPECT_NE(next.reason.find("not reached"), std::string::npos) << next.reason;
}

TEST(SnapshotFallback, MissedPublishReplaysFromFull) {
  TempDir dir;
  const std::vector<Model> history = publish_steps(dir.str(), ServeDtype::kBf16, 5, 100);
  SnapshotLoader loader(dir.str(), ServeDtype::kBf16);
  Model replica = replica_for(ServeDtype::kBf16);
  loader.load(1, replica.views());
  const LoadInfo got = loader.load(3, replica.views());  // missed step 2: step 3's base is 2
  EXPECT_TRUE(got.fell_back);
  EXPECT_NE(got.reason.find("over step 2 but the replica has step 1 loaded"), std::string::npos) << got.reason;
  EXPECT_EQ(got.step, 3);
  EXPECT_EQ(got.full_step, 0);
  EXPECT_EQ(got.deltas_replayed, 3);
  expect_served(history[3], replica, ServeDtype::kBf16, "after replay");
}

TEST(SnapshotFallback, TruncatedFilesAreSkipped) {
  TempDir dir;
  const std::vector<Model> history = publish_steps(dir.str(), ServeDtype::kFp32, 6, 4);  // fulls 0, 4
  const std::string delta2 = snapshot_path(dir, 2, SnapshotKind::kDelta), full4 = snapshot_path(dir, 4, SnapshotKind::kFull);
  fs::resize_file(full4, fs::file_size(full4) / 2);
  SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
  Model replica = replica_for(ServeDtype::kFp32);
  LoadInfo got = loader.load(5, replica.views());  // fresh: newest full <= 5 is the truncated one
  EXPECT_TRUE(got.fell_back);
  EXPECT_NE(got.reason.find("step-00000004.full"), std::string::npos) << got.reason;
  EXPECT_NE(got.reason.find("truncated"), std::string::npos) << got.reason;
  EXPECT_EQ(got.full_step, 0);
  EXPECT_EQ(got.step, 3);  // 1, 2, 3 replayed; 5 is over 4
  expect_served(history[3], replica, ServeDtype::kFp32, "truncated full");

  fs::resize_file(delta2, fs::file_size(delta2) - 3);
  SnapshotLoader fresh(dir.str(), ServeDtype::kFp32);
  got = fresh.load(3, replica.views());
  EXPECT_TRUE(got.fell_back);
  EXPECT_NE(got.reason.find("step-00000002.delta"), std::string::npos) << got.reason;
  EXPECT_EQ(got.step, 1);
  expect_served(history[1], replica, ServeDtype::kFp32, "truncated delta");
}

TEST(SnapshotFallback, MissingDeltaFallsBack) {
  TempDir dir;
  const std::vector<Model> history = publish_steps(dir.str(), ServeDtype::kFp32, 3, 100);
  SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
  Model replica = replica_for(ServeDtype::kFp32);
  loader.load(1, replica.views());
  fs::remove(snapshot_path(dir, 2, SnapshotKind::kDelta));
  const LoadInfo got = loader.load(2, replica.views());
  EXPECT_TRUE(got.fell_back);
  EXPECT_NE(got.reason.find("step-00000002.delta"), std::string::npos) << got.reason;
  EXPECT_EQ(got.step, 1);
  expect_served(history[1], replica, ServeDtype::kFp32, "missing delta");
}

TEST(SnapshotFallback, FreshReplicaLoadsNewestFullAndReplays) {
  TempDir dir;
  const std::vector<Model> history = publish_steps(dir.str(), ServeDtype::kBf16, 7, 4);  // fulls 0, 4
  SnapshotLoader loader(dir.str(), ServeDtype::kBf16);
  Model replica = replica_for(ServeDtype::kBf16);
  const LoadInfo got = loader.load(6, replica.views());
  EXPECT_FALSE(got.fell_back) << got.reason;
  EXPECT_TRUE(got.reason.empty());
  EXPECT_EQ(got.step, 6);
  EXPECT_EQ(got.full_step, 4);
  EXPECT_EQ(got.deltas_replayed, 2);
  EXPECT_EQ(got.bytes_read, fs::file_size(snapshot_path(dir, 4, SnapshotKind::kFull)) +
                                fs::file_size(snapshot_path(dir, 5, SnapshotKind::kDelta)) +
                                fs::file_size(snapshot_path(dir, 6, SnapshotKind::kDelta)));
  expect_served(history[6], replica, ServeDtype::kBf16, "fresh replica");
}

TEST(SnapshotFallback, ChecksumMismatchAfterApplyRestoresTensors) {
  TempDir dir;
  publish_steps(dir.str(), ServeDtype::kFp32, 3, 100);
  SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
  Model replica = replica_for(ServeDtype::kFp32);
  loader.load(1, replica.views());
  replica.set(1, 17, replica.at(1, 17) + 1.0f);  // the replica's weights drifted from what it loaded
  const Model before = replica;
  fs::remove(snapshot_path(dir, 0, SnapshotKind::kFull));  // no fallback possible: the load must throw
  try {
    loader.load(2, replica.views());
    FAIL() << "load without any full snapshot succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable full snapshot"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir.str()), std::string::npos) << e.what();
  }
  for (size_t t = 0; t < before.bytes.size(); ++t) EXPECT_EQ(before.bytes[t], replica.bytes[t]) << t;
}

TEST(SnapshotFallback, ChecksumMismatchAfterApplyFallsBack) {
  TempDir dir;
  const std::vector<Model> history = publish_steps(dir.str(), ServeDtype::kBf16, 3, 100);
  SnapshotLoader loader(dir.str(), ServeDtype::kBf16);
  Model replica = replica_for(ServeDtype::kBf16);
  loader.load(1, replica.views());
  replica.set(0, 12345, 1.0f);
  const LoadInfo got = loader.load(2, replica.views());
  EXPECT_TRUE(got.fell_back);
  EXPECT_NE(got.reason.find("checksum after applying"), std::string::npos) << got.reason;
  EXPECT_NE(got.reason.find("delta undone"), std::string::npos) << got.reason;
  EXPECT_EQ(got.step, 2);
  expect_served(history[2], replica, ServeDtype::kBf16, "after checksum fallback");
}

TEST(SnapshotFallback, TensorShapeMismatchIsAnError) {
  TempDir dir;
  publish_steps(dir.str(), ServeDtype::kFp32, 1, 100);
  Model replica = replica_for(ServeDtype::kFp32);
  replica.shapes[3].second = {256, 2};
  SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
  try {
    loader.load(0, replica.views());
    FAIL() << "shape mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight has shape [512]"), std::string::npos) << e.what();
  }
  EXPECT_EQ(loader.loaded_step(), -1);
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const SnapshotEntry& e : list_snapshots(dir)) names.push_back(fs::path(e.path).filename().string());
  return names;
}

TEST(SnapshotRetention, KeepsNewestFullsAndEveryDeltaAfterTheOldest) {
  TempDir dir;
  SnapshotPublisher publisher(dir.str(), ServeDtype::kFp32, /*full_every=*/3, /*keep_full=*/2);
  Model trainer(5);
  std::vector<Model> history;
  for (int s = 0; s < 11; ++s) {  // fulls 0, 3, 6, 9
    if (s > 0) trainer.step(1e-4f, 50 + s);
    publisher.publish(s, trainer.views());
    history.push_back(trainer);
  }
  const std::vector<std::string> want = {"step-00000006.full", "step-00000007.delta", "step-00000008.delta",
                                         "step-00000009.full", "step-00000010.delta"};
  EXPECT_EQ(names_in(dir.str()), want);
  for (int s = 6; s < 11; ++s) {  // every kept step is reachable by a fresh replica
    SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
    Model replica = replica_for(ServeDtype::kFp32);
    const LoadInfo got = loader.load(s, replica.views());
    EXPECT_FALSE(got.fell_back) << got.reason;
    expect_served(history[static_cast<size_t>(s)], replica, ServeDtype::kFp32, "kept step " + std::to_string(s));
  }
}

TEST(SnapshotRetention, ForceFullNextPublishesOneFull) {
  TempDir dir;
  SnapshotPublisher publisher(dir.str(), ServeDtype::kBf16, 100);
  Model trainer(4);
  EXPECT_TRUE(publisher.publish(0, trainer.views()).full);
  EXPECT_FALSE(publisher.publish(1, trainer.views()).full);
  publisher.force_full_next();
  EXPECT_TRUE(publisher.publish(2, trainer.views()).full);
  EXPECT_FALSE(publisher.publish(3, trainer.views()).full);  // only the next one
}

TEST(SnapshotRetention, RestartedTrainerRemovesAbandonedTimeline) {
  TempDir dir;
  publish_steps(dir.str(), ServeDtype::kFp32, 6, 100);  // old timeline: 0 full, 1..5 deltas
  SnapshotLoader loader(dir.str(), ServeDtype::kFp32);
  Model replica = replica_for(ServeDtype::kFp32);
  loader.load(5, replica.views());
  SnapshotPublisher restarted(dir.str(), ServeDtype::kFp32, 100);  // resumed from a checkpoint at step 2
  Model trainer(77);
  restarted.publish(3, trainer.views());
  trainer.step(1e-4f, 4);
  restarted.publish(4, trainer.views());
  const std::vector<std::string> want = {"step-00000000.full", "step-00000001.delta", "step-00000002.delta",
                                         "step-00000003.full", "step-00000004.delta"};
  EXPECT_EQ(names_in(dir.str()), want);
  const LoadInfo got = loader.load(4, replica.views());
  EXPECT_TRUE(got.fell_back);  // its step 5 is not step 4's base
  EXPECT_EQ(got.step, 4);
  EXPECT_EQ(got.full_step, 3);
  expect_served(trainer, replica, ServeDtype::kFp32, "new timeline");
}

// The rules tools/ckpt/ledger.cpp (parse_event) applies to every line.
void expect_ledger_line(const nlohmann::json& j) {
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j.contains("event") && j["event"].is_string() && !j["event"].get<std::string>().empty()) << j;
  ASSERT_TRUE(j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() >= 0) << j;
  if (j.contains("replica")) {
    EXPECT_TRUE(j["replica"].is_string() || (j["replica"].is_number_integer() && j["replica"].get<int64_t>() >= 0));
  }
  if (j.contains("ms")) {
    EXPECT_TRUE(j["ms"].is_number() && j["ms"].get<double>() >= 0) << j;
  }
  if (j.contains("bytes")) {
    EXPECT_TRUE(j["bytes"].is_number_integer() && j["bytes"].get<int64_t>() >= 0) << j;
  }
  if (j.contains("reason")) {
    EXPECT_TRUE(j["reason"].is_string()) << j;
  }
  ASSERT_TRUE(j.contains("time") && j["time"].is_string()) << j;
  EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << j;
}

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string text; std::getline(in, text);) lines.push_back(nlohmann::json::parse(text));
  return lines;
}

TEST(LedgerEvents, PublishLoadFallbackFailLinesParse) {
  TempDir dir;
  const std::string publish = (dir.path / "publish").string(), path = (dir.path / "ledger.jsonl").string();
  Ledger ledger(path);
  SnapshotPublisher publisher(publish, ServeDtype::kBf16, 100);
  SnapshotLoader loader(publish, ServeDtype::kBf16);
  Model trainer(2), replica = replica_for(ServeDtype::kBf16);
  for (int s = 0; s < 3; ++s) {
    if (s) trainer.step(1e-4f, s);
    ledger.append(ledger_event(publisher.publish(s, trainer.views())));
  }
  ledger.append(ledger_event(loader.load(0, replica.views()), 0));
  ledger.append(ledger_event(loader.load(2, replica.views()), 0));  // missed 1: falls back
  ledger.append(ledger_failure_event(9, 1, "no usable full snapshot"));
  const std::vector<nlohmann::json> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 6u);
  for (const auto& j : lines) expect_ledger_line(j);
  EXPECT_EQ(lines[0]["event"], "published");
  EXPECT_EQ(lines[0]["kind"], "full");
  EXPECT_EQ(lines[1]["kind"], "delta");
  EXPECT_EQ(lines[1]["base_step"], 0);
  EXPECT_EQ(lines[1]["checksum"].get<std::string>().size(), 16u);
  EXPECT_EQ(lines[3]["event"], "loaded");
  EXPECT_EQ(lines[3]["replica"], 0);
  EXPECT_EQ(lines[4]["event"], "fell_back");
  EXPECT_EQ(lines[4]["kind"], "full+deltas");
  EXPECT_NE(lines[4]["reason"].get<std::string>().find("step-00000002.delta"), std::string::npos) << lines[4];
  EXPECT_EQ(lines[5]["event"], "failed");
  EXPECT_THROW(ledger.append({{"event", "loaded"}}), Error);  // no step: the reader would refuse the line
  EXPECT_THROW(ledger.append({{"event", "loaded"}, {"step", -1}}), Error);
}

TEST(LedgerEvents, ConcurrentAppendsGiveWholeLines) {
  TempDir dir;
  const std::string path = (dir.path / "ledger.jsonl").string();
  constexpr int kThreads = 8, kEach = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Ledger ledger(path);  // one descriptor per thread, as separate processes would have
      for (int i = 0; i < kEach; ++i)
        ledger.append({{"event", "loaded"}, {"step", i}, {"replica", t}, {"reason", std::string(3000 + t, 'a' + t)}});
    });
  for (auto& th : threads) th.join();
  const std::vector<nlohmann::json> lines = read_lines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kEach));
  std::vector<int> per_replica(kThreads, 0);
  for (const auto& j : lines) {
    expect_ledger_line(j);
    const int r = j["replica"].get<int>();
    EXPECT_EQ(j["reason"].get<std::string>(), std::string(3000 + r, 'a' + r));
    EXPECT_EQ(j["step"].get<int>(), per_replica[r]++);  // one writer's lines stay in its order
  }
}

}  // namespace
}  // namespace flywheel
