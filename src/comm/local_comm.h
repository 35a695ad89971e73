// A Comm for one process without MPI: rank 0 of a group of 1, every collective a local copy.
// For unit tests (which do not initialise MPI), the single-rank trainer and offline tools.
// make_local_comm(name) is declared in comm/comm.h beside make_mpi_world_comm; this header exists
// so callers can say which backend they mean.
#pragma once

#include "comm/comm.h"
