// Small typed helpers over the HDF5 C API for the checkpoint files: create/open files, attributes
// (int64 / uint64 scalars and arrays, UTF-8 strings), uint64 tables, and listing a group.
// All of them throw flywheel::Error naming the object and HDF5's message on failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/h5_handle.h"

namespace flywheel {

// File access for checkpoint files: the default (serial, POSIX "sec2") driver; H5Fclose fails if
// an object is still open (so "closed" means every byte was handed to the OS); no file locks
// (committed files are immutable, and flock fails on some parallel file systems).
H5Handle h5_create_file(const std::string& path);  // truncates an existing file
H5Handle h5_open_file_readonly(const std::string& path);
H5Handle h5_create_group(hid_t loc, const std::string& name);
H5Handle h5_open_group(hid_t loc, const std::string& name);
bool h5_link_exists(hid_t loc, const std::string& name);
// Names of the links (datasets, groups) directly under `group`, in name order.
std::vector<std::string> h5_list_group(hid_t group);

// Dataset creation properties: no object timestamps, so the same tensors give the same bytes.
H5Handle h5_dataset_create_plist();

void h5_write_attr_int64(hid_t loc, const std::string& name, int64_t value);                        // scalar
void h5_write_attr_int64s(hid_t loc, const std::string& name, const std::vector<int64_t>& values);  // 1-D
void h5_write_attr_uint64(hid_t loc, const std::string& name, uint64_t value);                      // scalar
void h5_write_attr_string(hid_t loc, const std::string& name, const std::string& text);  // variable-length UTF-8

// Readers accept a scalar or a 1-D attribute; the scalar readers require exactly one element.
std::vector<int64_t> h5_read_attr_int64s(hid_t loc, const std::string& name);
int64_t h5_read_attr_int64(hid_t loc, const std::string& name);
uint64_t h5_read_attr_uint64(hid_t loc, const std::string& name);
std::string h5_read_attr_string(hid_t loc, const std::string& name);

void h5_write_uint64_table(hid_t loc, const std::string& name, const std::vector<uint64_t>& values);
std::vector<uint64_t> h5_read_uint64_table(hid_t loc, const std::string& name);

}  // namespace flywheel
