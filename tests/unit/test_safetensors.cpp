// The safetensors library (ckpt/safetensors.h): round trips, row-range reads and the bytes they
// read, sharded models, and hostile files. Files under test are written here byte by byte (raw_file),
// not by our writer, so the reader is checked against the format, not against itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <map>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "ckpt/safetensors.h"
#include "ckpt/safetensors_index.h"
#include "core/bf16.h"
#include "safetensors_test_files.h"
#include "test_util.h"

namespace flywheel {
namespace {
namespace st = safetensors;
using testing::TempDir;
using testing::error_message;

using testing::le64;
using testing::put;
using testing::raw_file;

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

st::Source source(const std::string& name, std::vector<int64_t> shape, std::vector<float> values) {
  return {name, std::move(shape), [values] { return values; }};
}

// bf16 by its definition, written independently of core/bf16.h: the nearest bf16 to x, ties to the
// even one, computed from the value of the dropped half.
uint16_t bf16_reference(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t upper = bits >> 16, dropped = bits & 0xffff;
  const bool up = dropped > 0x8000 || (dropped == 0x8000 && (upper & 1));
  return static_cast<uint16_t>(upper + (up ? 1 : 0));
}

TEST(Safetensors, F32RoundTripWithMetadataAndPadding) {
  TempDir dir("st");
  const std::string path = dir.str() + "/m.safetensors";
  const std::vector<float> a = random_values(6 * 5, 1), b = random_values(7, 2);
  st::WriteOptions options;
  options.metadata = {{"producer", "test"}};
  st::write_file(path, {source("z.weight", {6, 5}, a), source("a.bias", {7}, b), source("s", {}, {2.5f})}, options);
  const st::File file(path);
  EXPECT_EQ(file.header_bytes() % 8, 0u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("producer"), "test");
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.tensor("a.bias").begin, 0u);  // data in sorted-name order
  EXPECT_EQ(file.tensor("s").begin, 7u * 4);
  const Tensor ra = file.read_f32("z.weight");
  EXPECT_EQ(ra.shape(), (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(std::memcmp(ra.data<float>(), a.data(), a.size() * 4), 0);
  EXPECT_EQ(std::memcmp(file.read_f32("a.bias").data<float>(), b.data(), b.size() * 4), 0);
  const Tensor scalar = file.read_f32("s");
  EXPECT_EQ(scalar.rank(), 0u);
  EXPECT_EQ(scalar.data<float>()[0], 2.5f);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Safetensors, Bf16WriteIsRoundToNearestEvenBitForBit) {
  TempDir dir("st");
  std::vector<float> values = random_values(4000, 3);
  for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x7f7fffffu, 0x00000001u, 0x80000000u,
                        0x7f800000u, 0xff800000u, 0x7fc00001u, 0x7f800001u, 0x007fffffu})
    values.push_back(fp32_from_bits(bits));  // ties both ways, the largest float, denormals, -0, Inf, NaNs
  const std::string path = dir.str() + "/bf16.safetensors";
  st::WriteOptions options;
  options.dtype = DType::kBF16;
  st::write_file(path, {source("w", {int64_t(values.size())}, values)}, options);
  const st::File file(path);
  EXPECT_EQ(file.tensor("w").dtype, "BF16");
  const std::vector<unsigned char> raw = file.read_rows_raw("w", 0, int64_t(values.size()));
  const Tensor widened = file.read_f32("w");
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t got;
    std::memcpy(&got, raw.data() + 2 * i, 2);
    ASSERT_EQ(got, bf16_reference(values[i])) << "value " << i << " = " << values[i];
    const float back = widened.data<float>()[i];
    if (std::isnan(values[i])) EXPECT_TRUE(std::isnan(back));
    else EXPECT_EQ(fp32_bits(back), uint32_t(got) << 16);
  }
}

