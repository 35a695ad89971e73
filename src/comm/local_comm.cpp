#include "comm/local_comm.h"

#include <cstring>

#include "core/error.h"

namespace flywheel {
namespace {

// One rank: reductions and broadcasts leave the data as it is; there is no peer to talk to.
class LocalControl final : public ControlChannel {
 public:
  explicit LocalControl(std::string name) : name_(std::move(name)) {}
  void barrier() override {}
  void broadcast(void*, int64_t, int root) override {
    FW_CHECK(root == 0, "broadcast on local comm ", name_, ": root ", root, " does not exist (size 1)");
  }
  void all_reduce_sum(double*, int64_t) override {}
  void all_reduce_max(double*, int64_t) override {}
  void send(const void*, int64_t, int peer, int) override {
    FW_THROW("send on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  std::vector<uint8_t> recv(int peer, int, Envelope*) override {
    FW_THROW("recv on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  bool probe(int, int, Envelope*) override { return false; }  // nobody else can have sent anything

 private:
  std::string name_;
};

class LocalComm final : public Comm {
 public:
  explicit LocalComm(std::string name) : name_(std::move(name)), control_(name_) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }

  // A sum, max or gather over one rank is the rank's own data; no bytes leave the process.
  void all_reduce(void*, int64_t, DType, ReduceOp, CommStream*) override { record(CommOp::kAllReduce, 0); }
  void all_gather(const void* in, int64_t count, DType dtype, void* out, CommStream*) override {
    copy(in, out, count, dtype);
    record(CommOp::kAllGather, 0);
  }
  void reduce_scatter(const void* in, void* out, int64_t count, DType dtype, CommStream*) override {
    copy(in, out, count, dtype);
    record(CommOp::kReduceScatter, 0);
  }
  void all_gather_v(const void* in, void* out, const std::vector<int64_t>& counts, DType dtype,
                    CommStream*) override {
    FW_CHECK(counts.size() == 1, "all_gather_v on local comm ", name_, ": needs one count (size 1)");
    copy(in, out, counts[0], dtype);
    record(CommOp::kAllGather, 0);
  }
  void reduce_scatter_v(const void* in, void* out, const std::vector<int64_t>& counts, DType dtype,
                        CommStream*) override {
    FW_CHECK(counts.size() == 1, "reduce_scatter_v on local comm ", name_, ": needs one count (size 1)");
    copy(in, out, counts[0], dtype);
    record(CommOp::kReduceScatter, 0);
  }
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                    const std::vector<int64_t>& recv_counts, DType dtype, CommStream*) override {
    FW_CHECK(send_counts.size() == 1 && recv_counts.size() == 1 && send_counts[0] == recv_counts[0],
             "all_to_all_v on local comm ", name_, ": needs one count, equal for send and receive");
    copy(send, recv, send_counts[0], dtype);
    record(CommOp::kAllToAll, 0);
  }
  void broadcast(void*, int64_t, DType, int root, CommStream*) override {
    FW_CHECK(root == 0, "broadcast on local comm ", name_, ": root ", root, " does not exist (size 1)");
    record(CommOp::kBroadcast, 0);
  }
  void send(const void*, int64_t, DType, int peer, int, CommStream*) override {
    FW_THROW("send on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  void recv(void*, int64_t, DType, int peer, int, CommStream*) override {
    FW_THROW("recv on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  std::unique_ptr<CommRequest> isend(const void*, int64_t, DType, int peer, int, CommStream*) override {
    FW_THROW("isend on local comm ", name_, ": there is no peer ", peer, " in a group of 1");
  }
  ControlChannel& control() override { return control_; }
  std::unique_ptr<Comm> split(int color, int, const std::string& name) override {
    if (color < 0) return nullptr;  // MPI_UNDEFINED semantics: this rank joins no group
    return std::make_unique<LocalComm>(name);
  }

 private:
  static void copy(const void* in, void* out, int64_t count, DType dtype) {
    if (in != out) std::memcpy(out, in, static_cast<size_t>(count) * dtype_bytes(dtype));
  }

  std::string name_;
  LocalControl control_;
};

}  // namespace

std::unique_ptr<Comm> make_local_comm(const std::string& name) { return std::make_unique<LocalComm>(name); }

}  // namespace flywheel
