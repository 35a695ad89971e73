// H5Handle: owns one HDF5 id and closes it with the matching H5?close when it goes out of scope.
// Use the named constructors so the closer always matches the id's kind:
//   H5Handle file = H5Handle::file(FW_H5_CHECK(H5Fcreate(...)));
// close() closes now and throws on failure: use it for files you wrote (H5Fclose flushes, so its
// error is a write error). The destructor closes silently (it may run during unwinding).
#pragma once

#include <hdf5.h>

#include <utility>

#include "ckpt/h5_check.h"

namespace flywheel {

class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);

  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(H5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }

  static H5Handle file(hid_t id) { return {id, H5Fclose}; }
  static H5Handle group(hid_t id) { return {id, H5Gclose}; }
  static H5Handle dataset(hid_t id) { return {id, H5Dclose}; }
  static H5Handle dataspace(hid_t id) { return {id, H5Sclose}; }
  static H5Handle datatype(hid_t id) { return {id, H5Tclose}; }
  static H5Handle attribute(hid_t id) { return {id, H5Aclose}; }
  static H5Handle plist(hid_t id) { return {id, H5Pclose}; }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

  void close() {
    if (id_ < 0) return;
    const hid_t id = std::exchange(id_, H5I_INVALID_HID);
    if (closer_(id) < 0) FW_THROW("closing HDF5 object failed: ", detail::h5_error_stack_message());
  }

 private:
  void reset() noexcept {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = H5I_INVALID_HID;
  }

  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

}  // namespace flywheel
