// Hostile and broken safetensors files: each is an InputError that names the file, the tensor where
// there is one, and what is wrong; and a fuzz loop of byte flips and truncations of a valid file,
// where the only requirement is "an Error or a valid result, never a crash".
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "ckpt/safetensors.h"
#include "safetensors_test_files.h"
#include "test_util.h"

namespace flywheel {
namespace {
namespace st = safetensors;
using testing::TempDir;

using testing::le64;
using testing::put;
using testing::raw_file;

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  std::string out = "\"";  // appends, not "literal" + string: GCC 12 warns falsely on that (-Wrestrict)
  out += name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
  return out;
}

// {a,b,...}
std::string obj(std::initializer_list<std::string> entries) {
  std::string out = "{";
  for (const std::string& e : entries) out += (out.size() > 1 ? "," : "") + e;
  return out + "}";
}

struct Case {
  const char* what;
  std::string bytes;
  std::string expect;  // a regex the message must match
};

std::vector<Case> hostile_cases() {
  const std::string w8 = entry("w", "F32", "[2]", "[0,8]");
  const std::string buf8(8, '\x11');
  return {
      {"truncated to 5 bytes", std::string("\x10\0\0\0\0", 5), "is 5 bytes: too short for the 8-byte header length"},
      {"N past the end", le64(1000) + "{}", "header length 1000 runs past the end of the 10-byte file"},
      {"N over 100 MB", le64(200'000'000) + "{}", "header length 200000000 exceeds the limit of 100000000"},
      {"N = 0", le64(0) + buf8, "header length is 0"},
      {"header not JSON", raw_file("{\"w\": nope}", ""), "header is not valid JSON"},
      {"header not UTF-8", raw_file("{\"w\xff\":1}", ""), "header is not valid UTF-8 \\(byte 3"},
      {"overlong UTF-8", raw_file("{\"\xc0\xaf\":1}", ""), "not valid UTF-8"},
      {"header an array", raw_file("[1,2]", ""), "header must be a JSON object, not array"},
      {"duplicate key", raw_file(obj({w8, w8}), buf8), "header has the key \"w\" twice"},
      {"duplicate inner key", raw_file(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", buf8),
       "header has the key \"dtype\" twice"},
      {"deep nesting", raw_file(std::string(5000, '[') + std::string(5000, ']'), ""), "nests deeper than 8 levels"},
      {"offsets overlap", raw_file(obj({w8, entry("v", "F32", "[2]", "[4,12]")}), buf8 + "1234"),
       "tensor 'v': data_offsets \\[4, 12\\] overlap tensor 'w' \\[0, 8\\]"},
      {"offsets with a gap", raw_file(obj({entry("w", "F32", "[1]", "[4,8]")}), buf8),
       "tensor 'w': data_offsets \\[4, 8\\] leave a gap of 4 bytes after the header"},
      {"offsets out of range", raw_file(obj({entry("w", "F32", "[4]", "[0,16]")}), buf8),
       "tensor 'w': data_offsets \\[0, 16\\] run past the end of the 8-byte data buffer"},
      {"bytes after the last tensor", raw_file(obj({w8}), buf8 + "tail"), "4 bytes belong to no tensor"},
      {"offsets not matching the shape", raw_file(obj({entry("w", "F32", "[3]", "[0,8]")}), buf8),
       "tensor 'w': data_offsets \\[0,8\\] span 8 bytes, but F32 \\[3\\] needs 12"},
      {"offsets reversed", raw_file(obj({entry("w", "F32", "[0]", "[8,0]")}), buf8), "end before they begin"},
      {"negative shape", raw_file(obj({entry("w", "F32", "[-2]", "[0,8]")}), buf8),
       "tensor 'w': shape dimensions must be non-negative integers, found -2"},
      {"fractional shape", raw_file(obj({entry("w", "F32", "[2.0]", "[0,8]")}), buf8), "non-negative integers"},
      {"overflowing shape", raw_file(obj({entry("w", "F32", "[4294967296,4294967296]", "[0,8]")}), buf8),
       "tensor 'w': shape \\[4294967296,4294967296\\] overflows the element count"},
      {"byte count overflow", raw_file(obj({entry("w", "F64", "[4611686018427387904]", "[0,8]")}), buf8),
       "overflows the byte count"},
      {"unknown dtype", raw_file(obj({entry("w", "F33", "[2]", "[0,8]")}), buf8),
       "tensor 'w': unknown dtype \"F33\""},
      {"unsupported dtype", raw_file(obj({entry("w", "F8_E4M3", "[8]", "[0,8]")}), buf8),
       "tensor 'w': unsupported dtype F8_E4M3"},
      {"metadata not strings", raw_file(R"({"__metadata__":{"format":"pt","n":1}})", ""),
       "__metadata__ \"n\" must be a string, not number"},
      {"metadata not an object", raw_file(R"({"__metadata__":"pt"})", ""), "__metadata__ must be an object"},
      {"entry missing offsets", raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", buf8),
       "tensor 'w': missing \"data_offsets\""},
      {"entry with an unknown key", raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", buf8),
       "tensor 'w': unknown key \"x\""},
      {"offsets not a pair", raw_file(obj({entry("w", "F32", "[2]", "[0,8,9]")}), buf8),
       "data_offsets must be \\[begin, end\\]"},
      {"file truncated in the data", raw_file(obj({entry("w", "F32", "[4]", "[0,16]")}), buf8),
       "run past the end of the 8-byte data buffer \\(truncated file\\?\\)"},
  };
}

TEST(SafetensorsHostile, EveryBrokenFileIsAnErrorNamingTheProblem) {
  TempDir dir("st-hostile");
  const std::string path = dir.str() + "/bad.safetensors";
  for (const Case& c : hostile_cases()) {
    put(path, c.bytes);
    try {
      st::File file(path);
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_TRUE(std::regex_search(message, std::regex(c.expect))) << c.what << ":\n  " << message;
      EXPECT_EQ(message.rfind(path, 0), 0u) << c.what << ": does not start with the file: " << message;
    }
  }
}

TEST(SafetensorsHostile, MissingFileAndUnconvertibleDtype) {
  TempDir dir("st-hostile");
  const std::string path = dir.str() + "/i64.safetensors";
  EXPECT_NE(testing::error_message([&] { st::File f(path); }).find("cannot open " + path), std::string::npos);
  put(path, raw_file(obj({entry("ids", "I64", "[1]", "[0,8]")}), std::string(8, '\0')));
  const st::File file(path);
  EXPECT_EQ(file.tensor("ids").dtype, "I64");  // listed: a caller may read it raw
  EXPECT_EQ(file.read_rows_raw("ids", 0, 1).size(), 8u);
  EXPECT_NE(testing::error_message([&] { file.read_f32("ids"); }).find("tensor 'ids' has dtype I64, which does not"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] { file.tensor("nope"); }).find("has no tensor 'nope'"), std::string::npos);
}

// Random damage to a valid file: byte flips (mostly in the length and header, where parsing happens),
// truncations and appended garbage. Deterministic seed; the loop must finish with every case either
// refused with an Error or read whole.
TEST(SafetensorsHostile, FuzzedFilesNeverCrash) {
  TempDir dir("st-fuzz");
  const std::string valid = dir.str() + "/valid.safetensors", path = dir.str() + "/fuzz.safetensors";
  st::WriteOptions options;
  options.metadata = {{"note", "fuzz"}};
  st::write_file(valid, {{"a", {3, 4}, [] { return std::vector<float>(12, 1.5f); }},
                         {"b.bf16", {5}, [] { return std::vector<float>(5, -2.f); }},
                         {"c", {}, [] { return std::vector<float>{7.f}; }}},
                 options);
  std::ifstream in(valid, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937_64 rng(20240610);
  int refused = 0, read = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string bytes = original;
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      bytes.resize(rng() % bytes.size());
    } else if (kind == 1) {
      for (int i = 0, n = 1 + int(rng() % 4); i < n; ++i) bytes[rng() % bytes.size()] ^= char(1 << (rng() % 8));
    } else if (kind == 2) {
      const size_t header_end = std::min<size_t>(bytes.size(), 8 + original.size() / 2);
      bytes[rng() % header_end] = static_cast<char>(rng());
    } else {
      for (int i = 0, n = 1 + int(rng() % 16); i < n; ++i) bytes.push_back(static_cast<char>(rng()));
    }
    std::filesystem::remove(path);  // a fresh file: truncating one in place can make ext4 flush it on close
    put(path, bytes);
    try {
      const st::File file(path);
      for (const st::TensorInfo& t : file.tensors())
        if (t.dtype == "F32" || t.dtype == "BF16" || t.dtype == "F16") file.read_f32(t.name);
        else file.read_rows_raw(t.name, 0, t.rows());
      ++read;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_EQ(refused + read, 3000);
  EXPECT_GT(refused, 1000);  // the damage does reach the checks
}

}  // namespace
}  // namespace flywheel
