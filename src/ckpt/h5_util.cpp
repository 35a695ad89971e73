#include "ckpt/h5_util.h"

namespace flywheel {
namespace {

H5Handle file_access_plist() {
  H5Handle fapl = H5Handle::plist(FW_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
  FW_H5_CHECK(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI));
  FW_H5_CHECK(H5Pset_file_locking(fapl.get(), false, true));
  return fapl;
}

H5Handle utf8_string_type() {
  H5Handle type = H5Handle::datatype(FW_H5_CHECK(H5Tcopy(H5T_C_S1)));
  FW_H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE));
  FW_H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

void write_attr(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type, hid_t space, const void* data) {
  if (FW_H5_CHECK(H5Aexists(loc, name.c_str())) > 0) FW_H5_CHECK(H5Adelete(loc, name.c_str()));
  H5Handle attr =
      H5Handle::attribute(FW_H5_CHECK(H5Acreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT)));
  FW_H5_CHECK(H5Awrite(attr.get(), mem_type, data));
}

H5Handle open_attr(hid_t loc, const std::string& name) {
  FW_CHECK(FW_H5_CHECK(H5Aexists(loc, name.c_str())) > 0, "HDF5 attribute '", name, "' is missing");
  return H5Handle::attribute(FW_H5_CHECK(H5Aopen(loc, name.c_str(), H5P_DEFAULT)));
}

int64_t element_count(hid_t attr_or_dataset_space) {
  const hssize_t n = FW_H5_CHECK(H5Sget_simple_extent_npoints(attr_or_dataset_space));
  return static_cast<int64_t>(n);
}

}  // namespace

H5Handle h5_create_file(const std::string& path) {
  h5_silence_error_printing();
  H5Handle fapl = file_access_plist();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (id < 0) FW_THROW("cannot create HDF5 file ", path, ": ", detail::h5_error_stack_message());
  return H5Handle::file(id);
}

H5Handle h5_open_file_readonly(const std::string& path) {
  h5_silence_error_printing();
  H5Handle fapl = file_access_plist();
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0)
    FW_INPUT_THROW("cannot open ", path, ": not a readable HDF5 file (", detail::h5_error_cause(), ")");
  return H5Handle::file(id);
}

H5Handle h5_create_group(hid_t loc, const std::string& name) {
  return H5Handle::group(FW_H5_CHECK(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
}

H5Handle h5_open_group(hid_t loc, const std::string& name) {
  return H5Handle::group(FW_H5_CHECK(H5Gopen2(loc, name.c_str(), H5P_DEFAULT)));
}

bool h5_link_exists(hid_t loc, const std::string& name) {
  return FW_H5_CHECK(H5Lexists(loc, name.c_str(), H5P_DEFAULT)) > 0;
}

std::vector<std::string> h5_list_group(hid_t group) {
  H5G_info_t info;
  FW_H5_CHECK(H5Gget_info(group, &info));
  std::vector<std::string> names;
  names.reserve(info.nlinks);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t length =
        FW_H5_CHECK(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name(static_cast<size_t>(length), '\0');
    FW_H5_CHECK(
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT));
    names.push_back(std::move(name));
  }
  return names;
}

H5Handle h5_dataset_create_plist() {
  H5Handle dcpl = H5Handle::plist(FW_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
  FW_H5_CHECK(H5Pset_obj_track_times(dcpl.get(), false));
  return dcpl;
}

void h5_write_attr_int64(hid_t loc, const std::string& name, int64_t value) {
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Screate(H5S_SCALAR)));
  write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), &value);
}

void h5_write_attr_int64s(hid_t loc, const std::string& name, const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Screate_simple(1, &n, nullptr)));
  write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), values.data());
}

void h5_write_attr_uint64(hid_t loc, const std::string& name, uint64_t value) {
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Screate(H5S_SCALAR)));
  write_attr(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, space.get(), &value);
}

void h5_write_attr_string(hid_t loc, const std::string& name, const std::string& text) {
  H5Handle type = utf8_string_type();
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Screate(H5S_SCALAR)));
  const char* pointer = text.c_str();
  write_attr(loc, name, type.get(), type.get(), space.get(), &pointer);
}

std::vector<int64_t> h5_read_attr_int64s(hid_t loc, const std::string& name) {
  H5Handle attr = open_attr(loc, name);
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Aget_space(attr.get())));
  std::vector<int64_t> values(static_cast<size_t>(element_count(space.get())));
  FW_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()));
  return values;
}

int64_t h5_read_attr_int64(hid_t loc, const std::string& name) {
  const std::vector<int64_t> values = h5_read_attr_int64s(loc, name);
  FW_CHECK(values.size() == 1, "HDF5 attribute '", name, "' holds ", values.size(), " values, expected 1");
  return values[0];
}

uint64_t h5_read_attr_uint64(hid_t loc, const std::string& name) {
  H5Handle attr = open_attr(loc, name);
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Aget_space(attr.get())));
  FW_CHECK(element_count(space.get()) == 1, "HDF5 attribute '", name, "' must hold one value");
  uint64_t value = 0;
  FW_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_UINT64, &value));
  return value;
}

std::string h5_read_attr_string(hid_t loc, const std::string& name) {
  H5Handle attr = open_attr(loc, name);
  H5Handle file_type = H5Handle::datatype(FW_H5_CHECK(H5Aget_type(attr.get())));
  FW_CHECK(H5Tget_class(file_type.get()) == H5T_STRING, "HDF5 attribute '", name, "' is not a string");
  if (FW_H5_CHECK(H5Tis_variable_str(file_type.get())) > 0) {
    H5Handle type = utf8_string_type();
    char* pointer = nullptr;
    FW_H5_CHECK(H5Aread(attr.get(), type.get(), &pointer));
    std::string text = pointer ? pointer : "";
    H5free_memory(pointer);
    return text;
  }
  // Fixed-length (as written by other tools, e.g. numpy bytes): read the bytes, drop padding.
  const size_t size = H5Tget_size(file_type.get());
  std::string text(size, '\0');
  FW_H5_CHECK(H5Aread(attr.get(), file_type.get(), text.data()));
  text.resize(text.find_last_not_of('\0') + 1);
  return text;
}

void h5_write_uint64_table(hid_t loc, const std::string& name, const std::vector<uint64_t>& values) {
  const hsize_t n = values.size();
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Screate_simple(1, &n, nullptr)));
  H5Handle dcpl = h5_dataset_create_plist();
  H5Handle dataset = H5Handle::dataset(
      FW_H5_CHECK(H5Dcreate2(loc, name.c_str(), H5T_STD_U64LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT)));
  FW_H5_CHECK(H5Dwrite(dataset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
}

std::vector<uint64_t> h5_read_uint64_table(hid_t loc, const std::string& name) {
  H5Handle dataset = H5Handle::dataset(FW_H5_CHECK(H5Dopen2(loc, name.c_str(), H5P_DEFAULT)));
  H5Handle space = H5Handle::dataspace(FW_H5_CHECK(H5Dget_space(dataset.get())));
  std::vector<uint64_t> values(static_cast<size_t>(element_count(space.get())));
  FW_H5_CHECK(H5Dread(dataset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
  return values;
}

}  // namespace flywheel
