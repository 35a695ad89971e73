// The analytic step plan (src/parallel/plan.h) against what the code holds, the mesh rules, and the
// published sizes of the catalog shapes. Its communication figures are checked against the MPI
// counters by tests/mpi/comm_volume.cpp (label mpi).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "launch/shape.h"
#include "parallel/plan.h"
#include "data/sampler.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

Shape shape_of(const std::string& name, const std::vector<std::string>& overrides = {}) {
  return load_shape(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/" + name + ".ini", overrides);
}

template <typename V>
int64_t bytes(const V& v) {
  return static_cast<int64_t>(v.size() * sizeof(typename V::value_type));
}
int64_t swiglu_bytes(const SwiGluActivations& a) { return bytes(a.gate) + bytes(a.up) + bytes(a.act); }

// Every buffer a stash holds after forward and backward (ExpertDispatch's private tables excepted).
int64_t measured_stash_bytes(const ActivationStash& s) {
  int64_t b = bytes(s.stage_out) + bytes(s.final_normed) + bytes(s.final_rstd) + bytes(s.tokens);
  for (const ActivationStash::Layer& l : s.layers) {
    b += bytes(l.x_in) + bytes(l.x_mid) + bytes(l.ffn_normed) + bytes(l.ffn_rstd);
    const AttentionActivations& a = l.attention;
    b += bytes(a.normed) + bytes(a.rstd) + bytes(a.q) + bytes(a.k) + bytes(a.v) + bytes(a.attn) + bytes(a.lse);
    b += swiglu_bytes(l.dense);
    const MoeActivations& m = l.moe;
    b += bytes(m.router_probs) + bytes(m.expert_of_slot) + bytes(m.slot_weight) + bytes(m.grouped_in) +
         bytes(m.slot_out) + swiglu_bytes(m.shared_act) + bytes(m.routed_fraction);
    for (const SwiGluActivations& e : m.expert_act) b += swiglu_bytes(e);
  }
  return b;
}

TEST(Plan, ShardedStateMatchesFsdpOnOneRank) {
  for (const auto& [name, extra] : std::vector<std::pair<std::string, std::string>>{
           {"tiny-dense", "--model.tie_embeddings=false"},
           {"tiny-dense", "--model.tie_embeddings=true"},
           {"tiny-moe", "--model.tie_embeddings=false"}}) {
    Shape shape = shape_of(name, {"--model.n_layers=2", "--train.micro_batch=4", "--train.seq_len=16", extra});
    shape.validate(1);
    auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
    Trainer trainer(shape.train_spec(), *source);
    trainer.train_step(0);
    const RankPlan plan = plan_rank(shape.model, shape.train.batch(), shape.mesh, 0);
    EXPECT_EQ(plan.shard_elements, trainer.shards().shard_elements()) << name << " " << extra;
    EXPECT_EQ(plan.memory.weights + plan.memory.grads + plan.memory.optimizer,
              16 * trainer.shards().shard_elements());
    EXPECT_EQ(plan.memory.working, trainer.shards().peak_working_bytes());  // 0: bound in place
    EXPECT_EQ(plan.comm.total(), 0u) << "a mesh of one sends nothing";
  }
}

// Every parameter element lives on exactly one trainer rank, for uneven row splits too.
TEST(Plan, ShardsPartitionTheModelOnEveryMesh) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"tiny-dense", {"--mesh.fsdp=3", "--train.micro_batch=6"}},
      {"tiny-dense", {"--mesh.pp=2", "--mesh.fsdp=2", "--mesh.cp=2"}},
      {"tiny-moe", {"--mesh.fsdp=4", "--mesh.ep=2"}},
      {"tiny-moe", {"--mesh.pp=2", "--mesh.fsdp=2", "--mesh.cp=3", "--mesh.ep=2", "--train.seq_len=24"}}};
  for (const auto& [name, overrides] : cases) {
    Shape shape = shape_of(name, overrides);
    shape.validate(shape.mesh.world_size());
    const StepPlan plan = plan_step(shape.model, shape.train.batch(), shape.mesh);
    int64_t held = 0;
    for (const RankPlan& r : plan.ranks) held += r.shard_elements;
    EXPECT_EQ(held, registry_params(shape.model)) << name << " " << overrides.back();
    EXPECT_EQ(plan.total_params, shape.model.total_params());
  }
}

