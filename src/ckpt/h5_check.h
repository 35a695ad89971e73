// FW_H5_CHECK(call): evaluates an HDF5 call and throws flywheel::Error naming file:line, the call and
// HDF5's own message when it returns a negative value (HDF5's error convention for herr_t and hid_t).
// It is an expression, so ids can be taken straight from it:
//   hid_t file = FW_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl));
#pragma once

#include <string>

#include "core/error.h"

namespace flywheel {

// Turns off HDF5's automatic printing of its error stack to stderr (once per process). Our checks
// report the stack's message inside the exception instead. Every ckpt entry point calls it.
void h5_silence_error_printing();

namespace detail {
// The current HDF5 error stack as one line: the top (API) message, and the innermost cause when it
// differs (that is where "errno = 2, No such file or directory" lives). Clears the stack.
std::string h5_error_stack_message();
// Only the deepest cause's description ("truncated file: eof = 1000, ..."), for a user's message.
std::string h5_error_cause();

template <typename T>
T h5_check(T rc, const char* call, const char* file, int line) {
  if (rc < 0) throw_error(file, line, concat(call, " failed: ", h5_error_stack_message()));
  return rc;
}
}  // namespace detail

}  // namespace flywheel

#define FW_H5_CHECK(call) ::flywheel::detail::h5_check((call), #call, __FILE__, __LINE__)
