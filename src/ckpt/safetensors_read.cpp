// Reading safetensors files: the 8-byte length, the header (checked by parse_header), then only the
// byte ranges a caller asks for, with pread(2). No mmap: a truncated-after-open file then gives a
// short read (an error) rather than SIGBUS, and a rank's resident memory is only what it asked for.
#include <fcntl.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/safetensors.h"
#include "core/bf16.h"
#include "core/error.h"

namespace flywheel::safetensors {
namespace {

// The format is little-endian; tensors are copied and widened without byte swaps.
static_assert(std::endian::native == std::endian::little, "the safetensors reader assumes a little-endian host");

// 2-byte elements are read and widened in chunks this large (128 KiB of input: the staging buffer
// stays in a core's L2), one chunk per OpenMP iteration, so the threads overlap pread and widening,
// chunks dealt round-robin so that together they read the file front to back.
constexpr uint64_t kStagingElements = 1 << 16;

// BF16 -> fp32 is a 16-bit shift. The fp32 side is 2x the bytes read and is not read again soon, so
// with AVX2 it is written with streaming (non-temporal) stores: no read-for-ownership of the
// destination lines, which at 1 GB-scale imports is a third of the memory traffic.
void widen_bf16(const uint16_t* in, float* out, uint64_t n) {
  uint64_t i = 0;
#if defined(__AVX2__)
  for (; i < n && (reinterpret_cast<uintptr_t>(out + i) & 31) != 0; ++i) out[i] = fp32_from_bf16_bits(in[i]);
  for (; i + 8 <= n; i += 8) {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(out + i), wide);
  }
  _mm_sfence();
#endif
  for (; i < n; ++i) out[i] = fp32_from_bf16_bits(in[i]);
}

uint64_t le_u64(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

}  // namespace

File::File(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  FW_INPUT_CHECK(fd_ >= 0, "cannot open ", path_, ": ", std::strerror(errno));
  try {
    struct stat st = {};
    FW_INPUT_CHECK(::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode), path_, " is not a regular file");
    file_bytes_ = static_cast<uint64_t>(st.st_size);
    FW_INPUT_CHECK(file_bytes_ >= 8, path_, " is ", file_bytes_,
                   " bytes: too short for the 8-byte header length (truncated file?)");
    unsigned char length[8];
    pread_exact(length, 8, 0);
    header_bytes_ = le_u64(length);
    FW_INPUT_CHECK(header_bytes_ > 0, path_, ": header length is 0 (the header must be a JSON object)");
    FW_INPUT_CHECK(header_bytes_ <= kMaxHeaderBytes, path_, ": header length ", header_bytes_, " exceeds the limit of ",
                   kMaxHeaderBytes, " bytes");
    FW_INPUT_CHECK(header_bytes_ <= file_bytes_ - 8, path_, ": header length ", header_bytes_,
                   " runs past the end of the ", file_bytes_, "-byte file (truncated file?)");
    std::string text(header_bytes_, '\0');
    pread_exact(text.data(), header_bytes_, 8);
    bytes_read_ = 0;
    parse_header(path_, text, file_bytes_ - 8 - header_bytes_, tensors_, metadata_);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      file_bytes_(other.file_bytes_),
      header_bytes_(other.header_bytes_),
      tensors_(std::move(other.tensors_)),
      metadata_(std::move(other.metadata_)),
      bytes_read_(other.bytes_read_.load()) {}

// offset counts from the start of the file here (the length and header) and from the buffer below.
void File::pread_exact(void* dst, uint64_t bytes, uint64_t offset) const {
  auto* out = static_cast<unsigned char*>(dst);
  uint64_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(fd_, out + done, bytes - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    FW_INPUT_CHECK(n >= 0, "reading ", path_, " failed: ", std::strerror(errno));
    FW_INPUT_CHECK(n > 0, path_, " ended at byte ", offset + done, " while reading ", bytes,
                   " bytes at ", offset, " (was it truncated while open?)");
    done += static_cast<uint64_t>(n);
  }
  bytes_read_ += bytes;
}

const TensorInfo* File::find(const std::string& name) const {
  const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                   [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find(name);
  FW_INPUT_CHECK(t != nullptr, path_, " has no tensor '", name, "'");
  return *t;
}

std::vector<unsigned char> File::read_rows_raw(const std::string& name, int64_t row_begin, int64_t row_end) const {
  const TensorInfo& t = tensor(name);
  FW_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= t.rows(), "rows [", row_begin, ", ", row_end,
           ") of tensor '", name, "' with ", t.rows(), " rows");
  std::vector<unsigned char> bytes(static_cast<uint64_t>(row_end - row_begin) * t.row_bytes());
  pread_exact(bytes.data(), bytes.size(), 8 + header_bytes_ + t.begin + uint64_t(row_begin) * t.row_bytes());
  return bytes;
}

Tensor File::read_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const {
  const TensorInfo& t = tensor(name);
  FW_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= t.rows(), "rows [", row_begin, ", ", row_end,
           ") of tensor '", name, "' with ", t.rows(), " rows");
  std::vector<int64_t> shape = t.shape;
  if (!shape.empty()) shape[0] = row_end - row_begin;
  Tensor out = Tensor::empty(DType::kF32, shape);
  read_rows_into(name, row_begin, row_end, out.data<float>());
  return out;
}

void File::read_rows_into(const std::string& name, int64_t row_begin, int64_t row_end, float* dst) const {
  const TensorInfo& t = tensor(name);
  FW_INPUT_CHECK(t.dtype == "F32" || t.dtype == "BF16" || t.dtype == "F16", path_, ": tensor '", name, "' has dtype ",
                 t.dtype, ", which does not convert to fp32 (F32, F16 or BF16 only)");
  FW_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= t.rows(), "rows [", row_begin, ", ", row_end,
           ") of tensor '", name, "' with ", t.rows(), " rows");
  const uint64_t start = 8 + header_bytes_ + t.begin + uint64_t(row_begin) * t.row_bytes();
  const uint64_t count = uint64_t(row_end - row_begin) * t.row_bytes() / t.element_bytes;
  // A cold file: ask the kernel to read the whole range ahead (a no-op for cached pages), since the
  // threads below share one descriptor and so one readahead window.
  ::posix_fadvise(fd_, static_cast<off_t>(start), static_cast<off_t>(count * t.element_bytes), POSIX_FADV_WILLNEED);
  if (t.dtype == "F32") {
    pread_exact(dst, count * 4, start);
    return;
  }
  const bool bf16 = t.dtype == "BF16";
  const int64_t chunks = static_cast<int64_t>((count + kStagingElements - 1) / kStagingElements);
  std::string error;  // an exception must not leave an OpenMP region: the first one is rethrown after it
#pragma omp parallel if (chunks > 1)
  {
    std::vector<uint16_t> staging(std::min(count, kStagingElements));
#pragma omp for schedule(static, 1)  // neighbouring chunks on neighbouring threads: one sequential stream
    for (int64_t c = 0; c < chunks; ++c) {
      const uint64_t done = static_cast<uint64_t>(c) * kStagingElements;
      const uint64_t n = std::min<uint64_t>(kStagingElements, count - done);
      try {
        pread_exact(staging.data(), n * 2, start + done * 2);
      } catch (const std::exception& e) {
#pragma omp critical(safetensors_read_error)
        if (error.empty()) error = e.what();
        continue;
      }
      float* out = dst + done;
      if (bf16)
        widen_bf16(staging.data(), out, n);
      else
        for (uint64_t i = 0; i < n; ++i) out[i] = fp32_from_f16_bits(staging[i]);
    }
  }
  if (!error.empty()) throw InputError(error);
}

Tensor File::read_f32(const std::string& name) const { return read_rows_f32(name, 0, tensor(name).rows()); }

}  // namespace flywheel::safetensors
