// Hugging Face safetensors files (https://github.com/huggingface/safetensors, README "Format"): the one
// reader and writer of Flywheel, used by `flywheel-ckpt export` and by the Hugging Face import.
//
//   8 bytes   N, unsigned little-endian: the header's length
//   N bytes   UTF-8 JSON object {"__metadata__": {str: str}, name: {"dtype": "BF16", "shape": [...],
//             "data_offsets": [begin, end]}, ...}
//   the rest  the byte buffer: every tensor little-endian, row-major; offsets count from its first byte
//
// The reader trusts nothing in a file (docs/safetensors.md lists the checks and why): a hostile or
// truncated file is an InputError naming the file, the tensor and what is wrong, never a crash or a
// huge allocation. It reads only the byte ranges asked for (pread), so a rank that holds 1/8 of each
// tensor's rows reads about 1/8 of the file.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace flywheel::safetensors {

// The header may be at most this long: the limit of the reference reader (safetensors/src/tensor.rs),
// so a hostile N cannot make us allocate more.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Every dtype string of the format, and its element size in bytes (sub-byte F4 / F6 types: 0).
struct DTypeInfo {
  const char* name;
  uint64_t bytes;
  bool readable;  // convertible to fp32 by read_rows_f32 (F32, F16, BF16)
};
// nullptr when `name` is not a dtype of the format at all.
const DTypeInfo* find_dtype(const std::string& name);

struct TensorInfo {
  std::string name;
  std::string dtype;             // "BF16"
  uint64_t element_bytes = 0;    // 2 for BF16
  std::vector<int64_t> shape;    // {} for a scalar
  uint64_t begin = 0, end = 0;   // byte range in the buffer, [begin, end)

  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  uint64_t row_bytes() const;    // bytes of one row of dim 0 (the whole tensor for a scalar)
};

// One open safetensors file whose header passed every check. Thread-safe for reads.
class File {
 public:
  explicit File(std::string path);  // opens and validates; throws InputError
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&&) = delete;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  // Sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return find(name) != nullptr; }
  const TensorInfo* find(const std::string& name) const;
  // Throws InputError naming the file and the tensor when it is absent.
  const TensorInfo& tensor(const std::string& name) const;
  uint64_t header_bytes() const { return header_bytes_; }  // N
  uint64_t file_bytes() const { return file_bytes_; }

  // Rows [row_begin, row_end) of dim 0 as an fp32 tensor of shape {row_end - row_begin, shape[1:]...}
  // (a scalar: rows [0, 1), shape {}), reading exactly those bytes. F32, F16 and BF16 only: any other
  // dtype is an InputError naming it.
  Tensor read_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const;
  Tensor read_f32(const std::string& name) const;
  // The same into caller memory of (row_end - row_begin) * row elements floats: an import fills its
  // parameter buffer directly, without a fresh allocation (and its first-touch page faults) per tensor.
  void read_rows_into(const std::string& name, int64_t row_begin, int64_t row_end, float* dst) const;
  // The raw bytes of the tensor's rows, for callers that keep the file's dtype.
  std::vector<unsigned char> read_rows_raw(const std::string& name, int64_t row_begin, int64_t row_end) const;
  // Bytes pread from the buffer so far (the header not counted).
  uint64_t bytes_read() const { return bytes_read_.load(); }

 private:
  void pread_exact(void* dst, uint64_t bytes, uint64_t buffer_offset) const;

  std::string path_;
  int fd_ = -1;
  uint64_t file_bytes_ = 0, header_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  mutable std::atomic<uint64_t> bytes_read_{0};
};

// Parses and checks a header (the N bytes after the length) against a buffer of `buffer_bytes`;
// `file` names the file in errors. Tensors come back sorted by name. Exposed for the tests.
void parse_header(const std::string& file, const std::string& text, uint64_t buffer_bytes,
                  std::vector<TensorInfo>& tensors, std::map<std::string, std::string>& metadata);

// ---- writing ---------------------------------------------------------------------------------------

// A tensor to write: its name, shape and a function producing its fp32 values (called once, when
// the writer reaches it, so a caller can stream a model larger than memory one tensor at a time).
struct Source {
  std::string name;
  std::vector<int64_t> shape;
  std::function<std::vector<float>()> values;
};
// Sources that copy in-memory fp32 tensors.
std::vector<Source> sources_of(const std::vector<NamedTensor>& tensors);

struct WriteOptions {
  DType dtype = DType::kF32;                     // kF32, or kBF16 (round-to-nearest-even, core/bf16.h)
  std::map<std::string, std::string> metadata;   // besides {"format": "pt"}, which transformers requires
  bool sort_by_name = true;                      // false: the order of the sources
  std::function<void(uint64_t)> on_bytes;        // tensor bytes written, as they are written
};

// Writes one file: FILE.tmp, fsync'd, renamed over FILE (ckpt/temp_output.h: a failure or SIGINT /
// SIGTERM / SIGHUP leaves neither). The header is padded with spaces to a multiple of 8 bytes, as
// the reference writer does, so every tensor starts 8-byte aligned. Returns the file's size.
uint64_t write_file(const std::string& path, const std::vector<Source>& tensors, const WriteOptions& options);

// Bytes a tensor takes in `dtype`.
uint64_t stored_bytes(const Source& tensor, DType dtype);

}  // namespace flywheel::safetensors
