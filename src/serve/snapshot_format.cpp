#include "serve/snapshot_format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"

namespace flywheel {
namespace {

// Little-endian field helpers (the format is little-endian; so are the hosts we build for).
static_assert(std::endian::native == std::endian::little, "snapshot I/O assumes a little-endian host");

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

template <typename T>
T get(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

std::vector<uint8_t> encode_header(const SnapshotHeader& h, uint64_t tensor_count, uint64_t table_bytes) {
  std::vector<uint8_t> out(kSnapshotMagic, kSnapshotMagic + 8);
  put<uint32_t>(out, kSnapshotVersion);
  put<uint8_t>(out, static_cast<uint8_t>(h.kind));
  put<uint8_t>(out, h.dtype == ServeDtype::kFp32 ? 0 : 1);
  put<uint8_t>(out, kTransformBytePlanes);
  put<uint8_t>(out, 0);
  put<int64_t>(out, h.step);
  put<int64_t>(out, h.base_step);
  put<uint64_t>(out, h.base_checksum);
  put<uint64_t>(out, tensor_count);
  put<uint64_t>(out, h.raw_bytes);
  put<uint64_t>(out, h.chunk_bytes);
  put<uint64_t>(out, table_bytes);
  return out;
}

std::vector<uint8_t> encode_table(const std::vector<SnapshotTensor>& table) {
  std::vector<uint8_t> out;
  for (const SnapshotTensor& t : table) {
    put<uint32_t>(out, static_cast<uint32_t>(t.name.size()));
    out.insert(out.end(), t.name.begin(), t.name.end());
    put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) put<int64_t>(out, d);
  }
  return out;
}

}  // namespace

ServeDtype parse_serve_dtype(const std::string& text) {
  if (text == "fp32") return ServeDtype::kFp32;
  if (text == "bf16") return ServeDtype::kBf16;
  FW_THROW("serving dtype \"", text, "\" is not known; allowed: fp32 (exact mode), bf16 (fast mode)");
}

const char* serve_dtype_name(ServeDtype dtype) { return dtype == ServeDtype::kFp32 ? "fp32" : "bf16"; }

const char* snapshot_kind_name(SnapshotKind kind) { return kind == SnapshotKind::kFull ? "full" : "delta"; }

std::vector<FrameRange> frame_ranges(const std::vector<SnapshotTensor>& tensors, ServeDtype dtype,
                                     uint64_t chunk_bytes) {
  const int64_t per_frame = static_cast<int64_t>(chunk_bytes) / serve_dtype_bytes(dtype);
  std::vector<FrameRange> frames;
  for (size_t t = 0; t < tensors.size(); ++t)
    for (int64_t first = 0; first < tensors[t].numel; first += per_frame)
      frames.push_back({t, first, std::min(per_frame, tensors[t].numel - first)});
  return frames;
}

DType storage_dtype(ServeDtype dtype) { return dtype == ServeDtype::kFp32 ? DType::kF32 : DType::kBF16; }

std::vector<SnapshotTensor> snapshot_table(const std::vector<NamedTensor>& tensors, ServeDtype dtype,
                                           uint64_t chunk_bytes) {
  const int64_t item = serve_dtype_bytes(dtype), per_frame = static_cast<int64_t>(chunk_bytes) / item;
  std::vector<SnapshotTensor> table;
  std::set<std::string> names;
  uint64_t frame = 0, offset = 0;
  for (const NamedTensor& v : tensors) {
    FW_CHECK(!v.name.empty() && names.insert(v.name).second, "snapshot tensor names must be unique and non-empty; \"",
             v.name, "\" is ", v.name.empty() ? "empty" : "repeated");
    FW_CHECK(v.tensor.defined(), "tensor ", v.name, " has no data");
    const int64_t numel = v.tensor.numel();
    SnapshotTensor t{v.name, v.tensor.shape(), numel, frame, static_cast<uint64_t>((numel + per_frame - 1) / per_frame),
                     offset};
    frame += t.frames;
    offset += static_cast<uint64_t>(numel * item);
    table.push_back(std::move(t));
  }
  return table;
}

std::string table_mismatch(const std::vector<SnapshotTensor>& file, const std::vector<NamedTensor>& tensors) {
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& v : tensors) by_name[v.name] = &v;
  for (const SnapshotTensor& t : file) {
    auto it = by_name.find(t.name);
    if (it == by_name.end()) return "tensor " + t.name + " is in the file but not in the model";
    if (it->second->tensor.shape() != t.shape)
      return "tensor " + t.name + " has shape " + shape_text(t.shape) + " in the file but " +
             shape_text(it->second->tensor.shape()) + " in the model";
  }
  if (file.size() != tensors.size())
    return "the file has " + std::to_string(file.size()) + " tensors, the model " + std::to_string(tensors.size());
  return "";
}

