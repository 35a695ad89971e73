// The MPI backend of Comm. Byte counters record what this rank sends under a bandwidth-optimal
// (ring) algorithm, the convention of nccl-tests' "bus bandwidth": all-reduce 2(P-1)/P x N,
// all-gather and reduce-scatter (P-1) x the per-rank block, all-to-all the off-rank send counts.
#include <climits>

#include "comm/comm.h"
#include "comm/mpi_check.h"

namespace flywheel {

namespace detail {
std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, length);
}
}  // namespace detail

const char* comm_op_name(CommOp op) {
  switch (op) {
    case CommOp::kAllReduce: return "all_reduce";
    case CommOp::kAllGather: return "all_gather";
    case CommOp::kReduceScatter: return "reduce_scatter";
    case CommOp::kAllToAll: return "all_to_all";
    case CommOp::kBroadcast: return "broadcast";
    case CommOp::kSendRecv: return "send_recv";
    case CommOp::kCount: break;
  }
  return "?";
}

uint64_t CommCounters::total_bytes() const {
  uint64_t total = 0;
  for (uint64_t b : bytes_sent) total += b;
  return total;
}

namespace {

class MpiRequest final : public CommRequest {
 public:
  explicit MpiRequest(MPI_Request request) : request_(request) {}
  ~MpiRequest() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }
  void wait() override { FW_MPI_CHECK(MPI_Wait(&request_, MPI_STATUS_IGNORE)); }

 private:
  MPI_Request request_;
};

int to_int(int64_t count, const char* what) {
  FW_CHECK(count >= 0 && count <= INT_MAX, what, ": element count ", count, " exceeds MPI's int range");
  return static_cast<int>(count);
}

