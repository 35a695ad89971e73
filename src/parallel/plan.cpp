// One trainer rank's plan: parameter shards, FSDP traffic and working copies, activations, and the
// per-step communication of every other kind. The code paths this mirrors are named at each formula;
// a change there must change this file (tests/mpi/comm_volume.cpp fails otherwise).
#include "parallel/plan.h"

#include <algorithm>

#include "core/error.h"
#include "model/transformer.h"

namespace flywheel {
namespace {

constexpr int64_t kF = sizeof(float);

// mpi_comm.cpp's ring all-reduce count: 2 (P-1)/P x bytes, in integer arithmetic as it does.
uint64_t ring_all_reduce(uint64_t bytes, int64_t ranks) {
  return ranks > 1 ? 2 * bytes * static_cast<uint64_t>(ranks - 1) / static_cast<uint64_t>(ranks) : 0;
}

// One unit as Fsdp::plan_unit shards it on this rank.
struct UnitShard {
  bool present = false, experts = false, direct = false;
  bool trainable = true;        // false: a frozen (LoRA base) unit: no gradients, no reduce-scatter
  int64_t mine = 0, total = 0;  // elements held here / by the whole group (owned experts only)
  int64_t span = 0;             // working-copy floats: the unit's whole flat range (all experts)
};

std::vector<UnitShard> shard_units(const Transformer& model, const MeshConfig& mesh, const MeshCoords& c) {
  const ParameterSet& params = model.params();
  std::vector<UnitShard> shards(params.units().size());
  for (const UnitPlacement& p : place_units(model, mesh, c)) {
    const ParameterUnit& pu = params.units()[p.unit];
    UnitShard& s = shards[p.unit];
    s.present = true;
    s.experts = pu.experts;
    s.trainable = pu.trainable;
    s.span = pu.end - pu.begin;
    for (int id : p.tensors) {
      const ParamInfo& info = params.info(id);
      const int64_t rows = info.shape[0], cols = info.numel / rows;
      s.total += info.numel;
      s.mine += (row_split(rows, p.group_rank + 1, p.group_size) - row_split(rows, p.group_rank, p.group_size)) * cols;
    }
    s.direct = p.group_size == 1 && p.tensors.size() == pu.params.size();
  }
  return shards;
}

// Replays Fsdp's response to the UnitHooks calls: gather on first use, grads allocated on the first
// backward use, reduce-scatter at after_backward, release at after_forward / after_backward.
class FsdpReplay {
 public:
  explicit FsdpReplay(const std::vector<UnitShard>& shards)
      : gathers(shards.size()), scatters(shards.size()), shards_(shards), values_(shards.size()),
        grads_(shards.size()) {}
  void use(int u, bool backward) {
    if (shards_[u].direct) return;
    if (!values_[u]) ++gathers[u];
    values_[u] = true;
    grads_[u] = grads_[u] || (backward && shards_[u].trainable);
    track();
  }
  void forward_done(int u) { release(u); }
  void backward_done(int u) {
    if (shards_[u].direct) return;
    if (shards_[u].trainable) ++scatters[u];
    release(u);
  }
  int64_t peak_floats = 0;
  std::vector<int64_t> gathers, scatters;  // per unit, for one micro-batch

