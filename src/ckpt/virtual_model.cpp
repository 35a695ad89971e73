#include "ckpt/virtual_model.h"

#include <limits>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/h5_util.h"
#include "ckpt/tensor_slice.h"
#include "core/error.h"

namespace flywheel {
namespace {

void write_virtual_dataset(hid_t group, const std::string& group_name, const std::vector<ShardPiece>& pieces) {
  const ShardPiece& first = pieces.front();
  const std::vector<hsize_t> global(first.global_shape.begin(), first.global_shape.end());
  const int ndims = static_cast<int>(global.size());
  H5Handle virtual_space = H5Handle::dataspace(FW_H5_CHECK(H5Screate_simple(ndims, global.data(), nullptr)));
  H5Handle dcpl = h5_dataset_create_plist();
  // Rows whose source is unreadable read as NaN, not as plausible zeros.
  const float fill = std::numeric_limits<float>::quiet_NaN();
  FW_H5_CHECK(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_FLOAT, &fill));
  const std::string source_dataset = "/" + group_name + "/" + first.name;
  for (const ShardPiece& p : pieces) {
    std::vector<hsize_t> start(global.size(), 0), count = global;
    start[0] = static_cast<hsize_t>(p.row_begin);
    count[0] = static_cast<hsize_t>(p.row_end - p.row_begin);
    H5Handle source_space = H5Handle::dataspace(FW_H5_CHECK(H5Screate_simple(ndims, count.data(), nullptr)));
    FW_H5_CHECK(
        H5Sselect_hyperslab(virtual_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
    FW_H5_CHECK(H5Pset_virtual(dcpl.get(), virtual_space.get(), shard_file_name(p.shard).c_str(),
                               source_dataset.c_str(), source_space.get()));
  }
  FW_H5_CHECK(H5Sselect_all(virtual_space.get()));
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(H5Dcreate2(
      group, first.name.c_str(), H5T_IEEE_F32LE, virtual_space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT)));
  h5_write_attr_int64s(dataset.get(), "global_shape", first.global_shape);
}

}  // namespace

void write_virtual_model(const std::string& path, const PieceIndex& index) {
  try {
    H5Handle file = h5_create_file(path);
    h5_write_attr_int64(file.get(), "format_version", kCheckpointFormatVersion);
    for (SliceArray array : kSliceArrays) {
      const std::string group_name = slice_array_group(array);
      H5Handle group = h5_create_group(file.get(), group_name);
      for (const auto& [key, pieces] : index)
        if (key.first == group_name) write_virtual_dataset(group.get(), group_name, pieces);
    }
    file.close();
  } catch (const Error& e) {
    FW_THROW("writing checkpoint model view ", path, ": ", e.what());
  }
}

}  // namespace flywheel