TEST(Safetensors, F16ReadsExactly) {
  TempDir dir("st");
  const std::vector<uint16_t> bits = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555};
  const std::string header = R"({"h":{"dtype":"F16","shape":[2,5],"data_offsets":[0,20]}})";
  put(dir.str() + "/f16.safetensors", raw_file(header, bytes_of(bits)));
  const Tensor t = st::File(dir.str() + "/f16.safetensors").read_f32("h");
  for (size_t i = 0; i < bits.size(); ++i) {
    const int e = (bits[i] >> 10) & 0x1f, m = bits[i] & 0x3ff;
    const double sign = bits[i] & 0x8000 ? -1 : 1;
    const double expect = e == 31  ? sign * INFINITY
                          : e == 0 ? sign * std::ldexp(m, -24)
                                   : sign * std::ldexp(1024 + m, e - 25);
    EXPECT_EQ(double(t.data<float>()[i]), expect) << "half 0x" << std::hex << bits[i];
  }
  EXPECT_TRUE(std::signbit(t.data<float>()[6]));
}

TEST(Safetensors, RowRangesReadOnlyTheirBytes) {
  TempDir dir("st");
  const std::string path = dir.str() + "/rows.safetensors";
  const std::vector<float> values = random_values(64 * 24, 4);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    st::WriteOptions options;
    options.dtype = dtype;
    st::write_file(path, {source("a", {8}, random_values(8, 5)), source("w", {64, 4, 6}, values)}, options);
    const st::File file(path);
    const uint64_t element = dtype_bytes(dtype);
    const Tensor rows = file.read_rows_f32("w", 8, 16);  // 1/8 of the rows, as an fsdp8 rank reads
    EXPECT_EQ(rows.shape(), (std::vector<int64_t>{8, 4, 6}));
    EXPECT_EQ(file.bytes_read(), 8u * 24 * element);
    for (int64_t i = 0; i < rows.numel(); ++i) {
      const float expect = dtype == DType::kF32 ? values[8 * 24 + i] : round_to_bf16(values[8 * 24 + i]);
      ASSERT_EQ(rows.data<float>()[i], expect) << dtype_name(dtype) << " element " << i;
    }
    EXPECT_EQ(file.read_rows_f32("w", 64, 64).numel(), 0);
    EXPECT_EQ(file.bytes_read(), 8u * 24 * element);
    file.read_f32("w");
    EXPECT_EQ(file.bytes_read(), 9u * 64 * 24 * element / 8);
  }
}

// More than one 64Ki-element chunk (the reader widens chunks on several threads), with a partial
// last chunk and a row range that starts and ends inside chunks.
TEST(Safetensors, LargeBf16AndF16ReadsSpanChunks) {
  TempDir dir("st");
  const std::string path = dir.str() + "/large.safetensors";
  const int64_t rows = 1000, cols = 331;  // 331,000 elements: 5 full chunks and a partial one
  const std::vector<float> values = random_values(static_cast<size_t>(rows * cols), 9);
  std::vector<uint16_t> bf16(values.size()), f16(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    bf16[i] = bf16_reference(values[i]);
    f16[i] = static_cast<uint16_t>(i * 2654435761u >> 17);  // any bit pattern: every half converts exactly
  }
  const std::string shape = "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
  const uint64_t half = values.size() * 2;
  const std::string header = R"({"b": {"dtype": "BF16", "shape": )" + shape + R"(, "data_offsets": [0, )" +
                             std::to_string(half) + R"(]}, "h": {"dtype": "F16", "shape": )" + shape +
                             R"(, "data_offsets": [)" + std::to_string(half) + ", " + std::to_string(2 * half) +
                             "]}}";
  put(path, raw_file(header, bytes_of(bf16) + bytes_of(f16)));
  const st::File file(path);
  const Tensor whole = file.read_f32("b");
  for (size_t i = 0; i < values.size(); ++i)
    ASSERT_EQ(whole.data<float>()[i], fp32_from_bf16_bits(bf16[i])) << "element " << i;
  const Tensor part = file.read_rows_f32("h", 123, 877);
  for (int64_t i = 0; i < part.numel(); ++i) {
    const float expect = fp32_from_f16_bits(f16[static_cast<size_t>(123 * cols + i)]);
    const float got = part.data<float>()[i];
    ASSERT_TRUE(got == expect || (std::isnan(got) && std::isnan(expect))) << "element " << i;
  }
  EXPECT_EQ(file.bytes_read(), half + static_cast<uint64_t>(877 - 123) * cols * 2);
  // Into caller memory that is not 32-byte aligned (the widening's streaming stores start aligned).
  std::vector<float> unaligned(static_cast<size_t>(7 * cols) + 3, -1.0f);
  file.read_rows_into("b", 500, 507, unaligned.data() + 1);
  EXPECT_EQ(unaligned[0], -1.0f);
  for (int64_t i = 0; i < 7 * cols; ++i)
    ASSERT_EQ(unaligned[static_cast<size_t>(i) + 1], fp32_from_bf16_bits(bf16[static_cast<size_t>(500 * cols + i)]))
        << "element " << i;
  EXPECT_EQ(unaligned[static_cast<size_t>(7 * cols) + 1], -1.0f);
}

