// Agreement helpers for the checkpoint protocol, on the control plane (Comm::control()): every rank
// must reach the same verdict (proceed, fall back, or throw), or one rank would wait forever in a
// collective the others skipped.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "comm/comm.h"

namespace flywheel {

// Root's `text` replaces everyone's (length first, then bytes).
void broadcast_string(Comm& comm, std::string& text, int root);

// Every rank gets every rank's string, indexed by rank. One broadcast pair per rank: O(ranks)
// latency, fine for the few kilobytes of metadata a checkpoint exchanges.
std::vector<std::string> gather_strings(Comm& comm, const std::string& local);

// Collective: returns when `local_error` is empty on every rank; otherwise throws on every rank a
// message starting with `what` and listing each failing rank's error.
// `input`: the failures are about the user's checkpoint (a tensor it lacks), so an InputError.
void throw_if_any_rank_failed(Comm& comm, const std::string& local_error, const std::string& what,
                              bool input = false);

// Runs `work` on rank 0 only and broadcasts its result string; if it threw, every rank throws the
// root's message (prefixed with `what`). The broadcast also orders the ranks: none returns before
// rank 0 has finished `work`.
std::string run_on_root(Comm& comm, const std::string& what, const std::function<std::string()>& work);

}  // namespace flywheel
