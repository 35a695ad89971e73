// The MPI backend of Comm. Byte counters record what this rank sends under a bandwidth-optimal
// (ring) algorithm, the convention of nccl-tests' "bus bandwidth": all-reduce 2(P-1)/P x N,
// all-gather and reduce-scatter (P-1) x the per-rank block, all-to-all the off-rank send counts.
#include <climits>

#include "comm/comm.h"
#include "comm/mpi_check.h"
#include "core/bf16.h"

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

void count(CommCounters& counters, CommOp op, uint64_t bytes) {
  counters.bytes_sent[static_cast<size_t>(op)] += bytes;
  counters.calls[static_cast<size_t>(op)] += 1;
}

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

// bf16 sum for MPI (which has no bf16 type): widen both operands, add in fp32, round once.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const BFloat16*>(in);
  auto* b = static_cast<BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = to_bf16(to_fp32(a[i]) + to_fp32(b[i]));
}

MPI_Op bf16_sum_op() {
  static MPI_Op op = [] {
    MPI_Op created;
    MPI_Op_create(&bf16_sum, /*commute=*/1, &created);
    return created;
  }();
  return op;
}

// The MPI datatype of a dtype's elements; 2-byte floats travel as 16-bit words.
MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return MPI_FLOAT;
    case DType::kF64: return MPI_DOUBLE;
    case DType::kI32: return MPI_INT32_T;
    case DType::kI64: return MPI_INT64_T;
    case DType::kU8: return MPI_UINT8_T;
    case DType::kBF16:
    case DType::kF16: return MPI_UINT16_T;
  }
  FW_THROW("no MPI datatype for dtype ", dtype_name(dtype));
}

MPI_Op mpi_op(ReduceOp op, DType dtype, const char* what) {
  if (dtype == DType::kBF16) {
    FW_CHECK(op == ReduceOp::kSum, what, ": bf16 reductions support sum only");
    return bf16_sum_op();
  }
  FW_CHECK(dtype != DType::kF16 && dtype != DType::kU8, what, ": cannot reduce ", dtype_name(dtype),
           " values (allowed: f32, f64, i32, i64, bf16)");
  return op == ReduceOp::kSum ? MPI_SUM : MPI_MAX;
}

int mpi_source(int peer) { return peer == ControlChannel::kAnySource ? MPI_ANY_SOURCE : peer; }
int mpi_tag(int tag) { return tag == ControlChannel::kAnyTag ? MPI_ANY_TAG : tag; }

// Bytes sent by one rank of `size` under a ring all-reduce of `bytes`.
uint64_t ring_all_reduce(uint64_t bytes, int size) { return size > 1 ? 2 * bytes * (size - 1) / size : 0; }

// The control plane on its own duplicate of the group's communicator.
class MpiControl final : public ControlChannel {
 public:
  MpiControl(MPI_Comm comm, CommCounters& counters) : counters_(counters) {
    FW_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiControl() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  void barrier() override { FW_MPI_CHECK(MPI_Barrier(comm_)); }
  void broadcast(void* data, int64_t bytes, int root) override {
    FW_MPI_CHECK(MPI_Bcast(data, to_int(bytes, "broadcast"), MPI_BYTE, root, comm_));
    if (rank_ == root) count(counters_, CommOp::kBroadcast, static_cast<uint64_t>(bytes));
  }
  void all_reduce_sum(double* values, int64_t n) override { reduce(values, n, MPI_SUM); }
  void all_reduce_max(double* values, int64_t n) override { reduce(values, n, MPI_MAX); }
  void send(const void* data, int64_t bytes, int peer, int tag) override {
    FW_MPI_CHECK(MPI_Send(data, to_int(bytes, "send"), MPI_BYTE, peer, tag, comm_));
    count(counters_, CommOp::kSendRecv, static_cast<uint64_t>(bytes));
  }
  // Matched probe + receive (MPI_Mprobe / MPI_Mrecv), so a thread-safe size query and the
  // receive of that very message cannot be separated by another receive.
  std::vector<uint8_t> recv(int peer, int tag, Envelope* envelope) override {
    MPI_Message message;
    MPI_Status status;
    FW_MPI_CHECK(MPI_Mprobe(mpi_source(peer), mpi_tag(tag), comm_, &message, &status));
    int bytes = 0;
    FW_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &bytes));
    std::vector<uint8_t> data(bytes);
    FW_MPI_CHECK(MPI_Mrecv(data.data(), bytes, MPI_BYTE, &message, MPI_STATUS_IGNORE));
    if (envelope) *envelope = {status.MPI_SOURCE, status.MPI_TAG, bytes};
    return data;
  }
  bool probe(int peer, int tag, Envelope* envelope) override {
    int flag = 0;
    MPI_Status status;
    FW_MPI_CHECK(MPI_Iprobe(mpi_source(peer), mpi_tag(tag), comm_, &flag, &status));
    if (flag && envelope) {
      int bytes = 0;
      FW_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &bytes));
      *envelope = {status.MPI_SOURCE, status.MPI_TAG, bytes};
    }
    return flag != 0;
  }

 private:
  void reduce(double* values, int64_t n, MPI_Op op) {
    FW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, to_int(n, "all_reduce"), MPI_DOUBLE, op, comm_));
    count(counters_, CommOp::kAllReduce, ring_all_reduce(n * sizeof(double), size_));
  }

  MPI_Comm comm_;
  CommCounters& counters_;
  int rank_ = 0, size_ = 1;
};

