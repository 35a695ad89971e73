#include "ckpt/shard_file.h"

#include <bit>
#include <limits>

#include "ckpt/checkpoint.h"
#include "ckpt/h5_util.h"
#include "core/error.h"

namespace flywheel {
namespace {

std::vector<hsize_t> local_dims(const std::vector<int64_t>& global_shape, int64_t rows) {
  std::vector<hsize_t> dims(global_shape.begin(), global_shape.end());
  dims[0] = static_cast<hsize_t>(rows);
  return dims;
}

// Creates the dataset for `slice`'s rows with its storage allocated now (so its file offset is known)
// and never filled (HDF5 writes no bytes there: the caller writes the rows itself), and returns where
// those rows go in the file.
MemoryExtent create_piece(hid_t group, const std::string& group_name, const TensorSlice& slice, const float* data) {
  // The file type is H5T_IEEE_F32LE and the rows are copied verbatim, so memory must be little-endian
  // IEEE float32 (HDF5 converts on H5Dwrite; the raw write does not).
  static_assert(std::endian::native == std::endian::little && std::numeric_limits<float>::is_iec559,
                "raw shard writes assume little-endian IEEE-754 float32");
  const std::vector<hsize_t> dims = local_dims(slice.global_shape, slice_rows(slice));
  H5Handle space =
      H5Handle::dataspace(FW_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  H5Handle dcpl = h5_dataset_create_plist();
  FW_H5_CHECK(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS));
  FW_H5_CHECK(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY));
  FW_H5_CHECK(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(
      H5Dcreate2(group, slice.name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT)));
  std::vector<int64_t> offset(slice.global_shape.size(), 0);
  offset[0] = slice.row_begin;
  h5_write_attr_int64s(dataset.get(), "global_shape", slice.global_shape);
  h5_write_attr_int64s(dataset.get(), "offset", offset);

  const uint64_t bytes = static_cast<uint64_t>(slice_rows(slice) * row_elements(slice.global_shape)) * sizeof(float);
  const haddr_t address = H5Dget_offset(dataset.get());
  const hsize_t storage = H5Dget_storage_size(dataset.get());
  FW_CHECK(address != HADDR_UNDEF && storage == bytes, "dataset /", group_name, "/", slice.name,
           ": HDF5 did not allocate its ", bytes, " bytes of contiguous storage up front (offset ",
           address == HADDR_UNDEF ? std::string("undefined") : std::to_string(address), ", ", storage, " bytes)");
  return {static_cast<uint64_t>(address), bytes, data};
}

ShardPiece read_piece_header(hid_t group, const std::string& group_name, const std::string& name, int shard) {
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(H5Dopen2(group, name.c_str(), H5P_DEFAULT)));
  ShardPiece piece;
  piece.shard = shard;
  piece.group = group_name;
  piece.name = name;
  piece.global_shape = h5_read_attr_int64s(dataset.get(), "global_shape");
  const std::vector<int64_t> offset = h5_read_attr_int64s(dataset.get(), "offset");
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Dget_space(dataset.get())));
  const int rank = FW_H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  FW_H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  const std::vector<int64_t> local(dims.begin(), dims.end());

  FW_CHECK(!piece.global_shape.empty() && offset.size() == piece.global_shape.size() &&
               local.size() == piece.global_shape.size(),
           "dataset /", group_name, "/", name, ": global_shape ", shape_text(piece.global_shape), ", offset ",
           shape_text(offset), " and shape ", shape_text(local), " must have the same number of dimensions");
  for (size_t d = 1; d < local.size(); ++d)
    FW_CHECK(offset[d] == 0 && local[d] == piece.global_shape[d], "dataset /", group_name, "/", name, ": shape ",
             shape_text(local), " at offset ", shape_text(offset), " is not a row range of global shape ",
             shape_text(piece.global_shape), " (only dim 0 may be split)");
  piece.row_begin = offset[0];
  piece.row_end = offset[0] + local[0];
  FW_CHECK(piece.row_begin >= 0 && piece.row_end <= piece.global_shape[0], "dataset /", group_name, "/", name,
           ": rows [", piece.row_begin, ", ", piece.row_end, ") exceed global shape ",
           shape_text(piece.global_shape));
  return piece;
}

}  // namespace