void split_byte_planes(const uint8_t* bytes, uint8_t* planes, int64_t count, int64_t item) {
  for (int64_t b = 0; b < item; ++b) {
    uint8_t* plane = planes + b * count;
    for (int64_t i = 0; i < count; ++i) plane[i] = bytes[i * item + b];
  }
}

void join_byte_planes(const uint8_t* planes, uint8_t* bytes, int64_t count, int64_t item) {
  // Specialised so the compiler sees a fixed stride and vectorises the gathers.
  if (item == 2) {
    for (int64_t i = 0; i < count; ++i) {
      const uint16_t v = static_cast<uint16_t>(planes[i] | (planes[count + i] << 8));
      std::memcpy(bytes + 2 * i, &v, 2);
    }
  } else if (item == 4) {
    for (int64_t i = 0; i < count; ++i) {
      const uint32_t v = uint32_t{planes[i]} | (uint32_t{planes[count + i]} << 8) |
                         (uint32_t{planes[2 * count + i]} << 16) | (uint32_t{planes[3 * count + i]} << 24);
      std::memcpy(bytes + 4 * i, &v, 4);
    }
  } else {
    for (int64_t b = 0; b < item; ++b)
      for (int64_t i = 0; i < count; ++i) bytes[i * item + b] = planes[b * count + i];
  }
}

// ---- writer ------------------------------------------------------------------------------------

SnapshotWriter::SnapshotWriter(std::string path, const SnapshotHeader& header, const std::vector<SnapshotTensor>& table)
    : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FW_CHECK(fd_ >= 0, "cannot create snapshot file ", path_, ": ", std::strerror(errno));
  auto* state = XXH3_createState();
  FW_CHECK(state != nullptr && XXH3_64bits_reset(state) == XXH_OK, "cannot initialise XXH3 for ", path_);
  hash_state_ = state;
  const std::vector<uint8_t> body = encode_table(table);
  write_bytes(encode_header(header, table.size(), body.size()).data(), kSnapshotHeaderBytes);
  write_bytes(body.data(), body.size());
}

SnapshotWriter::~SnapshotWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(path_.c_str());
  XXH3_freeState(static_cast<XXH3_state_t*>(hash_state_));
}

void SnapshotWriter::write_bytes(const void* data, size_t size) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_state_), data, size);
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd_, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    FW_CHECK(n > 0, "writing snapshot file ", path_, " failed after ", written_ + done, " bytes: ",
             n < 0 ? std::strerror(errno) : "no progress");
    done += static_cast<size_t>(n);
  }
  written_ += size;
}

uint64_t frame_digest(const uint8_t* bytes, size_t size) { return XXH3_64bits(bytes, size); }

uint64_t result_checksum(const std::vector<uint64_t>& frame_digests) {
  std::vector<uint8_t> le;
  le.reserve(frame_digests.size() * 8);
  for (uint64_t d : frame_digests) put<uint64_t>(le, d);
  return XXH3_64bits(le.data(), le.size());
}

void SnapshotWriter::encode_frame(const uint8_t* raw, size_t raw_size, int64_t item, ZSTD_CCtx* cctx, int level,
                                  std::vector<uint8_t>& scratch, std::vector<uint8_t>& out) {
  // A zero frame: nothing to store (words first, then the tail bytes).
  size_t i = 0;
  uint64_t any = 0;
  for (; i + 8 <= raw_size; i += 8) {
    uint64_t word;
    std::memcpy(&word, raw + i, 8);
    any |= word;
  }
  for (; i < raw_size; ++i) any |= raw[i];
  if (any == 0) {
    out.clear();
    return;
  }
  scratch.resize(raw_size);
  split_byte_planes(raw, scratch.data(), static_cast<int64_t>(raw_size) / item, item);
  out.resize(ZSTD_compressBound(raw_size));
  const size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), scratch.data(), raw_size, level);
  FW_CHECK(!ZSTD_isError(n), "zstd compression of a ", raw_size, "-byte snapshot chunk failed: ", ZSTD_getErrorName(n));
  out.resize(n);
}

void SnapshotWriter::write_frame(const std::vector<uint8_t>& compressed) {
  write_bytes(compressed.data(), compressed.size());
  frame_sizes_.push_back(compressed.size());
}

