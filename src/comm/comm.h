// Communication for the mesh, in two planes over one group of ranks.
//
//   data plane (Comm)        arrays in the compute backend's memory -- weights, gradients,
//                            activations, token ids -- typed by dtype, with a stream argument for
//                            ordering on a device. MPI carries it today; NCCL slots in here for a
//                            GPU build (it has exactly these collectives, no wildcards, no probe).
//   control plane            host bytes and host scalars: protocol messages between trainers and
//   (Comm::control())        replicas (any source, probe), agreement (preemption, checkpoint
//                            verdicts), run names, metrics sums, barriers. Always MPI, on a
//                            duplicate of the group's communicator, so control messages never
//                            match data-plane messages and it keeps working beside NCCL.
//
// Semantics follow MPI: all ranks of the group call a collective in the same order. Counts and
// displacements are in elements of the dtype. Errors throw flywheel::Error naming the call and the
// backend's message. Every call counts the bytes this rank sends, per collective kind (both planes
// into one CommCounters), so tests can compare measured traffic against the analytic formula of
// `flywheel plan`.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace flywheel {

enum class CommOp { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kBroadcast, kSendRecv, kCount };
const char* comm_op_name(CommOp op);

struct CommCounters {
  std::array<uint64_t, static_cast<size_t>(CommOp::kCount)> bytes_sent{};
  std::array<uint64_t, static_cast<size_t>(CommOp::kCount)> calls{};
  uint64_t total_bytes() const;
  void reset() { *this = CommCounters{}; }
};

// A pending non-blocking operation; wait() completes it (the destructor waits too).
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
};

enum class ReduceOp { kSum, kMax };

// Orders data-plane work on a device (a CUDA stream in a GPU build). The host data plane runs every
// call synchronously and takes nullptr.
struct CommStream;

// The control plane of a group: host memory only, blocking, MPI underneath.
class ControlChannel {
 public:
  // Receivers may match any sender / any tag; the envelope says who sent what. Messages between one
  // pair of ranks with one tag arrive in order.
  static constexpr int kAnySource = -1;
  static constexpr int kAnyTag = -1;
  struct Envelope {
    int source = -1;
    int tag = -1;
    int64_t bytes = 0;
  };

  virtual ~ControlChannel() = default;
  virtual void barrier() = 0;
  // Root's `bytes` bytes at data replace everyone's.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // In place over the group: host scalars (counts, loss sums, agreement flags). Deterministic run
  // to run for a fixed group size (MPI picks the same algorithm).
  virtual void all_reduce_sum(double* values, int64_t count) = 0;
  virtual void all_reduce_max(double* values, int64_t count) = 0;
  virtual void send(const void* data, int64_t bytes, int peer, int tag) = 0;
  // Blocks until a matching message arrives and returns it (envelope: optional out).
  virtual std::vector<uint8_t> recv(int peer, int tag, Envelope* envelope = nullptr) = 0;
  // Non-blocking: true (and the envelope) when a matching message is waiting; nothing is received.
  virtual bool probe(int peer, int tag, Envelope* envelope = nullptr) = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "world", "fsdp", ... for messages

