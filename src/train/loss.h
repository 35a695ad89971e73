// Training objectives as functions of per-token log-probabilities (docs/objectives.md).
//
// Every loss L here depends on the model only through logp_t = log p(target_t | tokens_<=t) of the
// tokens of a batch. A training step therefore runs
//   (1) a forward-only pass giving logp_t for this rank's rows,
//   (2) Loss::evaluate: the value L and dL/dlogp_t for every token (global sums via the reducer),
//   (3) forward+backward with the LM head's per-token weights c_t = -dL/dlogp_t ("ce_weight"):
//       the head minimises sum_t c_t * (-logp_t) = sum_t (dL/dlogp_t) logp_t, whose parameter
//       gradient is sum_t (dL/dlogp_t) dlogp_t/dtheta = dL/dtheta.
// The weights are constants between (1) and (3), so this is the exact gradient of L for any loss of
// the logps, token-local (SFT, GRPO) or sequence-level (DPO). c_t may be negative.
//
// Adding a loss: subclass Loss in its own file (see grpo.h), give it a config in LossConfig if it
// has options, register it in make_loss() and loss_names() (loss.cpp), and test its gradient by
// finite differences in tests/unit/test_losses.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/loss_batch.h"

namespace flywheel {

class Comm;

// Collectives over the ranks that hold the global batch's tokens (the data-parallel ranks).
// Each loss calls them a fixed number of times in a fixed order, so every rank must call evaluate.
struct Reducer {
  std::function<void(double*, int64_t)> sum;  // in place: element-wise sum over ranks
  std::function<void(double*, int64_t)> max;  // in place: element-wise max over ranks
};
Reducer local_reducer();           // one rank: both are no-ops
Reducer comm_reducer(Comm& comm);  // host sums / maxima on comm's control plane (comm must outlive it)
void check_reducer(const Reducer& reduce);  // throws unless both functions are set

struct LossResult {
  double loss = 0;                         // global value (identical on every rank)
  std::map<std::string, double> metrics;   // global, e.g. clip_fraction, kl, ratio_max
};

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  // True when the loss needs every token of a row on the same rank (sequence sums, e.g. DPO);
  // token-local losses accept any split of tokens over the reducer's ranks (e.g. context parallel).
  virtual bool needs_whole_rows() const = 0;
  // The loss of the global batch and dL/dlogp for this rank's tokens. logp and dloss_dlogp are
  // [rows*seq]; dloss_dlogp is resized and is 0 wherever mask is 0.
  virtual LossResult evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                              std::vector<float>& dloss_dlogp) const = 0;
};

// GRPO with decoupled clip bounds, optional k3 KL penalty and truncated importance sampling (grpo.h).
struct GrpoConfig {
  double clip_low = 0.2;   // ratio lower bound 1 - clip_low, in [0, 1)
  double clip_high = 0.28; // ratio upper bound 1 + clip_high, >= 0 (DAPO "clip-higher")
  double kl_beta = 0.0;    // weight of the k3 KL penalty to ref_logprob; 0 off
  double tis_cap = 0.0;    // cap C of the truncated IS weight min(exp(old - infer), C); 0 off
  void validate() const;   // errors name rl.clip_low, rl.clip_high, rl.kl_beta, rl.tis_cap
};

// DPO (dpo.h).
struct DpoConfig {
  double beta = 0.1;      // inverse temperature of the implicit reward, > 0
  void validate() const;  // errors name rl.dpo_beta
};

struct LossConfig {
  GrpoConfig grpo;
  DpoConfig dpo;
};

// "sft", "grpo" or "dpo"; validates the config that loss uses. Unknown name: error listing loss_names().
std::unique_ptr<Loss> make_loss(const std::string& name, const LossConfig& config = {});
const std::vector<std::string>& loss_names();

// SFT as a Loss: L = -(1/N) sum_t mask_t logp_t, N = global count of mask tokens (the trainer's
// token-mean cross-entropy). Defined here because it is the base case of the interface.
class SftLoss final : public Loss {
 public:
  std::string name() const override { return "sft"; }
  bool needs_whole_rows() const override { return false; }
  LossResult evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                      std::vector<float>& dloss_dlogp) const override;
};

}  // namespace flywheel