uint64_t SnapshotWriter::finish(uint64_t result_checksum) {
  std::vector<uint8_t> tail;
  for (uint64_t s : frame_sizes_) put<uint64_t>(tail, s);
  put<uint64_t>(tail, written_);  // footer: index offset
  put<uint64_t>(tail, frame_sizes_.size());
  put<uint64_t>(tail, result_checksum);
  write_bytes(tail.data(), tail.size());
  std::vector<uint8_t> end;
  put<uint64_t>(end, XXH3_64bits_digest(static_cast<XXH3_state_t*>(hash_state_)));  // all bytes before it
  end.insert(end.end(), kSnapshotEndMagic, kSnapshotEndMagic + 8);
  write_bytes(end.data(), end.size());
  FW_CHECK(::fsync(fd_) == 0, "fsync of snapshot file ", path_, " failed: ", std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  FW_CHECK(rc == 0, "closing snapshot file ", path_, " failed: ", std::strerror(errno));
  finished_ = true;
  return written_;
}

// ---- reader ------------------------------------------------------------------------------------

SnapshotFile::SnapshotFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FW_CHECK(fd >= 0, "cannot open snapshot ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    FW_THROW("cannot stat snapshot ", path, ": ", std::strerror(saved));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    // MAP_POPULATE maps every page in one call: the file is read whole anyway (checksum first),
    // and one fault per 4 KiB page costs several times the copy on a loaded VM.
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    const int saved = errno;
    ::close(fd);
    FW_CHECK(map != MAP_FAILED, "cannot map snapshot ", path, " (", size_, " bytes): ", std::strerror(saved));
    data_ = static_cast<const uint8_t*>(map);
  } else {
    ::close(fd);
  }
  try {
    parse();
  } catch (...) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    throw;
  }
}

SnapshotFile::~SnapshotFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void SnapshotFile::parse() {
  const uint64_t min_size = kSnapshotHeaderBytes + kSnapshotFooterBytes;
  FW_CHECK(size_ >= min_size, "snapshot ", path_, " is truncated: ", size_, " bytes, less than the ", min_size,
           "-byte header + footer");
  FW_CHECK(std::memcmp(data_, kSnapshotMagic, 8) == 0, "snapshot ", path_, " does not start with ", kSnapshotMagic,
           ": not a snapshot file");
  FW_CHECK(std::memcmp(data_ + size_ - 8, kSnapshotEndMagic, 8) == 0, "snapshot ", path_, " does not end with ",
           kSnapshotEndMagic, ": truncated or corrupt (", size_, " bytes)");
  const uint64_t file_sum = get<uint64_t>(data_ + size_ - 16), actual = XXH3_64bits(data_, size_ - 16);
  FW_CHECK(file_sum == actual, "snapshot ", path_, " is corrupt: XXH3-64 of its bytes is ", actual,
           " but its footer says ", file_sum);
  const uint32_t version = get<uint32_t>(data_ + 8);
  FW_CHECK(version == kSnapshotVersion, "snapshot ", path_, " has format version ", version, "; this reader knows ",
           kSnapshotVersion);
  const uint8_t kind = data_[12], dtype = data_[13], transform = data_[14];
  FW_CHECK(kind <= 1 && dtype <= 1 && transform == kTransformBytePlanes, "snapshot ", path_, ": kind ", int{kind},
           ", dtype ", int{dtype}, ", transform ", int{transform}, "; allowed: kind 0|1, dtype 0|1, transform 1");
  header_.kind = static_cast<SnapshotKind>(kind);
  header_.dtype = dtype == 0 ? ServeDtype::kFp32 : ServeDtype::kBf16;
  header_.step = get<int64_t>(data_ + 16);
  header_.base_step = get<int64_t>(data_ + 24);
  header_.base_checksum = get<uint64_t>(data_ + 32);
  const uint64_t count = get<uint64_t>(data_ + 40);
  header_.raw_bytes = get<uint64_t>(data_ + 48);
  header_.chunk_bytes = get<uint64_t>(data_ + 56);
  const uint64_t table_bytes = get<uint64_t>(data_ + 64);
  const int64_t item = serve_dtype_bytes(header_.dtype);
  FW_CHECK(header_.chunk_bytes > 0 && header_.chunk_bytes % 4 == 0 && table_bytes <= size_ - min_size,
           "snapshot ", path_, ": chunk size ", header_.chunk_bytes, " or table size ", table_bytes, " is invalid");

  const uint8_t* p = data_ + kSnapshotHeaderBytes;
  const uint8_t* table_end = p + table_bytes;
  auto need = [&](uint64_t n) {
    FW_CHECK(static_cast<uint64_t>(table_end - p) >= n, "snapshot ", path_, ": tensor table ends early");
  };
  uint64_t frame = 0, offset = 0;
  const int64_t per_frame = static_cast<int64_t>(header_.chunk_bytes) / item;
  for (uint64_t i = 0; i < count; ++i) {
    SnapshotTensor t;
    need(4);
    const uint32_t name_len = get<uint32_t>(p);
    need(4 + uint64_t{name_len} + 4);
    t.name.assign(reinterpret_cast<const char*>(p + 4), name_len);
    p += 4 + name_len;
    const uint32_t ndim = get<uint32_t>(p);
    p += 4;
    need(8 * uint64_t{ndim});
    t.numel = 1;
    for (uint32_t d = 0; d < ndim; ++d, p += 8) {
      t.shape.push_back(get<int64_t>(p));
      FW_CHECK(t.shape.back() >= 0 && t.shape.back() < (int64_t{1} << 40), "snapshot ", path_, ": tensor ", t.name,
               " has dimension ", t.shape.back());
      t.numel *= t.shape.back();
    }
    t.first_frame = frame;
    t.frames = static_cast<uint64_t>((t.numel + per_frame - 1) / per_frame);
    t.raw_offset = offset;
    frame += t.frames;
    offset += static_cast<uint64_t>(t.numel * item);
    tensors_.push_back(std::move(t));
  }
  FW_CHECK(p == table_end, "snapshot ", path_, ": tensor table is ", table_bytes, " bytes but its ", count,
           " entries use ", p - (data_ + kSnapshotHeaderBytes));
  FW_CHECK(offset == header_.raw_bytes, "snapshot ", path_, ": tensors hold ", offset, " bytes but the header says ",
           header_.raw_bytes);

  const uint8_t* footer = data_ + size_ - kSnapshotFooterBytes;
  const uint64_t index_offset = get<uint64_t>(footer), frames = get<uint64_t>(footer + 8);
  result_checksum_ = get<uint64_t>(footer + 16);
  FW_CHECK(frames == frame && index_offset + 8 * frames + kSnapshotFooterBytes == size_, "snapshot ", path_,
           ": footer says ", frames, " frames indexed at byte ", index_offset, "; the table needs ", frame,
           " frames and the file is ", size_, " bytes");
  uint64_t at = kSnapshotHeaderBytes + table_bytes;
  for (uint64_t f = 0; f < frames; ++f) {
    frame_offsets_.push_back(at);
    frame_sizes_.push_back(get<uint64_t>(data_ + index_offset + 8 * f));
    at += frame_sizes_.back();
    FW_CHECK(at <= index_offset, "snapshot ", path_, ": frame ", f, " runs past the frame index");
  }
  FW_CHECK(at == index_offset, "snapshot ", path_, ": frames end at byte ", at, ", the index starts at ", index_offset);
}