class MpiComm final : public Comm {
 public:
  MpiComm(MPI_Comm comm, std::string name, bool owned) : comm_(comm), name_(std::move(name)), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }

  void barrier() override { FW_MPI_CHECK(MPI_Barrier(comm_)); }

  void all_reduce_sum(float* data, int64_t count) override {
    FW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, to_int(count, "all_reduce"), MPI_FLOAT, MPI_SUM, comm_));
    count_ring_all_reduce(count * sizeof(float));
  }
  void all_reduce_sum(double* data, int64_t count) override {
    FW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, to_int(count, "all_reduce"), MPI_DOUBLE, MPI_SUM, comm_));
    count_ring_all_reduce(count * sizeof(double));
  }
  void all_reduce_max(double* data, int64_t count) override {
    FW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, to_int(count, "all_reduce"), MPI_DOUBLE, MPI_MAX, comm_));
    count_ring_all_reduce(count * sizeof(double));
  }
  void all_gather(const float* in, int64_t count, float* out) override {
    const int n = to_int(count, "all_gather");
    FW_MPI_CHECK(MPI_Allgather(in, n, MPI_FLOAT, out, n, MPI_FLOAT, comm_));
    record(CommOp::kAllGather, static_cast<uint64_t>(size_ - 1) * count * sizeof(float));
  }
  void reduce_scatter_sum(const float* in, float* out, int64_t count) override {
    FW_MPI_CHECK(MPI_Reduce_scatter_block(in, out, to_int(count, "reduce_scatter"), MPI_FLOAT, MPI_SUM, comm_));
    record(CommOp::kReduceScatter, static_cast<uint64_t>(size_ - 1) * count * sizeof(float));
  }
  void all_gather_v(const float* in, float* out, const std::vector<int64_t>& counts) override {
    std::vector<int> c, displ;
    const int64_t total = int_counts(counts, "all_gather_v", c, displ);
    FW_MPI_CHECK(MPI_Allgatherv(in, c[rank_], MPI_FLOAT, out, c.data(), displ.data(), MPI_FLOAT, comm_));
    record(CommOp::kAllGather, static_cast<uint64_t>(total - counts[rank_]) * sizeof(float));
  }
  void reduce_scatter_v(const float* in, float* out, const std::vector<int64_t>& counts) override {
    std::vector<int> c, displ;
    const int64_t total = int_counts(counts, "reduce_scatter_v", c, displ);
    FW_MPI_CHECK(MPI_Reduce_scatter(in, out, c.data(), MPI_FLOAT, MPI_SUM, comm_));
    record(CommOp::kReduceScatter, static_cast<uint64_t>(total - counts[rank_]) * sizeof(float));
  }
  void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                    const std::vector<int64_t>& recv_counts) override {
    FW_CHECK(static_cast<int>(send_counts.size()) == size_ && static_cast<int>(recv_counts.size()) == size_,
             "all_to_all_v on ", name_, ": counts need one entry per rank (", size_, ")");
    std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
    int64_t s_off = 0, r_off = 0;
    uint64_t off_rank = 0;
    for (int r = 0; r < size_; ++r) {
      sc[r] = to_int(send_counts[r], "all_to_all_v");
      rc[r] = to_int(recv_counts[r], "all_to_all_v");
      sd[r] = to_int(s_off, "all_to_all_v displacement");
      rd[r] = to_int(r_off, "all_to_all_v displacement");
      s_off += send_counts[r];
      r_off += recv_counts[r];
      if (r != rank_) off_rank += send_counts[r];
    }
    FW_MPI_CHECK(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_FLOAT, recv, rc.data(), rd.data(), MPI_FLOAT, comm_));
    record(CommOp::kAllToAll, off_rank * sizeof(float));
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    FW_MPI_CHECK(MPI_Bcast(data, to_int(bytes, "broadcast"), MPI_BYTE, root, comm_));
    if (rank_ == root) record(CommOp::kBroadcast, static_cast<uint64_t>(bytes));
  }
  void send(const float* data, int64_t n, int peer, int tag) override {
    FW_MPI_CHECK(MPI_Send(data, to_int(n, "send"), MPI_FLOAT, peer, tag, comm_));
    record(CommOp::kSendRecv, n * sizeof(float));
  }
  void recv(float* data, int64_t n, int peer, int tag) override {
    FW_MPI_CHECK(MPI_Recv(data, to_int(n, "recv"), MPI_FLOAT, peer, tag, comm_, MPI_STATUS_IGNORE));
  }
  std::unique_ptr<CommRequest> isend(const float* data, int64_t n, int peer, int tag) override {
    MPI_Request request;
    FW_MPI_CHECK(MPI_Isend(data, to_int(n, "isend"), MPI_FLOAT, peer, tag, comm_, &request));
    record(CommOp::kSendRecv, n * sizeof(float));
    return std::make_unique<MpiRequest>(request);
  }
  void send_bytes(const void* data, int64_t bytes, int peer, int tag) override {
    FW_MPI_CHECK(MPI_Send(data, to_int(bytes, "send_bytes"), MPI_BYTE, peer, tag, comm_));
    record(CommOp::kSendRecv, static_cast<uint64_t>(bytes));
  }
  // Matched probe + receive (MPI_Mprobe / MPI_Mrecv), so a thread-safe size query and the
  // receive of that very message cannot be separated by another receive.
  std::vector<uint8_t> recv_bytes(int peer, int tag, Envelope* envelope) override {
    MPI_Message message;
    MPI_Status status;
    FW_MPI_CHECK(MPI_Mprobe(mpi_source(peer), mpi_tag(tag), comm_, &message, &status));
    int count = 0;
    FW_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
    std::vector<uint8_t> data(count);
    FW_MPI_CHECK(MPI_Mrecv(data.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE));
    if (envelope) *envelope = {status.MPI_SOURCE, status.MPI_TAG, count};
    return data;
  }
  bool probe(int peer, int tag, Envelope* envelope) override {
    int flag = 0;
    MPI_Status status;
    FW_MPI_CHECK(MPI_Iprobe(mpi_source(peer), mpi_tag(tag), comm_, &flag, &status));
    if (flag && envelope) {
      int count = 0;
      FW_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
      *envelope = {status.MPI_SOURCE, status.MPI_TAG, count};
    }
    return flag != 0;
  }
  std::unique_ptr<Comm> split(int color, int key, const std::string& name) override {
    MPI_Comm sub;
    FW_MPI_CHECK(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub));
    if (sub == MPI_COMM_NULL) return nullptr;
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    return std::make_unique<MpiComm>(sub, name, true);
  }

 private:
  // Per-rank counts as MPI ints plus displacements; returns the total element count.
  int64_t int_counts(const std::vector<int64_t>& counts, const char* what, std::vector<int>& c,
                     std::vector<int>& displ) const {
    FW_CHECK(static_cast<int>(counts.size()) == size_, what, " on ", name_, ": counts need one entry per rank (",
             size_, "), got ", counts.size());
    c.resize(size_);
    displ.resize(size_);
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      c[r] = to_int(counts[r], what);
      displ[r] = to_int(total, what);
      total += counts[r];
    }
    return total;
  }
  static int mpi_source(int peer) { return peer == kAnySource ? MPI_ANY_SOURCE : peer; }
  static int mpi_tag(int tag) { return tag == kAnyTag ? MPI_ANY_TAG : tag; }
  void count_ring_all_reduce(uint64_t bytes) {
    record(CommOp::kAllReduce, size_ > 1 ? 2 * bytes * (size_ - 1) / size_ : 0);
  }
  MPI_Comm comm_;
  std::string name_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_world_comm() {
  // Errors come back as return codes (checked by FW_MPI_CHECK) instead of aborting inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, "world", false);
}

}  // namespace flywheel