 private:
  void release(int u) {
    if (shards_[u].direct) return;
    values_[u] = grads_[u] = false;
    track();
  }
  void track() {
    int64_t held = 0;
    for (size_t u = 0; u < shards_.size(); ++u) held += shards_[u].span * (values_[u] + grads_[u]);
    peak_floats = std::max(peak_floats, held);
  }
  const std::vector<UnitShard>& shards_;
  std::vector<char> values_, grads_;
};

// A layer's unit and its LoRA adapters' unit (-1: none), used together (Transformer::use_units / end_units).
struct UnitPair {
  int unit = -1, lora = -1;
  void use(FsdpReplay& fsdp, bool backward) const {
    fsdp.use(unit, backward);
    if (lora >= 0) fsdp.use(lora, backward);
  }
  void done(FsdpReplay& fsdp, bool backward) const {
    for (int u : {lora, unit}) {
      if (u < 0) continue;
      if (backward)
        fsdp.backward_done(u);
      else
        fsdp.forward_done(u);
    }
  }
};

// The hook sequence of Transformer::stage_forward then stage_backward for one micro-batch.
void replay_micro_batch(const Transformer& model, FsdpReplay& fsdp) {
  const ModelConfig& cfg = model.config();
  const StageRange& st = model.stage();
  int embed = -1, head = -1;
  std::vector<UnitPair> layer(cfg.n_layers), experts(cfg.n_layers);
  const auto& units = model.params().units();
  for (size_t u = 0; u < units.size(); ++u) {
    const int id = static_cast<int>(u);
    if (units[u].name == "embed") {
      embed = id;
    } else if (units[u].name == "head") {
      head = id;
    } else {
      UnitPair& pair = (units[u].experts ? experts : layer)[units[u].layer];
      (units[u].name.ends_with(".lora") ? pair.lora : pair.unit) = id;
    }
  }
  const bool first = st.has_embedding(), last = st.has_head(cfg.n_layers);
  if (first) fsdp.use(embed, false), fsdp.forward_done(embed);
  for (int l = st.first_layer; l < st.end_layer; ++l) {
    layer[l].use(fsdp, false);
    if (experts[l].unit >= 0) experts[l].use(fsdp, false), experts[l].done(fsdp, false);
    layer[l].done(fsdp, false);
  }
  if (last) fsdp.use(head, false), fsdp.forward_done(head);
  // head_backward: a tied LM head is the embedding unit, used beside the head unit (final norm).
  const bool tied_head = last && cfg.tie_embeddings;
  if (tied_head) fsdp.use(embed, true);
  if (last) fsdp.use(head, true), fsdp.backward_done(head);
  if (tied_head) fsdp.backward_done(embed);
  for (int l = st.end_layer - 1; l >= st.first_layer; --l) {
    layer[l].use(fsdp, true);
    if (experts[l].unit >= 0) experts[l].use(fsdp, true), experts[l].done(fsdp, true);
    layer[l].done(fsdp, true);
  }
  // A frozen embedding (LoRA) skips its backward.
  if (first && units[embed].trainable) fsdp.use(embed, true), fsdp.backward_done(embed);
}

// Tokens of one micro-batch on one rank: fsdp splits rows, cp splits each row's sequence.
struct LocalTokens {
  int64_t rows = 0, seq = 0, n = 0;
};
LocalTokens local_tokens(const BatchShape& batch, const MeshConfig& mesh) {
  LocalTokens t;
  t.rows = batch.micro_batch / mesh.fsdp;
  t.seq = batch.seq_len / mesh.cp;
  t.n = t.rows * t.seq;
  return t;
}

// Rows an MoE layer's local experts receive: all n k slots when ep = 1 (exact); with ep > 1 the
// uniform-routing expectation, ep ranks x (n k / ep) each.
int64_t grouped_rows(const ModelConfig& m, int64_t n) { return n * m.moe_top_k; }

// Bytes of one ActivationStash::Layer after forward (model/{transformer,attention_block,ffn_block,moe_block}.h).
int64_t layer_activation_bytes(const ModelConfig& m, int64_t n, int64_t ep, bool moe_layer) {
  const int64_t d = m.d_model, hd = m.resolved_head_dim(), qw = m.n_heads * hd, kvw = m.n_kv_heads * hd;
  int64_t floats = 3 * n * d + n;                               // x_in, x_mid, ffn_normed; ffn_rstd
  floats += n * d + n + 2 * n * qw + 2 * n * kvw + n * m.n_heads;  // normed, rstd, q, attn, k, v, lse
  if (m.qk_norm) floats += n * (qw + kvw + m.n_heads + m.n_kv_heads);  // q_raw, k_raw, q_rstd, k_rstd
  int64_t bytes = 0;
  if (!moe_layer) {
    floats += 3 * n * m.d_ff;  // gate, up, act
  } else {
    const int64_t E = m.moe_experts, k = m.moe_top_k, hidden = m.resolved_moe_d_ff(), g = grouped_rows(m, n);
    floats += n * E + n * k;                     // router_probs, slot_weight
    floats += g * d + n * k * d + 3 * g * hidden;  // grouped_in, slot_out, expert_act
    if (m.moe_shared_expert) floats += 3 * n * hidden;
    bytes += n * k * sizeof(int32_t) + E * sizeof(double);  // expert_of_slot, routed_fraction
    // ExpertDispatch: send_order (n k), grouped_of_recv (g), row counts and expert offsets (int64).
    bytes += (n * k + g + 2 * ep + E / ep + 1) * static_cast<int64_t>(sizeof(int64_t));
  }
  return floats * kF + bytes;
}

int64_t stash_bytes(const ModelConfig& m, const StageRange& st, int64_t n, int64_t ep) {
  int64_t bytes = 0;
  for (int l = st.first_layer; l < st.end_layer; ++l) bytes += layer_activation_bytes(m, n, ep, m.is_moe_layer(l));
  bytes += n * m.d_model * kF;                                          // stage_out
  if (st.has_head(m.n_layers)) bytes += (n * m.d_model + n) * kF;      // final_normed, final_rstd
  if (st.has_embedding()) bytes += n * static_cast<int64_t>(sizeof(int32_t));  // tokens
  return bytes;
}

// Estimate of the largest set of temporaries alive at once in forward/backward (floats): dx and
// dprev through the stage's backward, plus the largest of the LM head (dfinal and a logits chunk of
// at most 2^24 floats), the attention backward, the dense FFN backward or the MoE backward.
int64_t workspace_bytes(const ModelConfig& m, const StageRange& st, int64_t n) {
  const int64_t d = m.d_model, hd = m.resolved_head_dim(), qw = m.n_heads * hd, kvw = m.n_kv_heads * hd;
  int64_t largest = 2 * n * d + 2 * n * qw + 2 * n * kvw + n * d;  // dnormed, dmid; dattn, dq, dk, dv; dnormed
  if (st.has_head(m.n_layers)) {
    const int64_t chunk_rows = std::clamp<int64_t>((int64_t{1} << 24) / m.vocab_size, 1, n);
    largest = std::max(largest, n * d + chunk_rows * m.vocab_size);
  }
  bool any_moe = false, any_dense = false;
  for (int l = st.first_layer; l < st.end_layer; ++l) (m.is_moe_layer(l) ? any_moe : any_dense) = true;
  if (any_dense) largest = std::max(largest, 2 * n * d + n * m.d_ff);  // dact
  if (any_moe) {
    const int64_t k = m.moe_top_k, g = grouped_rows(m, n);
    // dslot_out, dslot_in, dgrouped_out/in, dispatch send + receive copies, router dprobs/dlogits.
    largest = std::max(largest, 2 * n * d + 2 * n * k * d + 2 * g * d + 2 * n * k * d + 2 * n * m.moe_experts + n * k);
  }
  return (2 * n * d + largest) * kF;
}

// Estimate of communication scratch (floats): isend copies the pipeline keeps in flight (at most
// 2 x stashes + 1, see pipeline.cpp) plus one receive buffer, and the largest of: FSDP's pack +
// unpack buffers of one unit, CP's gathered K/V with their gradients in backward, the expert dispatch.
int64_t comm_buffer_bytes(const ModelConfig& m, const MeshConfig& mesh, const RankPlan& r, const LocalTokens& t,
                          const std::vector<UnitShard>& shards, int64_t micro_batches) {
  const int64_t d = m.d_model, hd = m.resolved_head_dim(), qw = m.n_heads * hd, kvw = m.n_kv_heads * hd;
  const int64_t sends = micro_batches * ((r.coords.pp + 1 < mesh.pp) + (r.coords.pp > 0));
  int64_t pipeline = sends > 0 ? (std::min(sends, 2 * r.memory.in_flight + 1) + 1) * t.n * d : 0;
  int64_t largest = 0;
  for (const UnitShard& s : shards)
    if (s.present && !s.direct) largest = std::max(largest, s.mine + s.total);
  if (mesh.cp > 1) {
    const int64_t T = t.seq * mesh.cp, half = t.seq / 2;
    largest = std::max(largest, 7 * t.rows * T * kvw + 4 * t.rows * half * qw);
  }
  if (m.is_moe()) largest = std::max(largest, t.n * m.moe_top_k * d + grouped_rows(m, t.n) * d);
  return (pipeline + largest) * kF;
}

// Everything but FSDP: pipeline sends, CP K/V traffic, MoE statistics and dispatch, the trainer's
// all-reduces (trainer.cpp: loss tokens over dp; [ce, aux] and the grad norm over all trainers).
void add_other_comm(const ModelConfig& m, const BatchShape& batch, const MeshConfig& mesh, const LocalTokens& t,
                    RankPlan& r) {
  const int64_t M = batch.grad_accum, layers = r.stage.end_layer - r.stage.first_layer, D = mesh.fsdp * mesh.cp;
  const int64_t d = m.d_model, kvw = m.n_kv_heads * m.resolved_head_dim();
  const int s = r.coords.pp;
  // pipeline.cpp: per micro-batch, activations [n, d] to stage s+1 and their gradient to stage s-1.
  r.comm.add(MeshGroup::kPp, CommOp::kSendRecv, M * ((s + 1 < mesh.pp) + (s > 0)) * t.n * d * kF);
  if (mesh.cp > 1) {
    // attention_block.cpp: forward all-gathers K and V, backward re-gathers both and reduce-scatters
    // dK and dV; each call moves (C-1) blocks of [rows, local seq, kv width].
    const uint64_t block = (mesh.cp - 1) * t.n * kvw * kF;
    r.comm.add(MeshGroup::kCp, CommOp::kAllGather, M * layers * 4 * block);
    r.comm.add(MeshGroup::kCp, CommOp::kReduceScatter, M * layers * 2 * block);
  }
  int64_t moe_layers = 0;
  for (int l = r.stage.first_layer; l < r.stage.end_layer; ++l) moe_layers += m.is_moe_layer(l) ? 1 : 0;
  if (moe_layers > 0) {
    const int64_t E = m.moe_experts, EP = mesh.ep;
    // moe_block.cpp load_balance_stats: 2E+1 doubles over dp per layer per micro-batch (forward only).
    r.comm.add(MeshGroup::kDp, CommOp::kAllReduce, M * moe_layers * ring_all_reduce((2 * E + 1) * sizeof(double), D));
    if (EP > 1) {
      // expert_dispatch.cpp: the counts (E floats, E/ep per rank: the off-rank ones count), then
      // rows of d floats: dispatch + combine in forward and again in backward. A slot's expert is
      // off-rank with probability (ep-1)/ep under uniform routing.
      const uint64_t counts = (E - E / EP) * kF;
      const uint64_t rows = 4 * static_cast<uint64_t>(t.n * m.moe_top_k * (EP - 1) / EP) * d * kF;
      r.comm.add(MeshGroup::kEp, CommOp::kAllToAll, M * moe_layers * (counts + rows));
      r.comm.all_to_all_estimated = true;
    }
  }
  r.comm.add(MeshGroup::kDp, CommOp::kAllReduce, ring_all_reduce(sizeof(double), D));
  const int64_t trainers = mesh.trainer_ranks();
  r.comm.add(MeshGroup::kTrainers, CommOp::kAllReduce, ring_all_reduce(2 * sizeof(double), trainers));
  r.comm.add(MeshGroup::kTrainers, CommOp::kAllReduce, ring_all_reduce(sizeof(double), trainers));
}

}  // namespace

const char* mesh_group_name(MeshGroup group) {
  switch (group) {
    case MeshGroup::kTrainers: return "trainers";
    case MeshGroup::kPp: return "pp";
    case MeshGroup::kDp: return "dp";
    case MeshGroup::kCp: return "cp";
    case MeshGroup::kEp: return "ep";
    case MeshGroup::kEdp: return "edp";
    case MeshGroup::kCount: break;
  }
  return "?";
}

void CommPlan::add(MeshGroup group, CommOp op, uint64_t bytes) {
  by_op[static_cast<size_t>(op)] += bytes;
  by_group[static_cast<size_t>(group)] += bytes;
}

uint64_t CommPlan::total() const {
  uint64_t sum = 0;
  for (uint64_t b : by_op) sum += b;
  return sum;
}

int64_t MemoryPlan::total() const {
  return weights + grads + optimizer + working + activations + workspace + comm_buffers;
}

RankPlan plan_rank(const Transformer& stage_model, const BatchShape& batch, const MeshConfig& mesh,
                   int trainer_rank) {
  const ModelConfig& m = stage_model.config();
  FW_CHECK(trainer_rank >= 0 && trainer_rank < mesh.trainer_ranks(), "plan: trainer rank ", trainer_rank,
           " is not in [0, ", mesh.trainer_ranks(), ")");
  RankPlan r;
  r.trainer_rank = trainer_rank;
  r.coords = mesh_coords(mesh, trainer_rank);
  r.stage = stage_range(m, mesh, r.coords.pp);
  FW_CHECK(r.stage.first_layer == stage_model.stage().first_layer && r.stage.end_layer == stage_model.stage().end_layer,
           "plan: the stage model does not hold trainer rank ", trainer_rank, "'s layers");
  const std::vector<UnitShard> shards = shard_units(stage_model, mesh, r.coords);
  int64_t trainable = 0;  // as Fsdp::trainable_elements(): gradients and AdamW moments exist for these only
  for (const UnitShard& s : shards) {
    r.shard_elements += s.mine;
    if (s.trainable) trainable += s.mine;
  }
  r.memory.weights = r.shard_elements * kF;
  r.memory.grads = trainable * kF;
  r.memory.optimizer = 2 * trainable * kF;

  // FSDP: replay one micro-batch; every micro-batch repeats it (nothing stays gathered in between).
  FsdpReplay fsdp(shards);
  replay_micro_batch(stage_model, fsdp);
  const int64_t M = batch.grad_accum;
  for (size_t u = 0; u < shards.size(); ++u) {
    const UnitShard& s = shards[u];
    if (!s.present || s.direct) continue;
    r.largest_unit_bytes = std::max(r.largest_unit_bytes, s.span * kF);
    const MeshGroup group = s.experts ? MeshGroup::kEdp : MeshGroup::kDp;
    const uint64_t others = (s.total - s.mine) * kF;  // all_gather_v / reduce_scatter_v: total - mine
    r.comm.add(group, CommOp::kAllGather, M * fsdp.gathers[u] * others);
    r.comm.add(group, CommOp::kReduceScatter, M * fsdp.scatters[u] * others);
  }
  r.memory.working = fsdp.peak_floats * kF;

  const LocalTokens t = local_tokens(batch, mesh);
  add_other_comm(m, batch, mesh, t, r);
  r.memory.in_flight = std::max<int64_t>(1, std::min<int64_t>(M, mesh.pp - r.coords.pp));
  r.memory.activations_per_micro_batch = stash_bytes(m, r.stage, t.n, mesh.ep);
  r.memory.activations = r.memory.in_flight * r.memory.activations_per_micro_batch;
  r.memory.workspace = workspace_bytes(m, r.stage, t.n);
  r.memory.comm_buffers = comm_buffer_bytes(m, mesh, r, t, shards, M);
  return r;
}

RankPlan plan_rank(const ModelConfig& model, const BatchShape& batch, const MeshConfig& mesh, int trainer_rank) {
  const MeshCoords c = mesh_coords(mesh, trainer_rank);
  const Transformer stage_model(model, /*allocate_full=*/false, stage_range(model, mesh, c.pp));
  return plan_rank(stage_model, batch, mesh, trainer_rank);
}

}  // namespace flywheel