// Dense FSDP over G ranks, no CP, untied: per micro-batch each unit is gathered twice and
// reduce-scattered once, and over the group sum_r (total - mine_r) = (G - 1) total.
TEST(Plan, FsdpTrafficSumsToTheRingVolume) {
  Shape shape = shape_of("tiny-dense", {"--mesh.fsdp=4", "--train.micro_batch=8", "--train.grad_accum=3"});
  shape.validate(4);
  const StepPlan plan = plan_step(shape.model, shape.train.batch(), shape.mesh);
  uint64_t gathered = 0, scattered = 0;
  for (const RankPlan& r : plan.ranks) {
    gathered += r.comm.op(CommOp::kAllGather);
    scattered += r.comm.op(CommOp::kReduceScatter);
  }
  const uint64_t ring = 3 * 4 * static_cast<uint64_t>(registry_params(shape.model)) * 3;  // M (G-1) 4 B P
  EXPECT_EQ(gathered, 2 * ring);
  EXPECT_EQ(scattered, ring);
}

// The activation estimate against the buffers a stash really holds after one micro-batch.
void expect_stash_matches(const Shape& shape, int trainer_rank) {
  const RankPlan plan = plan_rank(shape.model, shape.train.batch(), shape.mesh, trainer_rank);
  Transformer model(shape.model, /*allocate_full=*/true, plan.stage);
  model.initialize(shape.train.seed);
  auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
  const Batch batch = Sampler(*source, shape.train.seed, shape.train.seq_len).make_batch(0, shape.train.micro_batch);
  const int64_t n = batch.rows * batch.seq, d = shape.model.d_model;
  std::vector<float> hidden(n * d, 0.01f), dout(n * d, 0.001f), din(n * d);
  ActivationStash stash;
  model.stage_forward(stash, batch.tokens.data(), hidden.data(), batch.rows, batch.seq);
  model.stage_backward(stash, batch.targets.data(), batch.loss_mask.data(), dout.data(), din.data(), 0.01);
  const int64_t measured = measured_stash_bytes(stash);
  const int64_t planned = plan.memory.activations_per_micro_batch;
  std::printf("%s rank %d (layers %d-%d): stash %lld B, plan %lld B (%+.2f%%)\n", shape.name.c_str(),
              trainer_rank, plan.stage.first_layer, plan.stage.end_layer - 1, static_cast<long long>(measured),
              static_cast<long long>(planned), 100.0 * (planned - measured) / measured);
  EXPECT_NEAR(static_cast<double>(planned), static_cast<double>(measured), 0.10 * measured);
}

TEST(Plan, ActivationsMatchTheStashWithinTenPercent) {
  expect_stash_matches(shape_of("tiny-dense"), 0);
  expect_stash_matches(shape_of("tiny-moe"), 0);
  expect_stash_matches(shape_of("tiny-moe", {"--model.moe_shared_expert=false", "--model.moe_top_k=1"}), 0);
  // Pipeline stages: the first holds the input ids, the last the final norm's outputs.
  const Shape pp = shape_of("tiny-dense", {"--mesh.pp=2"});
  expect_stash_matches(pp, 0);
  expect_stash_matches(pp, 1);
}

TEST(Plan, InFlightStashesFollowOneFOneB) {
  Shape shape = shape_of("tiny-dense", {"--mesh.pp=4", "--train.grad_accum=3"});
  shape.validate(4);
  const StepPlan plan = plan_step(shape.model, shape.train.batch(), shape.mesh);
  const int64_t expected[] = {3, 3, 2, 1};  // min(grad_accum, pp - stage)
  for (int s = 0; s < 4; ++s) EXPECT_EQ(plan.ranks[s].memory.in_flight, expected[s]) << "stage " << s;
  EXPECT_NEAR(plan.estimate.bubble_fraction, 3.0 / 6.0, 1e-12);  // (P-1)/(M+P-1)
}

