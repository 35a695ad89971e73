// Writing safetensors files the way the reference writer does (safetensors/src/tensor.rs `prepare`):
// contiguous tensors from offset 0, the header padded with spaces to a multiple of 8, and
// {"format": "pt"} in __metadata__ because transformers refuses a file without a known format.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>
#include <set>

#include <nlohmann/json.hpp>

#include "ckpt/safetensors.h"
#include "ckpt/temp_output.h"
#include "core/bf16.h"
#include "core/error.h"

namespace flywheel::safetensors {
namespace {

static_assert(std::endian::native == std::endian::little, "the safetensors writer assumes a little-endian host");

const char* format_dtype(DType dtype) {
  FW_CHECK(dtype == DType::kF32 || dtype == DType::kBF16, "safetensors: cannot write dtype ", dtype_name(dtype),
           " (f32 or bf16)");
  return dtype == DType::kF32 ? "F32" : "BF16";
}

// The write(2) calls of one output file; a failure (disk full, a file size limit) names the file.
class Output {
 public:
  explicit Output(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FW_INPUT_CHECK(fd_ >= 0, "cannot create ", path, ": ", std::strerror(errno));
  }
  ~Output() {
    if (fd_ >= 0) ::close(fd_);
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  void write(const void* data, size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::write(fd_, p, bytes);
      if (n < 0 && errno == EINTR) continue;
      FW_INPUT_CHECK(n > 0, "writing ", path_, " failed (disk full?): ", std::strerror(errno));
      p += n;
      bytes -= static_cast<size_t>(n);
    }
  }
  void close() {
    const int rc = ::close(std::exchange(fd_, -1));
    FW_INPUT_CHECK(rc == 0, "writing ", path_, " failed (disk full?): ", std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

std::vector<const Source*> in_write_order(const std::vector<Source>& tensors, bool sort_by_name) {
  std::vector<const Source*> order;
  std::set<std::string> names;
  for (const Source& s : tensors) {
    FW_CHECK(names.insert(s.name).second, "safetensors: tensor '", s.name, "' given twice");
    FW_CHECK(s.name != "__metadata__", "safetensors: a tensor cannot be called __metadata__");
    order.push_back(&s);
  }
  if (sort_by_name)
    std::sort(order.begin(), order.end(), [](const Source* a, const Source* b) { return a->name < b->name; });
  return order;
}

// The header JSON, __metadata__ first and the tensors in data order, padded so the data starts 8-byte
// aligned in the file (8 + N with N a multiple of 8).
std::string header_text(const std::vector<const Source*>& order, const WriteOptions& options) {
  nlohmann::ordered_json meta = {{"format", "pt"}};
  for (const auto& [key, value] : options.metadata)
    if (key != "format") meta[key] = value;
  nlohmann::ordered_json header = {{"__metadata__", meta}};
  uint64_t offset = 0;
  for (const Source* s : order) {
    const uint64_t bytes = stored_bytes(*s, options.dtype);
    header[s->name] = {
        {"dtype", format_dtype(options.dtype)}, {"shape", s->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_values(Output& out, const Source& s, const WriteOptions& options) {
  const std::vector<float> values = s.values();
  FW_CHECK(values.size() == static_cast<size_t>(shape_numel(s.shape)), "safetensors: tensor '", s.name, "' of shape ",
           shape_text(s.shape), " produced ", values.size(), " values");
  if (options.dtype == DType::kF32) {
    out.write(values.data(), values.size() * 4);
  } else {
    std::vector<BFloat16> bf16(std::min<size_t>(values.size(), 1 << 20));
    for (size_t done = 0; done < values.size(); done += bf16.size()) {
      const size_t n = std::min(bf16.size(), values.size() - done);
      fp32_to_bf16(values.data() + done, bf16.data(), static_cast<int64_t>(n));
      out.write(bf16.data(), n * 2);
    }
  }
  if (options.on_bytes) options.on_bytes(stored_bytes(s, options.dtype));
}

}  // namespace

uint64_t stored_bytes(const Source& tensor, DType dtype) {
  return static_cast<uint64_t>(shape_numel(tensor.shape)) * dtype_bytes(dtype);
}

std::vector<Source> sources_of(const std::vector<NamedTensor>& tensors) {
  std::vector<Source> out;
  for (const NamedTensor& t : tensors) {
    const Tensor tensor = t.tensor;  // shares the storage: the source stays valid after `tensors` goes
    out.push_back({t.name, tensor.shape(), [tensor] {
                     const float* p = tensor.data<float>();
                     return std::vector<float>(p, p + tensor.numel());
                   }});
  }
  return out;
}

uint64_t write_file(const std::string& path, const std::vector<Source>& tensors, const WriteOptions& options) {
  const std::vector<const Source*> order = in_write_order(tensors, options.sort_by_name);
  const std::string header = header_text(order, options);
  TemporaryOutput temporary(path);
  Output out(temporary.path());
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(uint64_t(header.size()) >> (8 * i));
  out.write(length, 8);
  out.write(header.data(), header.size());
  uint64_t bytes = 8 + header.size();
  for (const Source* s : order) {
    write_values(out, *s, options);
    bytes += stored_bytes(*s, options.dtype);
  }
  out.close();
  temporary.commit();
  return bytes;
}

}  // namespace flywheel::safetensors
