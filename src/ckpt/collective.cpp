#include "ckpt/collective.h"

#include <exception>

#include "core/error.h"

namespace flywheel {

void broadcast_string(Comm& comm, std::string& text, int root) {
  int64_t length = comm.rank() == root ? static_cast<int64_t>(text.size()) : 0;
  comm.control().broadcast(&length, sizeof(length), root);
  text.resize(static_cast<size_t>(length));
  if (length > 0) comm.control().broadcast(text.data(), length, root);
}

std::vector<std::string> gather_strings(Comm& comm, const std::string& local) {
  std::vector<std::string> all(static_cast<size_t>(comm.size()));
  for (int r = 0; r < comm.size(); ++r) {
    if (r == comm.rank()) all[r] = local;
    broadcast_string(comm, all[r], r);
  }
  return all;
}

void throw_if_any_rank_failed(Comm& comm, const std::string& local_error, const std::string& what, bool input) {
  double failures = local_error.empty() ? 0.0 : 1.0;
  comm.control().all_reduce_sum(&failures, 1);
  if (failures == 0) return;
  const std::vector<std::string> errors = gather_strings(comm, local_error);
  std::string message = what + " failed on " + std::to_string(static_cast<int64_t>(failures)) + " of " +
                        std::to_string(comm.size()) + " rank(s):";
  for (int r = 0; r < comm.size(); ++r)
    if (!errors[r].empty()) message += "\n  rank " + std::to_string(r) + ": " + errors[r];
  if (input) FW_INPUT_THROW(message);
  FW_THROW(message);
}

std::string run_on_root(Comm& comm, const std::string& what, const std::function<std::string()>& work) {
  // Byte 0 of the broadcast message says whether `work` succeeded; the rest is its result or error.
  std::string message;
  if (comm.rank() == 0) {
    try {
      const std::string result = work();
      message.reserve(result.size() + 1);
      message.push_back('1');
      message += result;
    } catch (const std::exception& e) {
      message = std::string("0") + e.what();
    }
  }
  broadcast_string(comm, message, 0);
  FW_CHECK(!message.empty(), what, ": empty reply from rank 0");
  if (message[0] != '1') FW_THROW(what, " failed on rank 0: ", message.substr(1));
  return message.substr(1);
}

}  // namespace flywheel
