#include "serve/snapshot_loader.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>

#include "ckpt/checksum.h"
#include "core/error.h"

namespace flywheel {
namespace {

namespace fs = std::filesystem;

enum class ApplyMode { kOverwrite, kXor };

struct DecodeScratch {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::vector<uint8_t> raw, planes;
  ~DecodeScratch() { ZSTD_freeDCtx(dctx); }
};

// Error text without the "src/file.cpp:line: " prefix: reasons go to the ledger, for people.
std::string plain(const std::exception& e) {
  const std::string text = e.what();
  const size_t colon = text.find(": ");
  return text.rfind("src/", 0) == 0 && colon != std::string::npos ? text.substr(colon + 2) : text;
}

std::vector<const NamedTensor*> views_in_file_order(const SnapshotFile& file, const std::vector<NamedTensor>& views) {
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& v : views) by_name[v.name] = &v;
  std::vector<const NamedTensor*> ordered;
  for (const SnapshotTensor& t : file.tensors()) ordered.push_back(by_name.at(t.name));
  return ordered;
}

// Bytes of elements [first, first + count) of a replica tensor (stored in the serve dtype).
uint8_t* element_bytes(const NamedTensor& t, int64_t first) {
  return static_cast<uint8_t*>(t.tensor.raw()) + static_cast<size_t>(first) * dtype_bytes(t.tensor.dtype());
}

// XORs `n` raw serve-dtype bytes into the replica's storage (char access may alias anything).
void xor_into(uint8_t* dst, const uint8_t* raw, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) dst[i] ^= raw[i];
}

// Decodes the file's frames into the tensors (overwrite or XOR), in parallel batches, and digests each
// frame's result right after writing it (data still in cache). The tensors are in the serve dtype, so a
// frame's bytes are the storage's bytes. done[f] marks frames applied (for undo). `only_done`: re-apply
// just those (undo an XOR). digests: each frame's digest of what the tensors hold, updated to the result;
// with `known` (they are the digests of what is held now) a zero frame of a delta changes nothing and
// keeps its digest, so verifying costs only the changed frames. Returns the result checksum
// (meaningless when only_done).
uint64_t apply_frames(const SnapshotFile& file, const std::vector<const NamedTensor*>& views, ApplyMode mode,
                      std::vector<char>& done, bool only_done, std::vector<uint64_t>& digests, bool known) {
  const ServeDtype dtype = file.header().dtype;
  const int64_t item = serve_dtype_bytes(dtype);
  const std::vector<FrameRange> frames = frame_ranges(file.tensors(), dtype, file.header().chunk_bytes);
  const int threads = std::max(1, omp_get_max_threads());
  std::vector<DecodeScratch> scratch(static_cast<size_t>(threads));
  const size_t batch = 4 * static_cast<size_t>(threads);
  std::vector<std::exception_ptr> errors(frames.size());
  digests.resize(frames.size());
  for (size_t b0 = 0; b0 < frames.size(); b0 += batch) {
    const int64_t count = static_cast<int64_t>(std::min(batch, frames.size() - b0));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t k = 0; k < count; ++k) {
      const size_t f = b0 + static_cast<size_t>(k);
      if (only_done && !done[f]) continue;
      try {
        DecodeScratch& s = scratch[static_cast<size_t>(omp_get_thread_num())];
        const FrameRange& r = frames[f];
        uint8_t* dst = element_bytes(*views[r.tensor], r.first_element);
        const uint64_t n = static_cast<uint64_t>(r.elements * item);
        if (file.zero_frame(f)) {  // all-zero raw bytes: a full's zeros, a delta's unchanged weights
          if (mode == ApplyMode::kOverwrite) std::memset(dst, 0, n);
        } else if (mode == ApplyMode::kOverwrite) {
          file.decode_frame(f, dst, n, s.dctx, s.planes);  // straight into place
        } else {
          s.raw.resize(n);
          file.decode_frame(f, s.raw.data(), n, s.dctx, s.planes);
          xor_into(dst, s.raw.data(), n);
        }
        done[f] = 1;
        const bool unchanged = known && mode == ApplyMode::kXor && file.zero_frame(f);
        if (!only_done && !unchanged) digests[f] = frame_digest(dst, n);
      } catch (...) {
        errors[f] = std::current_exception();
      }
    }
    for (size_t f = b0; f < b0 + static_cast<size_t>(count); ++f)
      if (errors[f]) std::rethrow_exception(errors[f]);
  }
  return result_checksum(digests);
}

