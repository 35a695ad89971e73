// Weight snapshots for serving replicas (docs/hot-load.md): the on-disk format of
// publish/step-<N>.full and publish/step-<N>.delta, read and written here and nowhere else.
//
// A file is   header (72 bytes) | tensor table | zstd frames | frame index | footer (40 bytes),
// all integers little-endian. The payload is the model's weights in the serving dtype (fp32 or
// bf16), tensors in table order, cut into chunks of at most kSnapshotChunkBytes raw bytes per
// tensor; each chunk is stored byte-plane transposed (all byte 0s of its elements, then all byte
// 1s, ...) and compressed as one independent zstd frame. A full snapshot stores the values' bit
// patterns; a delta stores old XOR new, so unchanged weights are zero bytes. The footer carries
// the result checksum (below) and the XXH3-64 of the file's own bytes. A chunk whose raw bytes are
// all zero (a delta's unchanged weights: a LoRA run's whole frozen base) is stored as a zero frame,
// compressed size 0 in the frame index and no bytes in the file: readers skip it (delta) or zero-fill it
// (full) without decompressing anything.
//
// The result checksum (format version 2) is two-level: the XXH3-64 of the array of every frame's XXH3-64 digest
// of its resulting serve-dtype bytes, in file order (result_checksum()). A replica that keeps the digests of
// what it holds recomputes only the frames a delta changes, so verifying a LoRA run's delta costs the adapters'
// bytes, not the model's.
//
// Why per-chunk frames rather than one frame: a reader decompresses into a 1 MiB buffer and XORs
// in place (memory O(chunk), not O(model)); chunks decode in parallel; a frame never spans two
// tensors, so a reader maps frame -> tensor range without arithmetic across tensor boundaries.
// The cost is ~10 bytes of frame header per MiB. Why byte planes: in an XOR delta the changed
// bits sit in the low mantissa bytes; transposed, the high-byte planes are long zero runs zstd
// encodes in a few bytes, where interleaved they are 2-byte zero gaps below zstd's 3-byte minimum
// match (measured on GPT-2-124M-class weights, lr 1e-6, zstd 1: the fp32 delta is 1.28x smaller,
// the bf16 delta 1.09x; hotload_bench prints this per run).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <zstd.h>

#include "core/tensor.h"

namespace flywheel {

enum class ServeDtype { kFp32, kBf16 };
ServeDtype parse_serve_dtype(const std::string& text);  // "fp32" | "bf16"; throws naming the value
const char* serve_dtype_name(ServeDtype dtype);
inline int64_t serve_dtype_bytes(ServeDtype dtype) { return dtype == ServeDtype::kFp32 ? 4 : 2; }

// The tensor dtype a replica serving `dtype` stores its weights in (f32 or bf16, 2 bytes).
DType storage_dtype(ServeDtype dtype);

enum class SnapshotKind : uint8_t { kFull = 0, kDelta = 1 };
const char* snapshot_kind_name(SnapshotKind kind);  // "full" | "delta" (also the file suffix)

inline constexpr char kSnapshotMagic[9] = "FWSNAPSH";
inline constexpr char kSnapshotEndMagic[9] = "FWSNAPND";
inline constexpr uint32_t kSnapshotVersion = 2;
inline constexpr uint64_t kSnapshotHeaderBytes = 72;
inline constexpr uint64_t kSnapshotFooterBytes = 40;
inline constexpr uint64_t kSnapshotChunkBytes = uint64_t{1} << 20;  // raw serve bytes per frame
inline constexpr uint8_t kTransformBytePlanes = 1;

struct SnapshotHeader {
  SnapshotKind kind = SnapshotKind::kFull;
  ServeDtype dtype = ServeDtype::kFp32;
  int64_t step = 0;
  int64_t base_step = -1;      // delta: the step it applies over; full: -1
  uint64_t base_checksum = 0;  // delta: result checksum of the base snapshot; full: 0
  uint64_t raw_bytes = 0;      // sum of numel x dtype bytes: the uncompressed payload
  uint64_t chunk_bytes = kSnapshotChunkBytes;
};

struct SnapshotTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  uint64_t first_frame = 0, frames = 0;  // its frames in the frame index
  uint64_t raw_offset = 0;               // byte offset of its first element in the raw payload
};

// One frame of the payload: which tensor bytes it holds.
struct FrameRange {
  size_t tensor = 0;
  int64_t first_element = 0, elements = 0;
};

// Frames of a tensor list in file order (tensor by tensor, chunk_bytes raw bytes per frame).
std::vector<FrameRange> frame_ranges(const std::vector<SnapshotTensor>& tensors, ServeDtype dtype,
                                     uint64_t chunk_bytes);