TEST(Safetensors, ShardedModelWithIndex) {
  TempDir dir("st");
  std::vector<st::Source> sources;
  std::map<std::string, std::vector<float>> values;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "layers." + std::to_string(i) + ".weight";
    values[name] = random_values(100, 10 + i);
    sources.push_back(source(name, {10, 10}, values[name]));
  }
  const st::ModelWrite written = st::write_model(dir.str(), sources, {}, 900);  // 400 bytes each: 2 per shard
  ASSERT_EQ(written.files.size(), 4u);
  EXPECT_EQ(written.tensor_bytes, 2000u);
  EXPECT_EQ(written.files[0], dir.str() + "/model-00001-of-00003.safetensors");
  EXPECT_EQ(written.files[2], dir.str() + "/model-00003-of-00003.safetensors");
  std::ifstream index_file(dir.str() + "/model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(index_file);
  EXPECT_EQ(index["metadata"]["total_size"], 2000);
  EXPECT_EQ(index["weight_map"]["layers.4.weight"], "model-00003-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layers.1.weight"], "model-00001-of-00003.safetensors");

  const st::Model model(dir.str());
  EXPECT_EQ(model.files().size(), 3u);
  EXPECT_EQ(model.names().size(), 5u);
  for (const auto& [name, v] : values)
    EXPECT_EQ(std::memcmp(model.read_rows_f32(name, 0, 10).data<float>(), v.data(), 400), 0) << name;
  EXPECT_EQ(model.bytes_read(), 2000u);
  EXPECT_EQ(model.file_of("layers.2.weight").path(), dir.str() + "/model-00002-of-00003.safetensors");

  // Under the limit: one model.safetensors, and the stale index is gone.
  const st::ModelWrite single = st::write_model(dir.str(), sources, {}, 0);
  ASSERT_EQ(single.files.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir.str() + "/model.safetensors.index.json"));
  EXPECT_EQ(st::Model(dir.str()).files().size(), 1u);
}

std::string tensor_header(const std::string& name, const std::string& dtype, const std::string& shape,
                          uint64_t begin, uint64_t end) {
  std::string out = "\"";  // appends, not "literal" + string: GCC 12 warns falsely on that (-Wrestrict)
  out += name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[";
  return out + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

TEST(Safetensors, BadIndexesAreErrorsNamingThem) {
  TempDir dir("st");
  const std::string d = dir.str();
  std::string a = "{", b = "{";
  a += tensor_header("x", "F32", "[2]", 0, 8) + "}";
  b += tensor_header("y", "F32", "[1]", 0, 4) + "," + tensor_header("x", "F32", "[1]", 4, 8) + "}";
  put(d + "/a.safetensors", raw_file(a, std::string(8, '\0')));
  put(d + "/b.safetensors", raw_file(b, std::string(8, '\0')));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"weight_map":{"x":"missing.safetensors"}})", "tensor 'x' is in missing.safetensors, which does not exist"},
      {R"({"weight_map":{"x":"a.safetensors","z":"a.safetensors"}})", "puts tensor 'z' in .*a.safetensors, which has"},
      {R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})", "tensor 'x' is in both"},
      {R"({"weight_map":{"y":"b.safetensors"}})", "holds tensor 'x', which weight_map does not list"},
      {R"({"weight_map":{"x":"../a.safetensors"}})", "is not a file name in"},
      {R"({"weight_map":["x"]})", "\"weight_map\" must be an object"},
      {R"({"metadata":{"total_size":"big"},"weight_map":{}})", "total_size must be a number"},
      {R"({"weight_map":)", "not valid JSON"},
  };
  for (const auto& [text, expect] : cases) {
    put(d + "/model.safetensors.index.json", text);
    const std::string message = error_message([&] { st::Model model(d); });
    EXPECT_TRUE(std::regex_search(message, std::regex(expect))) << text << "\n -> " << message;
    EXPECT_NE(message.find("model.safetensors.index.json"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace flywheel
