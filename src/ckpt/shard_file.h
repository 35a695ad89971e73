// One rank's shard file, shard-%05d.h5: datasets /weight/<name>, /adam_m/<name>, /adam_v/<name>
// holding that rank's rows of each tensor (float32 little-endian, shape [rows, global_shape[1:]...]),
// each with attributes global_shape and offset = {row_begin, 0, ...}. Written with the serial HDF5
// API: one writer per file, so no parallel-I/O coordination is needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/checksum.h"
#include "ckpt/h5_handle.h"
#include "ckpt/shard_layout.h"
#include "ckpt/tensor_slice.h"

namespace flywheel {

struct ShardHeader {
  int rank = 0;
  int world_size = 1;
  int64_t step = 0;
};

// The pieces `slices` contribute (zero-row slices and null moments contribute none).
std::vector<ShardPiece> shard_pieces(const std::vector<TensorSlice>& slices, int shard);

// Creates `path`, fills it, fsyncs it (not its directory) and returns its size and XXH3-64 (exactly
// what digest_file would compute), hashing the tensor data from memory as it is written rather than
// reading the file back. HDF5 writes only the structure (attributes, groups, dataset headers, with
// each dataset's contiguous storage allocated but left unwritten); the tensor rows then go straight
// from `slices` into those byte ranges as large sequential writes (write_extents_and_digest).
FileDigest write_shard_file(const std::string& path, const ShardHeader& header,
                            const std::vector<TensorSlice>& slices);

// Lists what shard file `shard` holds, from its datasets' global_shape/offset attributes; checks
// each dataset's shape agrees with them. Throws naming the file and dataset otherwise.
std::vector<ShardPiece> read_shard_index(const std::string& path, int shard);

// Copies rows [first_row, first_row + rows) (global row numbers, inside `piece`) of `piece`'s
// dataset in the open shard `file` to dst (row-major, rows * row_elements floats).
void read_piece_rows(hid_t file, const ShardPiece& piece, int64_t first_row, int64_t rows, float* dst);

}  // namespace flywheel
