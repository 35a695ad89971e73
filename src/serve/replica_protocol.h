// The control messages between trainer rank 0 and the serving replicas (the world's control plane,
// point to point), encoded as CBOR (RFC 8949) through nlohmann::json: small, self-describing, and
// every float survives the round trip exactly (CBOR doubles hold every float).
//
//   trainer 0 -> replica   kTagGenerate  {step, requests[]}      rollouts wanted for an RL step
//   trainer 0 -> replica   kTagSnapshot  {step}                  publish/ has the weights of `step`
//   trainer 0 -> replica   kTagShutdown  {}                      finish and exit
//   replica -> trainer 0   kTagResults   {step, replica, results[], ...}  one message per request batch
//   replica -> trainer 0   kTagLoaded    {step, replica, ms, bytes, delta, fell_back, reason}
//
// Tags start at 1000 so they cannot meet the pipeline's micro-batch tags on another communicator
// by accident when a reader greps a trace.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "serve/decode_engine.h"

namespace flywheel {

enum RolloutTag : int {
  kTagGenerate = 1001,
  kTagSnapshot = 1002,
  kTagShutdown = 1003,
  kTagResults = 1004,
  kTagLoaded = 1005,
};

struct GenerateMessage {
  int64_t step = 0;
  std::vector<GenerationRequest> requests;
};

struct ResultsMessage {
  int64_t step = 0;
  int replica = 0;
  std::vector<GenerationResult> results;
  int64_t tokens = 0;          // generated in this batch
  double decode_seconds = 0;   // replica time spent in decode steps since its previous results message
};

struct LoadedMessage {
  int64_t step = 0;       // now loaded
  int64_t requested = 0;  // announced; step < requested when no intact chain reached it
  int replica = 0;
  double ms = 0;
  uint64_t bytes = 0;
  bool delta = false;
  bool fell_back = false;
  std::string reason;
};

std::vector<uint8_t> encode(const GenerateMessage& m);
std::vector<uint8_t> encode(const ResultsMessage& m);
std::vector<uint8_t> encode(const LoadedMessage& m);
std::vector<uint8_t> encode_step(int64_t step);  // kTagSnapshot payload

GenerateMessage decode_generate(const std::vector<uint8_t>& bytes);
ResultsMessage decode_results(const std::vector<uint8_t>& bytes);
LoadedMessage decode_loaded(const std::vector<uint8_t>& bytes);
int64_t decode_step(const std::vector<uint8_t>& bytes);

// Sends a message (one of the encode() payloads) on a control plane.
inline void send_message(ControlChannel& control, const std::vector<uint8_t>& bytes, int peer, RolloutTag tag) {
  control.send(bytes.data(), static_cast<int64_t>(bytes.size()), peer, tag);
}

}  // namespace flywheel