// Table entries (numel, frames, raw offsets filled in) for a model's tensors (their names are the
// parameter names, Hugging Face style); throws on an empty or repeated name or an undefined tensor.
std::vector<SnapshotTensor> snapshot_table(const std::vector<NamedTensor>& tensors, ServeDtype dtype,
                                           uint64_t chunk_bytes);
// Empty when `file` has exactly the tensors' names and shapes (any order); else what differs.
std::string table_mismatch(const std::vector<SnapshotTensor>& file, const std::vector<NamedTensor>& tensors);

// A frame's digest: XXH3-64 (seed 0) of its resulting serve-dtype bytes.
uint64_t frame_digest(const uint8_t* bytes, size_t size);
// The result checksum of a snapshot: XXH3-64 (seed 0) of the frame digests as little-endian u64s.
uint64_t result_checksum(const std::vector<uint64_t>& frame_digests);

// Byte-plane transposition of `count` elements of `item` bytes: planes[b * count + i] = bytes[i * item + b].
void split_byte_planes(const uint8_t* bytes, uint8_t* planes, int64_t count, int64_t item);
void join_byte_planes(const uint8_t* planes, uint8_t* bytes, int64_t count, int64_t item);

// Writes a snapshot file front to back with a running XXH3 of its bytes (one pass, no seeks).
class SnapshotWriter {
 public:
  SnapshotWriter(std::string path, const SnapshotHeader& header, const std::vector<SnapshotTensor>& table);
  ~SnapshotWriter();  // closes and removes the file unless finish() succeeded
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Transposes `raw` into byte planes and compresses it as one frame into `out` (thread-safe with
  // one ZSTD_CCtx per thread); all-zero `raw` gives an empty `out`, a zero frame. `scratch` is resized as needed.
  static void encode_frame(const uint8_t* raw, size_t raw_size, int64_t item, ZSTD_CCtx* cctx, int level,
                           std::vector<uint8_t>& scratch, std::vector<uint8_t>& out);
  void write_frame(const std::vector<uint8_t>& compressed);  // frames in file order
  // Writes frame index + footer, fsyncs and closes. Returns the file size in bytes.
  uint64_t finish(uint64_t result_checksum);

 private:
  void write_bytes(const void* data, size_t size);

  std::string path_;
  int fd_ = -1;
  bool finished_ = false;
  uint64_t written_ = 0;
  std::vector<uint64_t> frame_sizes_;
  void* hash_state_ = nullptr;  // XXH3_state_t*
};

// A snapshot file mapped read-only and verified (size, magics, version, table, frame index,
// and the XXH3-64 of the file's bytes) before anything is decoded. Throws flywheel::Error naming
// the file and what was wrong. The mapping stays valid if the file is deleted meanwhile.
class SnapshotFile {
 public:
  explicit SnapshotFile(const std::string& path);
  ~SnapshotFile();
  SnapshotFile(const SnapshotFile&) = delete;
  SnapshotFile& operator=(const SnapshotFile&) = delete;

  const std::string& path() const { return path_; }
  const SnapshotHeader& header() const { return header_; }
  const std::vector<SnapshotTensor>& tensors() const { return tensors_; }
  uint64_t result_checksum() const { return result_checksum_; }
  uint64_t file_bytes() const { return size_; }
  uint64_t frame_count() const { return frame_offsets_.size(); }
  // A zero frame (compressed size 0): its raw bytes are all zero, decode_frame is not needed.
  bool zero_frame(uint64_t frame) const { return frame_sizes_[frame] == 0; }
  // Decompresses frame `frame` (raw size `raw_size`) into dst with the byte planes joined;
  // `scratch` holds the planes. Throws naming the file and frame when zstd fails or sizes differ.
  void decode_frame(uint64_t frame, uint8_t* dst, uint64_t raw_size, ZSTD_DCtx* dctx,
                    std::vector<uint8_t>& scratch) const;

 private:
  void parse();

  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  SnapshotHeader header_;
  std::vector<SnapshotTensor> tensors_;
  std::vector<uint64_t> frame_offsets_, frame_sizes_;
  uint64_t result_checksum_ = 0;
};

// publish/ entries: "step-%08lld.full" / ".delta" (at least 8 digits). Anything else is ignored.
struct SnapshotEntry {
  int64_t step = 0;
  SnapshotKind kind = SnapshotKind::kFull;
  std::string path;
};
std::string snapshot_file_name(int64_t step, SnapshotKind kind);
std::vector<SnapshotEntry> list_snapshots(const std::string& publish_dir);  // by step, full before delta

}  // namespace flywheel