class MpiComm final : public Comm {
 public:
  MpiComm(MPI_Comm comm, std::string name, bool owned)
      : comm_(comm), name_(std::move(name)), owned_(owned), control_(comm, counters()) {
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

  void all_reduce(void* data, int64_t n, DType dtype, ReduceOp op, CommStream*) override {
    FW_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, to_int(n, "all_reduce"), mpi_type(dtype),
                               mpi_op(op, dtype, "all_reduce"), comm_));
    record(CommOp::kAllReduce, ring_all_reduce(n * dtype_bytes(dtype), size_));
  }
  void all_gather(const void* in, int64_t n, DType dtype, void* out, CommStream*) override {
    const int c = to_int(n, "all_gather");
    FW_MPI_CHECK(MPI_Allgather(in, c, mpi_type(dtype), out, c, mpi_type(dtype), comm_));
    record(CommOp::kAllGather, static_cast<uint64_t>(size_ - 1) * n * dtype_bytes(dtype));
  }
  void reduce_scatter(const void* in, void* out, int64_t n, DType dtype, CommStream*) override {
    FW_MPI_CHECK(MPI_Reduce_scatter_block(in, out, to_int(n, "reduce_scatter"), mpi_type(dtype),
                                          mpi_op(ReduceOp::kSum, dtype, "reduce_scatter"), comm_));
    record(CommOp::kReduceScatter, static_cast<uint64_t>(size_ - 1) * n * dtype_bytes(dtype));
  }
  void all_gather_v(const void* in, void* out, const std::vector<int64_t>& counts, DType dtype,
                    CommStream*) override {
    std::vector<int> c, displ;
    const int64_t total = int_counts(counts, "all_gather_v", c, displ);
    FW_MPI_CHECK(MPI_Allgatherv(in, c[rank_], mpi_type(dtype), out, c.data(), displ.data(), mpi_type(dtype), comm_));
    record(CommOp::kAllGather, static_cast<uint64_t>(total - counts[rank_]) * dtype_bytes(dtype));
  }
  void reduce_scatter_v(const void* in, void* out, const std::vector<int64_t>& counts, DType dtype,
                        CommStream*) override {
    std::vector<int> c, displ;
    const int64_t total = int_counts(counts, "reduce_scatter_v", c, displ);
    FW_MPI_CHECK(MPI_Reduce_scatter(in, out, c.data(), mpi_type(dtype),
                                    mpi_op(ReduceOp::kSum, dtype, "reduce_scatter_v"), comm_));
    record(CommOp::kReduceScatter, static_cast<uint64_t>(total - counts[rank_]) * dtype_bytes(dtype));
  }
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                    const std::vector<int64_t>& recv_counts, DType dtype, CommStream*) override {
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
    const MPI_Datatype type = mpi_type(dtype);
    FW_MPI_CHECK(MPI_Alltoallv(send, sc.data(), sd.data(), type, recv, rc.data(), rd.data(), type, comm_));
    record(CommOp::kAllToAll, off_rank * dtype_bytes(dtype));
  }
  void broadcast(void* data, int64_t n, DType dtype, int root, CommStream*) override {
    FW_MPI_CHECK(MPI_Bcast(data, to_int(n, "broadcast"), mpi_type(dtype), root, comm_));
    if (rank_ == root) record(CommOp::kBroadcast, static_cast<uint64_t>(n) * dtype_bytes(dtype));
  }
  void send(const void* data, int64_t n, DType dtype, int peer, int tag, CommStream*) override {
    FW_MPI_CHECK(MPI_Send(data, to_int(n, "send"), mpi_type(dtype), peer, tag, comm_));
    record(CommOp::kSendRecv, n * dtype_bytes(dtype));
  }
  void recv(void* data, int64_t n, DType dtype, int peer, int tag, CommStream*) override {
    FW_MPI_CHECK(MPI_Recv(data, to_int(n, "recv"), mpi_type(dtype), peer, tag, comm_, MPI_STATUS_IGNORE));
  }
  std::unique_ptr<CommRequest> isend(const void* data, int64_t n, DType dtype, int peer, int tag,
                                     CommStream*) override {
    MPI_Request request;
    FW_MPI_CHECK(MPI_Isend(data, to_int(n, "isend"), mpi_type(dtype), peer, tag, comm_, &request));
    record(CommOp::kSendRecv, n * dtype_bytes(dtype));
    return std::make_unique<MpiRequest>(request);
  }

  ControlChannel& control() override { return control_; }

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

  MPI_Comm comm_;
  std::string name_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  MpiControl control_;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_world_comm() {
  // Errors come back as return codes (checked by FW_MPI_CHECK) instead of aborting inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, "world", false);
}

}  // namespace flywheel
