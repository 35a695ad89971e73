// FW_MPI_CHECK(call): throws flywheel::Error naming file:line, the call and MPI's error string.
#pragma once

#include <mpi.h>

#include "core/error.h"

namespace flywheel::detail {
std::string mpi_error_string(int code);
}

#define FW_MPI_CHECK(call)                                                                      \
  do {                                                                                          \
    const int fw_mpi_rc = (call);                                                               \
    if (fw_mpi_rc != MPI_SUCCESS) FW_THROW(#call, " failed: ", ::flywheel::detail::mpi_error_string(fw_mpi_rc)); \
  } while (0)
