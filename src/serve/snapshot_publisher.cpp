#include "serve/snapshot_publisher.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>

#include "ckpt/durable_fs.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/log.h"

namespace flywheel {
namespace {

namespace fs = std::filesystem;

bool same_tensors(const std::vector<SnapshotTensor>& a, const std::vector<SnapshotTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].shape != b[i].shape) return false;
  return true;
}

// Elements [first, first + count) of a tensor as serve-dtype bytes: copied when the tensor already
// is in the serve dtype, rounded from fp32 otherwise (bf16: round-to-nearest-even).
void to_serve_bytes(const Tensor& tensor, int64_t first, uint8_t* dst, int64_t count, ServeDtype dtype) {
  const DType target = storage_dtype(dtype);
  if (tensor.dtype() == target) {
    const size_t item = dtype_bytes(target);
    std::memcpy(dst, static_cast<const uint8_t*>(tensor.raw()) + first * item, static_cast<size_t>(count) * item);
    return;
  }
  FW_CHECK(tensor.dtype() == DType::kF32, "snapshot publish: a ", dtype_name(tensor.dtype()), " tensor cannot be ",
           "published as ", serve_dtype_name(dtype), " (give f32 or ", serve_dtype_name(dtype), " tensors)");
  fp32_to_bf16(tensor.data<float>() + first, reinterpret_cast<BFloat16*>(dst), count);
}

void remove_file(const std::string& path, const char* why) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) log_warn("snapshot publisher: cannot delete ", path, " (", why, "): ", ec.message());
}

struct CompressScratch {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::vector<uint8_t> values, planes;
  ~CompressScratch() { ZSTD_freeCCtx(cctx); }
};

}  // namespace

SnapshotPublisher::SnapshotPublisher(std::string publish_dir, ServeDtype dtype, int64_t full_every, int keep_full)
    : dir_(std::move(publish_dir)), dtype_(dtype), full_every_(full_every), keep_full_(keep_full) {
  FW_CHECK(!dir_.empty(), "snapshot publish directory is empty; give the run's publish/ directory");
  FW_CHECK(full_every >= 1, "snapshot full_every = ", full_every, " (publish ", dir_, "); allowed: >= 1 (1 = every "
           "snapshot full)");
  FW_CHECK(keep_full >= 1, "snapshot keep_full = ", keep_full, " (publish ", dir_, "); allowed: >= 1");
}

void SnapshotPublisher::set_zstd_level(int level) {
  FW_CHECK(level >= 1 && level <= ZSTD_maxCLevel(), "snapshot zstd level ", level, "; allowed: 1..",
           ZSTD_maxCLevel());
  zstd_level_ = level;
}

// Converts, XORs against published_ (delta) and compresses frames in parallel, a batch at a time,
// then writes the batch's frames in order: memory beyond published_ is O(threads x chunk).
void SnapshotPublisher::encode_payload(const std::vector<NamedTensor>& tensors, const std::vector<SnapshotTensor>& table,
                                       bool full, const std::vector<bool>& unchanged, SnapshotWriter& writer) {
  const int64_t item = serve_dtype_bytes(dtype_);
  const std::vector<FrameRange> frames = frame_ranges(table, dtype_, kSnapshotChunkBytes);
  if (full) published_digests_.assign(frames.size(), 0);
  const int threads = std::max(1, omp_get_max_threads());
  std::vector<CompressScratch> scratch(static_cast<size_t>(threads));
  const size_t batch = 4 * static_cast<size_t>(threads);
  std::vector<std::vector<uint8_t>> out(batch);
  std::vector<std::exception_ptr> errors(batch);
  for (size_t b0 = 0; b0 < frames.size(); b0 += batch) {
    const int64_t count = static_cast<int64_t>(std::min(batch, frames.size() - b0));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t k = 0; k < count; ++k) {
      try {
        CompressScratch& s = scratch[static_cast<size_t>(omp_get_thread_num())];
        const FrameRange& f = frames[b0 + static_cast<size_t>(k)];
        const size_t n = static_cast<size_t>(f.elements * item);
        if (!full && !unchanged.empty() && unchanged[f.tensor]) {  // a zero frame: published_ and its digest stay
          out[k].clear();
          continue;
        }
        uint8_t* published = published_.data() + table[f.tensor].raw_offset + f.first_element * item;
        s.values.resize(n);
        to_serve_bytes(tensors[f.tensor].tensor, f.first_element, s.values.data(), f.elements, dtype_);
        if (!full) {
          for (size_t i = 0; i < n; ++i) {  // values becomes old ^ new; published_ becomes new
            const uint8_t fresh = s.values[i];
            s.values[i] = static_cast<uint8_t>(fresh ^ published[i]);
            published[i] = fresh;
          }
        } else {
          std::memcpy(published, s.values.data(), n);
        }
        SnapshotWriter::encode_frame(s.values.data(), n, item, s.cctx, zstd_level_, s.planes, out[k]);
        // A zero delta frame left published_ as it was, and so its digest.
        if (full || !out[k].empty()) published_digests_[b0 + static_cast<size_t>(k)] = frame_digest(published, n);
      } catch (...) {
        errors[k] = std::current_exception();
      }
    }
    for (int64_t k = 0; k < count; ++k) {
      if (errors[k]) std::rethrow_exception(errors[k]);
      writer.write_frame(out[k]);
    }
  }
}