void SnapshotFile::decode_frame(uint64_t frame, uint8_t* dst, uint64_t raw_size, ZSTD_DCtx* dctx,
                                std::vector<uint8_t>& scratch) const {
  scratch.resize(raw_size);
  const size_t n = ZSTD_decompressDCtx(dctx, scratch.data(), raw_size, data_ + frame_offsets_[frame], frame_sizes_[frame]);
  FW_CHECK(!ZSTD_isError(n) && n == raw_size, "snapshot ", path_, ": frame ", frame, " does not decompress to ",
           raw_size, " bytes (", ZSTD_isError(n) ? ZSTD_getErrorName(n) : std::to_string(n) + " bytes", ")");
  const int64_t item = serve_dtype_bytes(header_.dtype);
  join_byte_planes(scratch.data(), dst, static_cast<int64_t>(raw_size) / item, item);
}

// ---- directory -----------------------------------------------------------------------------------

std::string snapshot_file_name(int64_t step, SnapshotKind kind) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%08lld.%s", static_cast<long long>(step), snapshot_kind_name(kind));
  return name;
}

std::vector<SnapshotEntry> list_snapshots(const std::string& publish_dir) {
  std::vector<SnapshotEntry> entries;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(publish_dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t dot = name.rfind('.');
    if (name.rfind("step-", 0) != 0 || dot == std::string::npos || dot <= 5 || dot - 5 > 18) continue;
    const std::string digits = name.substr(5, dot - 5), suffix = name.substr(dot + 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (suffix != "full" && suffix != "delta") continue;
    entries.push_back({std::stoll(digits), suffix == "full" ? SnapshotKind::kFull : SnapshotKind::kDelta,
                       e.path().string()});
  }
  FW_CHECK(!ec, "cannot list publish directory ", publish_dir, ": ", ec.message());
  std::sort(entries.begin(), entries.end(), [](const SnapshotEntry& a, const SnapshotEntry& b) {
    return a.step != b.step ? a.step < b.step : a.kind < b.kind;
  });
  return entries;
}

}  // namespace flywheel