std::vector<ShardPiece> shard_pieces(const std::vector<TensorSlice>& slices, int shard) {
  std::vector<ShardPiece> pieces;
  for (const TensorSlice& slice : slices) {
    if (slice_rows(slice) == 0) continue;
    for (SliceArray array : kSliceArrays)
      if (slice_array(slice, array).defined())
        pieces.push_back(
            {shard, slice_array_group(array), slice.name, slice.global_shape, slice.row_begin, slice.row_end});
  }
  return pieces;
}

FileDigest write_shard_file(const std::string& path, const ShardHeader& header,
                            const std::vector<TensorSlice>& slices) {
  try {
    std::vector<MemoryExtent> extents;
    H5Handle file = h5_create_file(path);
    h5_write_attr_int64(file.get(), "format_version", kCheckpointFormatVersion);
    h5_write_attr_int64(file.get(), "rank", header.rank);
    h5_write_attr_int64(file.get(), "world_size", header.world_size);
    h5_write_attr_int64(file.get(), "step", header.step);
    for (SliceArray array : kSliceArrays) {
      const std::string group_name = slice_array_group(array);
      H5Handle group = h5_create_group(file.get(), group_name);
      for (const TensorSlice& slice : slices)
        if (slice_rows(slice) > 0 && slice_array(slice, array).defined())
          extents.push_back(create_piece(group.get(), group_name, slice, slice_array(slice, array).data<float>()));
    }
    // After the close HDF5 has written every structural byte and never touches the file again, so
    // the data written next cannot be overwritten, and the bytes between extents are final.
    file.close();
    return write_extents_and_digest(path, std::move(extents));
  } catch (const Error& e) {
    FW_THROW("writing checkpoint shard ", path, ": ", e.what());
  }
}

std::vector<ShardPiece> read_shard_index(const std::string& path, int shard) {
  std::vector<ShardPiece> pieces;
  try {
    H5Handle file = h5_open_file_readonly(path);
    for (SliceArray array : kSliceArrays) {
      const std::string group_name = slice_array_group(array);
      if (!h5_link_exists(file.get(), group_name)) continue;
      H5Handle group = h5_open_group(file.get(), group_name);
      for (const std::string& name : h5_list_group(group.get()))
        pieces.push_back(read_piece_header(group.get(), group_name, name, shard));
    }
  } catch (const Error& e) {
    FW_THROW("reading the tensor list of checkpoint shard ", path, ": ", e.what());
  }
  return pieces;
}

void read_piece_rows(hid_t file, const ShardPiece& piece, int64_t first_row, int64_t rows, float* dst) {
  FW_CHECK(first_row >= piece.row_begin && first_row + rows <= piece.row_end, "rows [", first_row, ", ",
           first_row + rows, ") are not inside shard ", piece.shard, "'s piece of ", piece.name);
  const std::string path = "/" + piece.group + "/" + piece.name;
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(H5Dopen2(file, path.c_str(), H5P_DEFAULT)));
  H5Handle file_space = H5Handle::dataspace(FW_H5_CHECK(H5Dget_space(dataset.get())));
  std::vector<hsize_t> start(piece.global_shape.size(), 0);
  std::vector<hsize_t> count = local_dims(piece.global_shape, rows);
  start[0] = static_cast<hsize_t>(first_row - piece.row_begin);
  FW_H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
  H5Handle mem_space =
      H5Handle::dataspace(FW_H5_CHECK(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr)));
  FW_H5_CHECK(H5Dread(dataset.get(), H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(), H5P_DEFAULT, dst));
}

}  // namespace flywheel