PublishInfo SnapshotPublisher::publish(int64_t step, const std::vector<NamedTensor>& tensors,
                                       const std::vector<bool>& unchanged) {
  const auto start = std::chrono::steady_clock::now();
  FW_CHECK(step >= 0 && step > last_step_, "snapshot publish of step ", step, " into ", dir_,
           ": steps must be >= 0 and increase (last published: ", last_step_, ")");
  FW_CHECK(!tensors.empty(), "snapshot publish of step ", step, " into ", dir_, ": no tensors given");
  FW_CHECK(unchanged.empty() || unchanged.size() == tensors.size(), "snapshot publish of step ", step, ": ",
           unchanged.size(), " unchanged flags for ", tensors.size(), " tensors");
  std::vector<SnapshotTensor> table = snapshot_table(tensors, dtype_, kSnapshotChunkBytes);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  FW_CHECK(!ec, "cannot create publish directory ", dir_, ": ", ec.message());
  if (last_step_ < 0) remove_stale(step);

  const bool previous_there = last_step_ >= 0 && fs::exists(last_path_, ec);
  const bool full = force_full_ || !previous_there || !same_tensors(table, published_table_) ||
                    step - last_full_step_ >= full_every_;
  SnapshotHeader header;
  header.kind = full ? SnapshotKind::kFull : SnapshotKind::kDelta;
  header.dtype = dtype_;
  header.step = step;
  header.base_step = full ? -1 : last_step_;
  header.base_checksum = full ? 0 : last_checksum_;
  header.raw_bytes = table.empty() ? 0 : table.back().raw_offset + table.back().numel * serve_dtype_bytes(dtype_);
  if (full) published_.resize(header.raw_bytes);

  PublishInfo info;
  info.step = step;
  info.full = full;
  info.base_step = header.base_step;
  info.full_bytes = header.raw_bytes;
  info.path = (fs::path(dir_) / snapshot_file_name(step, header.kind)).string();
  const std::string tmp = info.path + ".tmp";
  published_table_.clear();  // published_ is being overwritten: if anything below throws, the next one is full
  {
    SnapshotWriter writer(tmp, header, table);
    encode_payload(tensors, table, full, unchanged, writer);
    info.checksum = result_checksum(published_digests_);
    info.file_bytes = writer.finish(info.checksum);
  }
  rename_durably(tmp, info.path);
  published_table_ = std::move(table);
  last_step_ = step;
  last_checksum_ = info.checksum;
  last_path_ = info.path;
  if (full) last_full_step_ = step;
  force_full_ = false;
  apply_retention();
  info.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return info;
}

// A new trainer process publishing step N: files of steps >= N belong to a timeline the trainer
// abandoned (it crashed after publishing them and resumed from an older checkpoint). Left in place,
// a replica could replay them over the new timeline's snapshots; base checksums would catch that,
// but deleting them keeps the directory honest. Leftover .tmp files are interrupted writes.
void SnapshotPublisher::remove_stale(int64_t step) {
  for (const SnapshotEntry& e : list_snapshots(dir_))
    if (e.step >= step) remove_file(e.path, "left by an earlier trainer at a step >= the one being published");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
      remove_file(e.path().string(), "an interrupted write");
  }
}

// Keep the newest keep_full fulls and everything after the oldest of them: a replica can always
// rebuild any step from the oldest kept full onwards, the window being about keep_full x K steps.
void SnapshotPublisher::apply_retention() {
  const std::vector<SnapshotEntry> entries = list_snapshots(dir_);
  std::vector<int64_t> full_steps;
  for (const SnapshotEntry& e : entries)
    if (e.kind == SnapshotKind::kFull) full_steps.push_back(e.step);
  if (full_steps.size() <= static_cast<size_t>(keep_full_)) return;
  const int64_t oldest_kept = full_steps[full_steps.size() - static_cast<size_t>(keep_full_)];
  for (const SnapshotEntry& e : entries)
    if (e.step < oldest_kept) remove_file(e.path, "older than the oldest kept full snapshot");
}

}  // namespace flywheel