  // ---- data plane: arrays of `dtype` in the backend's memory ---------------------------------------
  // In place over the group. kSum of bf16 adds in fp32 and rounds once per step of the reduction.
  virtual void all_reduce(void* data, int64_t count, DType dtype, ReduceOp op, CommStream* stream = nullptr) = 0;
  // out[r-th block] = in of rank r; every rank contributes `count` elements.
  virtual void all_gather(const void* in, int64_t count, DType dtype, void* out, CommStream* stream = nullptr) = 0;
  // Rank r receives the sum over ranks of in[r * count, (r+1) * count).
  virtual void reduce_scatter(const void* in, void* out, int64_t count, DType dtype,
                              CommStream* stream = nullptr) = 0;
  // Variable-size versions: rank r contributes / receives counts[r] elements; blocks are packed in
  // rank order (out of all_gather_v and in of reduce_scatter_v hold sum(counts) elements).
  virtual void all_gather_v(const void* in, void* out, const std::vector<int64_t>& counts, DType dtype,
                            CommStream* stream = nullptr) = 0;
  virtual void reduce_scatter_v(const void* in, void* out, const std::vector<int64_t>& counts, DType dtype,
                                CommStream* stream = nullptr) = 0;
  // send_counts[r] elements go to rank r; recv_counts[r] come from it.
  virtual void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                            const std::vector<int64_t>& recv_counts, DType dtype, CommStream* stream = nullptr) = 0;
  virtual void broadcast(void* data, int64_t count, DType dtype, int root, CommStream* stream = nullptr) = 0;
  // Point to point with a known count (pipeline activations and their gradients).
  virtual void send(const void* data, int64_t count, DType dtype, int peer, int tag, CommStream* stream = nullptr) = 0;
  virtual void recv(void* data, int64_t count, DType dtype, int peer, int tag, CommStream* stream = nullptr) = 0;
  // Non-blocking send: data must stay valid until the request completes. Pipelines use it so two
  // neighbours sending to each other at the same time cannot deadlock.
  virtual std::unique_ptr<CommRequest> isend(const void* data, int64_t count, DType dtype, int peer, int tag,
                                             CommStream* stream = nullptr) = 0;

  // Typed forms of the data plane (the dtype from the element type).
  template <typename T>
  void all_gather(const T* in, int64_t count, T* out) { all_gather(in, count, dtype_of<T>(), out); }
  template <typename T>
  void reduce_scatter_sum(const T* in, T* out, int64_t count) { reduce_scatter(in, out, count, dtype_of<T>()); }
  template <typename T>
  void all_gather_v(const T* in, T* out, const std::vector<int64_t>& counts) {
    all_gather_v(in, out, counts, dtype_of<T>());
  }
  template <typename T>
  void reduce_scatter_v(const T* in, T* out, const std::vector<int64_t>& counts) {
    reduce_scatter_v(in, out, counts, dtype_of<T>());
  }
  template <typename T>
  void all_to_all_v(const T* send, const std::vector<int64_t>& send_counts, T* recv,
                    const std::vector<int64_t>& recv_counts) {
    all_to_all_v(send, send_counts, recv, recv_counts, dtype_of<T>());
  }
  template <typename T>
  void send(const T* data, int64_t count, int peer, int tag) { send(data, count, dtype_of<T>(), peer, tag); }
  template <typename T>
  void recv(T* data, int64_t count, int peer, int tag) { recv(data, count, dtype_of<T>(), peer, tag); }
  template <typename T>
  std::unique_ptr<CommRequest> isend(const T* data, int64_t count, int peer, int tag) {
    return isend(data, count, dtype_of<T>(), peer, tag);
  }

  // ---- control plane -------------------------------------------------------------------------------
  virtual ControlChannel& control() = 0;

  // Sub-group of the ranks passing the same color, ordered by key (MPI_Comm_split), with both
  // planes. Every rank of this group must call it; a negative color joins no group (nullptr).
  virtual std::unique_ptr<Comm> split(int color, int key, const std::string& name) = 0;

  CommCounters& counters() { return counters_; }
  const CommCounters& counters() const { return counters_; }

 protected:
  void record(CommOp op, uint64_t bytes) {
    counters_.bytes_sent[static_cast<size_t>(op)] += bytes;
    counters_.calls[static_cast<size_t>(op)] += 1;
  }

 private:
  CommCounters counters_;
};

// MPI_COMM_WORLD (must be initialised; see launch/runtime.h).
std::unique_ptr<Comm> make_mpi_world_comm();
// A group of one process without MPI (unit tests, offline tools): collectives are copies.
std::unique_ptr<Comm> make_local_comm(const std::string& name = "local");

}  // namespace flywheel
