// Communication interface for the mesh: the collectives FSDP, pipeline, context and expert
// parallelism need, over one group of ranks. MPI implements it today (mpi_comm.cpp); an NCCL backend
// for GPU builds slots in behind the same interface. Every call counts the bytes this rank sends, per
// collective kind, so tests can compare measured traffic against the analytic formula.
//
// Semantics follow MPI: all ranks of the group call a collective in the same order. Counts and
// displacements are in elements. Errors throw flywheel::Error naming the call and the backend's message.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "world", "fsdp", ... for messages

  virtual void barrier() = 0;
  // In place sum over the group. Deterministic run to run for a fixed group size and count (MPI picks
  // the same algorithm), but the association order differs from a single rank's sum.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  virtual void all_reduce_sum(double* data, int64_t count) = 0;
  virtual void all_reduce_max(double* data, int64_t count) = 0;
  // out[r-th block] = in of rank r; every rank contributes `count` elements.
  virtual void all_gather(const float* in, int64_t count, float* out) = 0;
  // Rank r receives the sum over ranks of in[r * count, (r+1) * count).
  virtual void reduce_scatter_sum(const float* in, float* out, int64_t count) = 0;
  // Variable-size versions: rank r contributes / receives counts[r] elements; blocks are packed
  // in rank order (out of all_gather_v and in of reduce_scatter_v hold sum(counts) elements).
  virtual void all_gather_v(const float* in, float* out, const std::vector<int64_t>& counts) = 0;
  virtual void reduce_scatter_v(const float* in, float* out, const std::vector<int64_t>& counts) = 0;
  // Variable all-to-all of floats (send_counts[r] elements go to rank r).
  virtual void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                            const std::vector<int64_t>& recv_counts) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void send(const float* data, int64_t count, int peer, int tag) = 0;
  virtual void recv(float* data, int64_t count, int peer, int tag) = 0;
  // Non-blocking send: data must stay valid until the request completes. Pipelines use it so two
  // neighbours sending to each other at the same time cannot deadlock.
  virtual std::unique_ptr<CommRequest> isend(const float* data, int64_t count, int peer, int tag) = 0;

  // Control messages of any size (prompts, rollouts, snapshot notices between trainers and serving
  // replicas). peer / tag may be kAnySource / kAnyTag on the receiving side; a message's envelope
  // says who sent it with which tag. Messages between one pair of ranks with one tag arrive in order.
  static constexpr int kAnySource = -1;
  static constexpr int kAnyTag = -1;
  struct Envelope {
    int source = -1;
    int tag = -1;
    int64_t bytes = 0;
  };
  virtual void send_bytes(const void* data, int64_t bytes, int peer, int tag) = 0;
  // Blocks until a matching message arrives and returns it (envelope: optional out).
  virtual std::vector<uint8_t> recv_bytes(int peer, int tag, Envelope* envelope = nullptr) = 0;
  // Non-blocking: true (and the envelope) when a matching message is waiting; nothing is received.
  virtual bool probe(int peer, int tag, Envelope* envelope = nullptr) = 0;

  // Sub-group of the ranks passing the same color, ordered by key (MPI_Comm_split). Every rank
  // of this group must call it; a rank passing a negative color joins no group and gets nullptr.
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