// Whether two files lay their frames out alike (the same tensors in the same order): digests carry over.
bool same_layout(const std::vector<SnapshotTensor>& a, const std::vector<SnapshotTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].shape != b[i].shape) return false;
  return true;
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

SnapshotLoader::SnapshotLoader(std::string publish_dir, ServeDtype dtype) : dir_(std::move(publish_dir)), dtype_(dtype) {
  FW_CHECK(!dir_.empty(), "snapshot publish directory is empty; give the run's publish/ directory");
}

// Applies a verified delta file over what is loaded; "" on success, else why not (tensors are
// then as before: a failed checksum after applying is undone by XOR-ing the same frames again).
std::string SnapshotLoader::try_delta(const SnapshotFile& file, int64_t base, uint64_t base_checksum,
                                      const std::vector<NamedTensor>& tensors) {
  const SnapshotHeader& h = file.header();
  const std::string& path = file.path();
  if (h.kind != SnapshotKind::kDelta) return path + " is not a delta";
  if (h.dtype != dtype_)
    return path + " holds " + serve_dtype_name(h.dtype) + " but this replica serves " + serve_dtype_name(dtype_);
  if (h.base_step != base)
    return path + " is a delta over step " + std::to_string(h.base_step) + " but the replica has " +
           (base < 0 ? std::string("nothing") : "step " + std::to_string(base)) + " loaded";
  if (h.base_checksum != base_checksum)
    return path + ": its base (step " + std::to_string(base) + ") had checksum " + hex64(h.base_checksum) +
           " but the replica's step " + std::to_string(base) + " has " + hex64(base_checksum);
  const std::string mismatch = table_mismatch(file.tensors(), tensors);
  if (!mismatch.empty()) return path + ": " + mismatch;
  const std::vector<const NamedTensor*> views = views_in_file_order(file, tensors);
  std::vector<char> done(file.frame_count(), 0);
  // The held weights' digests carry over when they came from a file laid out like this one.
  const bool known = same_layout(digest_layout_, file.tensors());
  std::vector<uint64_t> digests = known ? digests_ : std::vector<uint64_t>();
  try {
    const uint64_t sum = apply_frames(file, views, ApplyMode::kXor, done, false, digests, known);
    if (sum == file.result_checksum()) {
      digests_ = std::move(digests);
      digest_layout_ = file.tensors();
      return "";
    }
    apply_frames(file, views, ApplyMode::kXor, done, true, digests, known);
    return path + ": checksum after applying is " + hex64(sum) + " but the file expects " +
           hex64(file.result_checksum()) + " (delta undone)";
  } catch (const std::exception& e) {
    apply_frames(file, views, ApplyMode::kXor, done, true, digests, known);  // frames applied before the failure
    return plain(e) + " (delta undone)";
  }
}

LoadInfo SnapshotLoader::load(int64_t step, const std::vector<NamedTensor>& tensors) {
  const auto start = std::chrono::steady_clock::now();
  FW_CHECK(step >= 0, "snapshot load of step ", step, " from ", dir_, ": steps are >= 0");
  for (const NamedTensor& t : tensors)
    FW_CHECK(t.tensor.dtype() == storage_dtype(dtype_), "snapshot load into ", t.name, ": the replica stores it in ",
             dtype_name(t.tensor.dtype()), " but serves ", serve_dtype_name(dtype_), " (needs ",
             dtype_name(storage_dtype(dtype_)), " storage)");
  LoadInfo info;
  info.requested_step = step;
  if (step == loaded_step_) {
    info.step = step;
    info.ms = ms_since(start);
    return info;
  }
  const std::string delta = (fs::path(dir_) / snapshot_file_name(step, SnapshotKind::kDelta)).string();
  const std::string full = (fs::path(dir_) / snapshot_file_name(step, SnapshotKind::kFull)).string();
  std::error_code ec;
  const bool delta_exists = fs::exists(delta, ec), full_exists = fs::exists(full, ec);
  std::string why;  // why the direct path (delta over what is loaded) was not usable
  if (loaded_step_ >= 0 && delta_exists) {
    try {
      SnapshotFile file(delta);
      info.bytes_read += file.file_bytes();
      why = try_delta(file, loaded_step_, loaded_checksum_, tensors);
      if (why.empty()) {
        loaded_step_ = step;
        loaded_checksum_ = file.result_checksum();
        info.step = step;
        info.applied_delta = true;
        info.ms = ms_since(start);
        return info;
      }
    } catch (const std::exception& e) {
      why = plain(e);
    }
  } else if (!delta_exists && !full_exists) {
    why = "neither " + delta + " nor " + full + " exists";
  }
  info.fell_back = !why.empty();
  info.reason = why;
  load_full_or_fall_back(step, tensors, info);
  if (!info.fell_back) info.reason.clear();
  info.ms = ms_since(start);
  return info;
}