TEST(Plan, ProposalsAreExactlyTheLegalMeshesThatFit) {
  Shape shape = shape_of("tiny-moe", {"--train.micro_batch=8", "--train.seq_len=16"});
  const ModelConfig& m = shape.model;
  const TrainConfig& t = shape.train;
  const std::vector<MeshProposal> fits = propose_meshes(m, t.batch(), 8, int64_t{1} << 30);
  int legal = 0;  // by the rules of check_mesh_fits, written out independently
  for (int64_t pp = 1; pp <= 8; ++pp)
    for (int64_t fsdp = 1; fsdp <= 8; ++fsdp)
      for (int64_t cp = 1; cp <= 8; ++cp)
        for (int64_t ep = 1; ep <= 8; ++ep)
          legal += pp * fsdp * cp == 8 && m.n_layers % pp == 0 && t.micro_batch % fsdp == 0 &&
                   (cp == 1 || t.seq_len % (2 * cp) == 0) && m.moe_experts % ep == 0 && (fsdp * cp) % ep == 0;
  EXPECT_EQ(static_cast<int>(fits.size()), legal);
  bool pipelined = false, expert_parallel = false;
  for (size_t i = 0; i < fits.size(); ++i) {
    const MeshConfig& x = fits[i].mesh;
    EXPECT_EQ(x.trainer_ranks(), 8);
    EXPECT_TRUE(mesh_is_legal(m, t.batch(), x));
    EXPECT_LE(fits[i].peak_bytes, int64_t{1} << 30);
    if (i > 0) {
      EXPECT_LE(fits[i - 1].estimate.step_s, fits[i].estimate.step_s);
    }
    pipelined |= x.pp > 1;
    expert_parallel |= x.ep > 1;
  }
  EXPECT_TRUE(pipelined && expert_parallel);
}

TEST(Plan, TooSmallDeviceYieldsNoProposalAndSaysWhy) {
  const Shape shape = shape_of("tiny-dense");
  std::string why;
  EXPECT_TRUE(propose_meshes(shape.model, shape.train.batch(), 4, 1 << 20, {}, &why).empty());
  EXPECT_NE(why.find("no legal mesh of 4 trainer ranks fits in 1.00 MiB per rank"), std::string::npos) << why;
  EXPECT_NE(why.find("the smallest worst-rank peak is"), std::string::npos) << why;
  why.clear();
  EXPECT_TRUE(propose_meshes(shape.model, shape.train.batch(), 7, int64_t{1} << 40, {}, &why).empty());
  EXPECT_NE(why.find("no legal mesh of 7 trainer ranks for this shape"), std::string::npos) << why;
}

// Published sizes: Llama 3 8B = 8.03 B parameters; Qwen3-30B-A3B = 30.5 B total, 3.3 B activated.
TEST(Plan, CatalogShapesMatchTheirModelCards) {
  const Shape llama = shape_of("llama-8b");
  llama.validate(llama.mesh.world_size());
  EXPECT_NEAR(registry_params(llama.model) / 8.03e9, 1.0, 0.01);
  const Shape qwen = shape_of("moe-30b-a3b");
  qwen.validate(qwen.mesh.world_size());
  EXPECT_NEAR(registry_params(qwen.model) / 30.5e9, 1.0, 0.01);
  EXPECT_NEAR(active_params(qwen.model) / 3.3e9, 1.0, 0.03);

  for (const Shape* s : {&llama, &qwen}) {
    const StepPlan plan = plan_step(s->model, s->train.batch(), s->mesh);
    const double ranks = static_cast<double>(s->mesh.trainer_ranks());
    const RankPlan& worst = plan.worst_memory();
    // Sharded state is about 16 B x parameters / ranks on every rank (stages and splits are even).
    EXPECT_NEAR(static_cast<double>(worst.shard_elements) / (plan.total_params / ranks), 1.0, 0.15) << s->name;
    EXPECT_LT(worst.memory.total(), int64_t{80} << 30) << s->name << " must fit an 80 GiB device";
    EXPECT_GT(worst.memory.activations, worst.memory.weights) << s->name;
    EXPECT_GT(plan.estimate.step_s, 0.1) << s->name;
    EXPECT_LT(plan.estimate.step_s, 600) << s->name;
    EXPECT_EQ(plan.worst_comm().comm.all_to_all_estimated, s->mesh.ep > 1) << s->name;
  }
}

}  // namespace
}  // namespace flywheel
