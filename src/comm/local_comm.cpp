#include "comm/local_comm.h"

#include <algorithm>

#include "core/error.h"

namespace flywheel {
namespace {

class LocalComm final : public Comm {
 public:
  explicit LocalComm(std::string name) : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }

  void barrier() override {}
  // A sum, max or gather over one rank is the rank's own data; no bytes leave the process.
  void all_reduce_sum(float*, int64_t) override { record(CommOp::kAllReduce, 0); }
  void all_reduce_sum(double*, int64_t) override { record(CommOp::kAllReduce, 0); }
  void all_reduce_max(double*, int64_t) override { record(CommOp::kAllReduce, 0); }
  void all_gather(const float* in, int64_t count, float* out) override {
    if (in != out) std::copy(in, in + count, out);
    record(CommOp::kAllGather, 0);
  }
  void reduce_scatter_sum(const float* in, float* out, int64_t count) override {
    if (in != out) std::copy(in, in + count, out);
    record(CommOp::kReduceScatter, 0);
  }
  void all_gather_v(const float* in, float* out, const std::vector<int64_t>& counts) override {
    FW_CHECK(counts.size() == 1, "all_gather_v on local comm ", name_, ": needs one count (size 1)");
    if (in != out) std::copy(in, in + counts[0], out);
    record(CommOp::kAllGather, 0);
  }
  void reduce_scatter_v(const float* in, float* out, const std::vector<int64_t>& counts) override {
    FW_CHECK(counts.size() == 1, "reduce_scatter_v on local comm ", name_, ": needs one count (size 1)");
    if (in != out) std::copy(in, in + counts[0], out);
    record(CommOp::kReduceScatter, 0);
  }
  void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                    const std::vector<int64_t>& recv_counts) override {
    FW_CHECK(send_counts.size() == 1 && recv_counts.size() == 1 && send_counts[0] == recv_counts[0],
             "all_to_all_v on local comm ", name_, ": needs one count, equal for send and receive");
    if (send != recv) std::copy(send, send + send_counts[0], recv);
    record(CommOp::kAllToAll, 0);
  }
  void broadcast(void*, int64_t, int root) override {
    FW_CHECK(root == 0, "broadcast on local comm ", name_, ": root ", root, " does not exist (size 1)");
    record(CommOp::kBroadcast, 0);
  }
  void send(const float*, int64_t, int peer, int) override {
    FW_THROW("send on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  void recv(float*, int64_t, int peer, int) override {
    FW_THROW("recv on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  std::unique_ptr<CommRequest> isend(const float*, int64_t, int peer, int) override {
    FW_THROW("isend on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  void send_bytes(const void*, int64_t, int peer, int) override {
    FW_THROW("send_bytes on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  std::vector<uint8_t> recv_bytes(int peer, int, Envelope*) override {
    FW_THROW("recv_bytes on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  bool probe(int, int, Envelope*) override { return false; }  // nobody else can have sent anything
  std::unique_ptr<Comm> split(int color, int, const std::string& name) override {
    if (color < 0) return nullptr;  // MPI_UNDEFINED semantics: this rank joins no group
    return std::make_unique<LocalComm>(name);
  }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<Comm> make_local_comm(const std::string& name) { return std::make_unique<LocalComm>(name); }

}  // namespace flywheel