// The newest usable full snapshot <= step, then the deltas after it while each one's base is what
// is loaded and it verifies. Throws only when no full snapshot is usable.
void SnapshotLoader::load_full_or_fall_back(int64_t step, const std::vector<NamedTensor>& tensors, LoadInfo& info) {
  std::vector<SnapshotEntry> entries;
  try {
    entries = list_snapshots(dir_);
  } catch (const std::exception& e) {
    FW_THROW("no snapshot can be loaded for step ", step, ": ", plain(e));
  }
  std::string problems;
  for (auto it = entries.rbegin(); it != entries.rend() && info.full_step < 0; ++it) {
    if (it->kind != SnapshotKind::kFull || it->step > step) continue;
    try {
      SnapshotFile file(it->path);
      info.bytes_read += file.file_bytes();
      const SnapshotHeader& h = file.header();
      std::string bad = h.kind != SnapshotKind::kFull || h.step != it->step ? "its header says " +
                        std::string(snapshot_kind_name(h.kind)) + " step " + std::to_string(h.step) : "";
      if (bad.empty() && h.dtype != dtype_)
        bad = std::string("it holds ") + serve_dtype_name(h.dtype) + ", the replica serves " + serve_dtype_name(dtype_);
      if (bad.empty()) bad = table_mismatch(file.tensors(), tensors);
      if (!bad.empty()) {
        problems += "; skipped " + it->path + ": " + bad;
        continue;
      }
      loaded_step_ = -1;  // the tensors are being overwritten
      digest_layout_.clear();
      std::vector<char> done(file.frame_count(), 0);
      std::vector<uint64_t> digests;
      const uint64_t sum =
          apply_frames(file, views_in_file_order(file, tensors), ApplyMode::kOverwrite, done, false, digests, false);
      if (sum != file.result_checksum()) {
        problems += "; skipped " + it->path + ": checksum after loading is " + hex64(sum) + ", expected " +
                    hex64(file.result_checksum());
        continue;
      }
      loaded_step_ = it->step;
      loaded_checksum_ = sum;
      digests_ = std::move(digests);
      digest_layout_ = file.tensors();
      info.full_step = it->step;
    } catch (const std::exception& e) {
      problems += "; skipped " + plain(e);
    }
  }
  FW_CHECK(info.full_step >= 0, "no usable full snapshot for step ", step, " in ", dir_,
           problems.empty() ? std::string(": there is no step-<N>.full with N <= ") + std::to_string(step)
                            : problems);
  std::string stop;
  for (const SnapshotEntry& e : entries) {
    if (e.kind != SnapshotKind::kDelta || e.step <= loaded_step_ || e.step > step) continue;
    try {
      SnapshotFile file(e.path);
      info.bytes_read += file.file_bytes();
      stop = file.header().step == e.step ? try_delta(file, loaded_step_, loaded_checksum_, tensors)
                                          : e.path + ": its header says step " + std::to_string(file.header().step);
      if (!stop.empty()) break;
      loaded_step_ = e.step;
      loaded_checksum_ = file.result_checksum();
      ++info.deltas_replayed;
    } catch (const std::exception& e2) {
      stop = plain(e2);
      break;
    }
  }
  info.step = loaded_step_;
  info.reason += std::string(info.reason.empty() ? "" : "; ") + "loaded " +
                 snapshot_file_name(info.full_step, SnapshotKind::kFull) + " and replayed " +
                 std::to_string(info.deltas_replayed) + " delta(s)" + problems;
  if (loaded_step_ != step) {
    info.fell_back = true;
    info.reason += "; step " + std::to_string(step) + " not reached, serving step " + std::to_string(loaded_step_) +
                   (stop.empty() ? ": no snapshot after it up to step " + std::to_string(step) : ": " + stop);
  }
}

}  // namespace flywheel
