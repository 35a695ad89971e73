// train_step_bench: how fast is one training step, measured against what the BLAS can do here.
//
//   train_step_bench [--shape configs/shapes/gpt2-124m.ini] [--threads 2] [--steps 3] [--warmup 1]
//                    [--rows R] [--seq T] [--sgemm-n 2048] [--json FILE] [--profile]
//                    [--model.key=value ...]   (any other shape override, as for `flywheel train`)
//
// 1. Baseline, same process and thread count: OpenBLAS sgemm C = A B at n x n x n (best of 5 after one
//    warm-up), plus the model's dominant GEMM (the MLP up-projection, [tokens x d_ff x d_model], in the
//    layout linear_forward uses) for context.
// 2. The real Trainer on the shape (grad_accum 1): `warmup` untimed steps, then `steps` timed ones.
// 3. Model FLOPs per step = 6 N_active tokens + causal attention (QK^T and PV, forward + backward =
//    3x forward; the flash backward's recomputation is work we choose to do, not model FLOPs), as a
//    rate and as a fraction of the square-sgemm rate (target: >= 0.5).
// 4. Peak RSS next to the 16 bytes/parameter of weights + grads + Adam m, v.
// 5. --profile: replays one training step op by op -- the same ops, the same arguments, the same
//    order, the same temporaries as Transformer::forward_backward and Trainer::train_step, on the
//    trainer's own weights, gradients and Adam moments -- with a timer around every op, and reports
//    each op's seconds per step and share of a real step. The replay mirrors, for dense models on one
//    rank, Trainer::train_step -> run_pipeline_step (a fresh ActivationStash per step) ->
//    Transformer::stage_forward / layer_forward / head_forward / stage_backward / head_backward /
//    layer_backward (src/model/transformer.cpp), attention_block.cpp, ffn_block.cpp, then the
//    optimizer on the Fsdp shard storage. Two checks say whether it still does: before timing, the
//    replay and a real train_step on the same weights and batch must give bit-identical loss and
//    gradient norm; and the "sum of timed ops" must match the real steps interleaved with the
//    replays. If src/ moves on, StepReplay::run must follow it. --replay-stash kept replays with
//    the activation stash kept across steps instead (what reusing it would save).
//    Minor page faults are counted per op and per real step: on this project's VMs a first touch of
//    fresh memory is expensive, and malloc returns freed multi-MiB blocks to the OS (so they fault
//    again) depending on its heap state -- the replay's counts can differ from the trainer's.
//
// A benchmark, not a test: it is never registered with ctest.
#include <sys/resource.h>
#include <unistd.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_args.h"
#include "core/buffer.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/threads.h"
#include "launch/shape.h"
#include "model/config.h"
#include "model/parameters.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gemm.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "parallel/fsdp.h"
#include "data/data_source.h"
#include "data/sampler.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace {

using flywheel::Buffer;
using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

std::string fmt(const char* format, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}

std::string dims(int64_t m, int64_t n, int64_t k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

// Deterministic values in [-1, 1) (a cheap counter hash; only the timing matters).
void fill_uniform(float* x, int64_t count, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    x[i] = static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
}

// ---- sgemm baseline ---------------------------------------------------------------------------------

struct GemmRate {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  double best_s = 0, gflops = 0;
};

// C[M,N] = op(A) op(B) through the project's gemm wrapper (cblas_sgemm): one warm-up, best of `reps`.
GemmRate sgemm_rate(int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, int reps) {
  Buffer<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n)), c(static_cast<size_t>(m * n));
  fill_uniform(a.data(), m * k, 1);
  fill_uniform(b.data(), k * n, 2);
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  auto run = [&] {
    const double t0 = now_s();
    flywheel::ops::gemm<float>(trans_a, trans_b, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n);
    return now_s() - t0;
  };
  run();  // warm-up: page faults, BLAS buffers, thread start
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) best = std::min(best, run());
  return {m, n, k, trans_a, trans_b, best, 2.0 * static_cast<double>(m) * n * k / best * 1e-9};
}

// ---- FLOP model -------------------------------------------------------------------------------------

// Causal attention, model FLOPs of one forward: QK^T and PV over the visible half, 2 FLOPs per MAC.
double attention_forward_flops(const flywheel::ModelConfig& c, int64_t rows, int64_t seq) {
  const double pairs = static_cast<double>(seq) * static_cast<double>(seq + 1) / 2.0;
  return static_cast<double>(rows) * 2.0 * 2.0 * static_cast<double>(c.n_heads * c.resolved_head_dim()) * pairs;
}

double model_flops_per_step(const flywheel::ModelConfig& c, int64_t rows, int64_t seq) {
  const double tokens = static_cast<double>(rows * seq);
  return 6.0 * static_cast<double>(c.active_matmul_params()) * tokens +
         3.0 * static_cast<double>(c.n_layers) * attention_forward_flops(c, rows, seq);
}

// ---- profile ----------------------------------------------------------------------------------------

int64_t minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Accumulates seconds (and FLOPs / bytes moved, where meaningful) per named op, grouped by phase.
class Profiler {
 public:
  struct Entry {
    std::string group, name;
    double seconds = 0, flops = 0, bytes = 0;  // summed over runs
    int64_t calls = 0, faults = 0;              // faults: minor page faults (first touch of fresh memory)
    std::vector<double> runs;  // seconds per run (replay), to report the least-disturbed one
  };

  void begin_run(int run) { run_ = run; }
  int runs() const { return run_ + 1; }

  template <typename F>
  void time(const std::string& group, const std::string& name, double flops, double bytes, F&& f) {
    const int64_t faults0 = minor_faults();
    const double t0 = now_s();
    f();
    const double dt = now_s() - t0;
    Entry& e = entry(group, name);
    e.faults += minor_faults() - faults0;
    e.seconds += dt;
    e.flops += flops;
    e.bytes += bytes;
    e.calls += 1;
    if (e.runs.size() <= static_cast<size_t>(run_)) e.runs.resize(run_ + 1, 0.0);
    e.runs[run_] += dt;
  }
  void clear() {
    entries_.clear();
    index_.clear();
    run_ = 0;
  }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  Entry& entry(const std::string& group, const std::string& name) {
    const std::string key = group + "\n" + name;
    auto it = index_.find(key);
    if (it == index_.end()) {
      it = index_.emplace(key, entries_.size()).first;
      entries_.push_back(Entry{group, name, 0, 0, 0, 0, 0, {}});
    }
    return entries_[it->second];
  }
  std::vector<Entry> entries_;  // first-seen order
  std::map<std::string, size_t> index_;
  int run_ = 0;
};

double min_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

// The per-layer activations kept between forward and backward (ActivationStash::Layer).
struct LayerActs {
  Buffer<float> x_in, x_mid, ffn_normed, ffn_rstd;
  Buffer<float> normed, rstd, q, k, v, attn, lse;  // AttentionActivations
  Buffer<float> gate, up, act;                     // SwiGluActivations
};

struct LayerParams {
  int input_norm, q, k, v, o, post_norm, gate, up, down;
};

// Replays Trainer::train_step for one micro-batch of a dense model on one rank, op by op, with timers,
// on the trainer's weights, gradients and Adam moments (trainer.shards(): with one rank the model is
// bound straight to the shard storage, so the Fsdp hooks do nothing and are not replayed).
class StepReplay {
 public:
  StepReplay(flywheel::Trainer& trainer, const flywheel::DataSource& source, bool fresh_stash)
      : trainer_(trainer),
        fresh_stash_(fresh_stash),
        shape_(trainer.spec()),
        c_(shape_.model),
        params_(trainer.model().params()),
        sampler_(source, shape_.train.seed, shape_.train.seq_len),
        rope_(c_.resolved_head_dim(), c_.max_seq_len, c_.rope_theta) {
    FW_CHECK(!c_.is_moe(), "--profile replays dense models only (the shape has model.moe_experts = ",
             c_.moe_experts, ")");
    auto id = [&](const std::string& name) {
      const int i = params_.find(name);
      FW_CHECK(i >= 0, "--profile: parameter ", name, " not found (has the parameter naming changed?)");
      return i;
    };
    embed_ = id("model.embed_tokens.weight");
    final_norm_ = id("model.norm.weight");
    head_ = c_.tie_embeddings ? embed_ : id("lm_head.weight");
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      layers_.push_back({id(p + "input_layernorm.weight"), id(p + "self_attn.q_proj.weight"),
                         id(p + "self_attn.k_proj.weight"), id(p + "self_attn.v_proj.weight"),
                         id(p + "self_attn.o_proj.weight"), id(p + "post_attention_layernorm.weight"),
                         id(p + "mlp.gate_proj.weight"), id(p + "mlp.up_proj.weight"), id(p + "mlp.down_proj.weight")});
    }
    acts_.resize(c_.n_layers);
  }

  // apply_optimizer = false stops after the gradient norm (for the check against a real step).
  void run(int64_t step, Profiler& P, bool apply_optimizer = true) {
    namespace ops = flywheel::ops;
    const flywheel::TrainConfig& tc = shape_.train;
    const int64_t rows = tc.micro_batch, seq = tc.seq_len, n = rows * seq;
    const int64_t d = c_.d_model, hd = c_.resolved_head_dim(), ff = c_.d_ff, vocab = c_.vocab_size;
    const int64_t qw = c_.n_heads * hd, kvw = c_.n_kv_heads * hd;
    const double eps = c_.norm_eps;
    const double f4 = 4.0;  // bytes per float
    const double nd = static_cast<double>(n * d), nf = static_cast<double>(n * ff);

    // --- data: Trainer::train_step builds the batch and the per-token loss weights.
    flywheel::Batch batch;
    std::vector<float> ce_weight;
    P.time("data", "sampler.make_batch + ce weights", 0, 0, [&] {
      batch = sampler_.make_batch(step * tc.micro_batch, tc.micro_batch);
      const int64_t loss_tokens = batch.loss_tokens();
      const double inv = loss_tokens > 0 ? 1.0 / static_cast<double>(loss_tokens) : 0.0;
      ce_weight.resize(batch.loss_mask.size());
      for (size_t i = 0; i < ce_weight.size(); ++i) ce_weight[i] = static_cast<float>(batch.loss_mask[i] * inv);
    });
    const int32_t* tokens = batch.tokens.data();
    const int32_t* targets = batch.targets.data();

    const double pbytes = f4 * static_cast<double>(params_.numel());
    flywheel::Fsdp& shards = trainer_.shards();  // one rank: the model is bound straight to the shard storage
    P.time("optimizer", "zero_grads", 0, pbytes, [&] { shards.zero_grads(); });

    // --- GEMM helpers: the exact ops::gemm calls of linear_forward / linear_backward (gemm.cpp).
    auto gemm = [&](const std::string& group, const std::string& label, bool ta, bool tb, int64_t M, int64_t N,
                    int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc, const std::string& shape_tag = "") {
      const std::string name = label + "  " + (ta ? "T" : "N") + (tb ? "T" : "N") + " " +
                               (shape_tag.empty() ? dims(M, N, K) : shape_tag);
      P.time(group, name, 2.0 * static_cast<double>(M) * N * K, 0,
             [&] { ops::gemm<float>(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc); });
    };
    auto lin_fwd = [&](const std::string& group, const std::string& label, const float* x, const float* w, float* y,
                       int64_t rows_, int64_t in, int64_t out, const std::string& tag = "") {
      gemm(group, label + " fwd", false, true, rows_, out, in, x, in, w, in, 0.0f, y, out, tag);
    };
    auto lin_bwd = [&](const std::string& group, const std::string& label, const float* x, const float* w,
                       const float* dy, float* dx, float* dw, int64_t rows_, int64_t in, int64_t out, bool acc,
                       const std::string& tag_dx = "", const std::string& tag_dw = "") {
      gemm(group, label + " bwd dx", false, false, rows_, in, out, dy, out, w, in, acc ? 1.0f : 0.0f, dx, in, tag_dx);
      gemm(group, label + " bwd dW", true, false, out, in, rows_, dy, out, x, in, 1.0f, dw, in, tag_dw);
    };
    // Temporaries that the blocks allocate (value-initialised, so zero-filled) and free per call.
    auto alloc = [&](Buffer<float>& b, int64_t count) {
      P.time("other", "temporaries: alloc + zero + free", 0, f4 * static_cast<double>(count),
             [&] { b = Buffer<float>(static_cast<size_t>(count)); });
    };
    auto release = [&](Buffer<float>& b) {
      P.time("other", "temporaries: alloc + zero + free", 0, 0, [&] { Buffer<float>().swap(b); });
    };
    auto residual = [&](const std::string& name, float* dst, const float* a, const float* b, int64_t count) {
      P.time("other", name, 0, 3 * f4 * static_cast<double>(count), [&] {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < count; ++i) dst[i] = a[i] + b[i];
      });
    };
    const std::string G_ATT = "gemm: attention projections", G_MLP = "gemm: MLP", G_HEAD = "gemm: LM head";
    const double attn_fwd_flops = attention_forward_flops(c_, rows, seq);
    const flywheel::ops::AttentionShape ashape{rows, seq, c_.n_heads, c_.n_kv_heads, hd};

    // --- run_pipeline_step (src/parallel/pipeline.cpp) builds its ActivationStash per call, so every
    // step allocates and first-touches all activations afresh (fresh_stash_); a kept stash is the
    // alternative (--replay-stash kept) that shows what reusing it would save.
    if (fresh_stash_) {
      acts_ = std::vector<LayerActs>(c_.n_layers);
      stage_out_ = Buffer<float>();
      final_normed_ = Buffer<float>();
      final_rstd_ = Buffer<float>();
    }
    // --- Transformer::stage_forward (whole model: embedding, layers, head_forward)
    Buffer<float> x;
    alloc(x, n * d);
    P.time("embedding", "embedding fwd", 0, 2 * f4 * nd,
           [&] { ops::embedding_forward(params_.value(embed_), tokens, x.data(), n, d, vocab); });
    P.time("other", fresh_stash_ ? kStashFresh : "activation stash: resize (no-op when kept)", 0, 0,
           [&] { stage_out_.resize(n * d); });
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      // layer_forward(l, act, x_in = x, x_out = stage_out)
      LayerActs& a = acts_[l];
      const LayerParams& id = layers_[l];
      const float* x_in = x.data();
      float* x_out = stage_out_.data();
      // The stash's resizes happen in layer_forward / attention_block_forward / ffn just before use;
      // timed together here (same memory, same first touches).
      P.time("other", fresh_stash_ ? kStashFresh : "residual copy/add", 0, 2 * f4 * nd,
             [&] { a.x_in.assign(x_in, x_in + n * d); });
      P.time("other", fresh_stash_ ? kStashFresh : "activation stash: resize (no-op when kept)", 0, 0, [&] {
        a.x_mid.resize(n * d);
        a.normed.resize(n * d);
        a.rstd.resize(n);
        a.q.resize(n * qw);
        a.k.resize(n * kvw);
        a.v.resize(n * kvw);
        a.attn.resize(n * qw);
        a.lse.resize(rows * c_.n_heads * seq);
        a.ffn_normed.resize(n * d);
        a.ffn_rstd.resize(n);
        a.gate.resize(n * ff);
        a.up.resize(n * ff);
        a.act.resize(n * ff);
      });
      // attention_block_forward(x_in -> x_mid)
      P.time("rmsnorm", "rmsnorm fwd", 0, 2 * f4 * nd, [&] {
        ops::rmsnorm_forward(a.x_in.data(), params_.value(id.input_norm), a.normed.data(), a.rstd.data(), n, d, eps);
      });
      lin_fwd(G_ATT, "q/k/v", a.normed.data(), params_.value(id.q), a.q.data(), n, d, qw);
      lin_fwd(G_ATT, "q/k/v", a.normed.data(), params_.value(id.k), a.k.data(), n, d, kvw);
      lin_fwd(G_ATT, "q/k/v", a.normed.data(), params_.value(id.v), a.v.data(), n, d, kvw);
      P.time("rope", "rope fwd (q, k)", 0, 2 * f4 * static_cast<double>(n * (qw + kvw)), [&] {
        ops::rope_apply(rope_, a.q.data(), rows, seq, c_.n_heads);
        ops::rope_apply(rope_, a.k.data(), rows, seq, c_.n_kv_heads);
      });
      P.time("attention kernel", "attention_forward", attn_fwd_flops, 0, [&] {
        ops::attention_forward(ashape, a.q.data(), a.k.data(), a.v.data(), a.attn.data(), a.lse.data());
      });
      float* x_mid = a.x_mid.data();
      P.time("other", "residual copy/add", 0, 2 * f4 * nd,
             [&] { std::copy(a.x_in.data(), a.x_in.data() + n * d, x_mid); });
      gemm(G_ATT, "o fwd (+residual)", false, true, n, d, qw, a.attn.data(), qw, params_.value(id.o), qw, 1.0f, x_mid,
           d);
      // rest of layer_forward: post-attention norm, SwiGLU FFN into a temporary, residual into x_out
      P.time("rmsnorm", "rmsnorm fwd", 0, 2 * f4 * nd, [&] {
        ops::rmsnorm_forward(x_mid, params_.value(id.post_norm), a.ffn_normed.data(), a.ffn_rstd.data(), n, d, eps);
      });
      Buffer<float> y;
      alloc(y, n * d);
      lin_fwd(G_MLP, "gate/up", a.ffn_normed.data(), params_.value(id.gate), a.gate.data(), n, d, ff);
      lin_fwd(G_MLP, "gate/up", a.ffn_normed.data(), params_.value(id.up), a.up.data(), n, d, ff);
      P.time("swiglu", "swiglu fwd", 0, 3 * f4 * nf,
             [&] { ops::swiglu_forward(a.gate.data(), a.up.data(), a.act.data(), n * ff); });
      lin_fwd(G_MLP, "down", a.act.data(), params_.value(id.down), y.data(), n, ff, d);
      residual("residual copy/add", x_out, x_mid, y.data(), n * d);
      release(y);
      std::swap(x, stage_out_);
    }
    std::swap(x, stage_out_);
    release(x);
    // head_forward
    P.time("other", fresh_stash_ ? kStashFresh : "activation stash: resize (no-op when kept)", 0, 0, [&] {
      final_normed_.resize(n * d);
      final_rstd_.resize(n);
    });
    P.time("rmsnorm", "rmsnorm fwd", 0, 2 * f4 * nd, [&] {
      ops::rmsnorm_forward(stage_out_.data(), params_.value(final_norm_), final_normed_.data(), final_rstd_.data(), n,
                           d, eps);
    });

    // --- Transformer::stage_backward: head_backward (LM head + cross-entropy in chunks), layers, embedding
    Buffer<float> dx, dprev;
    alloc(dx, n * d);
    alloc(dprev, n * d);
    const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 24) / vocab, 1, n);
    const std::string tag_fwd = "[" + std::to_string(n) + "x" + std::to_string(vocab) + "x" + std::to_string(d) +
                                " in chunks of " + std::to_string(chunk) + " rows]";
    const std::string tag_dx = "[" + std::to_string(n) + "x" + std::to_string(d) + "x" + std::to_string(vocab) + "]";
    const std::string tag_dw = "[" + std::to_string(vocab) + "x" + std::to_string(d) + "x" + std::to_string(n) + "]";
    Buffer<float> dfinal, logits;
    alloc(dfinal, n * d);
    alloc(logits, chunk * vocab);
    double ce_loss = 0;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t m = std::min(chunk, n - r0);
      const float* h = final_normed_.data() + r0 * d;
      lin_fwd(G_HEAD, "lm head", h, params_.value(head_), logits.data(), m, d, vocab, tag_fwd);
      P.time("cross-entropy", "cross_entropy (fwd + grad)", 0, 2 * f4 * static_cast<double>(m * vocab), [&] {
        ce_loss += ops::cross_entropy(logits.data(), targets + r0, ce_weight.data() + r0, m, vocab, true);
      });
      lin_bwd(G_HEAD, "lm head", h, params_.value(head_), logits.data(), dfinal.data() + r0 * d, params_.grad(head_), m,
              d, vocab, false, tag_dx, tag_dw);
    }
    last_loss_ = ce_loss;
    P.time("rmsnorm", "rmsnorm bwd", 0, 3 * f4 * nd, [&] {
      ops::rmsnorm_backward(stage_out_.data(), params_.value(final_norm_), final_rstd_.data(), dfinal.data(), dx.data(),
                            params_.grad(final_norm_), n, d);
    });
    release(logits);
    release(dfinal);
    for (int64_t l = c_.n_layers - 1; l >= 0; --l) {
      // layer_backward(l, act, dx_out = dx, dx_in = dprev)
      LayerActs& a = acts_[l];
      const LayerParams& id = layers_[l];
      Buffer<float> dnormed, dmid;
      alloc(dnormed, n * d);
      alloc(dmid, n * d);
      {  // swiglu_ffn_backward(dy = dx -> dnormed)
        Buffer<float> dact;
        alloc(dact, n * ff);
        lin_bwd(G_MLP, "down", a.act.data(), params_.value(id.down), dx.data(), dact.data(), params_.grad(id.down), n,
                ff, d, false);
        P.time("swiglu", "swiglu bwd", 0, 5 * f4 * nf, [&] {
          ops::swiglu_backward(a.gate.data(), a.up.data(), dact.data(), a.gate.data(), a.up.data(), n * ff);
        });
        lin_bwd(G_MLP, "gate/up", a.ffn_normed.data(), params_.value(id.gate), a.gate.data(), dnormed.data(),
                params_.grad(id.gate), n, d, ff, false);
        lin_bwd(G_MLP, "gate/up", a.ffn_normed.data(), params_.value(id.up), a.up.data(), dnormed.data(),
                params_.grad(id.up), n, d, ff, true);
        release(dact);
      }
      P.time("rmsnorm", "rmsnorm bwd", 0, 3 * f4 * nd, [&] {
        ops::rmsnorm_backward(a.x_mid.data(), params_.value(id.post_norm), a.ffn_rstd.data(), dnormed.data(),
                              dmid.data(), params_.grad(id.post_norm), n, d);
      });
      residual("residual copy/add", dmid.data(), dmid.data(), dx.data(), n * d);
      {  // attention_block_backward(x = x_in, dx_out = dmid, dx = dprev)
        Buffer<float> dattn, dq, dk, dv, dnormed2;
        alloc(dattn, n * qw);
        alloc(dq, n * qw);
        alloc(dk, n * kvw);
        alloc(dv, n * kvw);
        lin_bwd(G_ATT, "o", a.attn.data(), params_.value(id.o), dmid.data(), dattn.data(), params_.grad(id.o), n, qw,
                d, false);
        P.time("attention kernel", "attention_backward", 2 * attn_fwd_flops, 0, [&] {
          ops::attention_backward(ashape, a.q.data(), a.k.data(), a.v.data(), a.attn.data(), a.lse.data(),
                                  dattn.data(), dq.data(), dk.data(), dv.data());
        });
        P.time("rope", "rope bwd (dq, dk)", 0, 2 * f4 * static_cast<double>(n * (qw + kvw)), [&] {
          ops::rope_apply(rope_, dq.data(), rows, seq, c_.n_heads, 0, true);
          ops::rope_apply(rope_, dk.data(), rows, seq, c_.n_kv_heads, 0, true);
        });
        alloc(dnormed2, n * d);
        lin_bwd(G_ATT, "q/k/v", a.normed.data(), params_.value(id.q), dq.data(), dnormed2.data(), params_.grad(id.q),
                n, d, qw, false);
        lin_bwd(G_ATT, "q/k/v", a.normed.data(), params_.value(id.k), dk.data(), dnormed2.data(), params_.grad(id.k),
                n, d, kvw, true);
        lin_bwd(G_ATT, "q/k/v", a.normed.data(), params_.value(id.v), dv.data(), dnormed2.data(), params_.grad(id.v),
                n, d, kvw, true);
        P.time("rmsnorm", "rmsnorm bwd", 0, 3 * f4 * nd, [&] {
          ops::rmsnorm_backward(a.x_in.data(), params_.value(id.input_norm), a.rstd.data(), dnormed2.data(),
                                dprev.data(), params_.grad(id.input_norm), n, d);
        });
        residual("residual copy/add", dprev.data(), dprev.data(), dmid.data(), n * d);
        release(dnormed2);
        release(dv);
        release(dk);
        release(dq);
        release(dattn);
      }
      release(dmid);
      release(dnormed);
      std::swap(dx, dprev);
    }
    P.time("embedding", "embedding bwd", 0, 3 * f4 * nd,
           [&] { ops::embedding_backward(tokens, dx.data(), params_.grad(embed_), n, d); });
    release(dprev);
    release(dx);
    if (fresh_stash_)  // the StageRunner (and its stash) goes away at the end of run_pipeline_step
      P.time("other", kStashFresh, 0, 0, [&] {
        acts_.clear();
        Buffer<float>().swap(stage_out_);
        Buffer<float>().swap(final_normed_);
        Buffer<float>().swap(final_rstd_);
      });

    // --- Trainer::train_step after forward_backward: norm, clip, AdamW per shard slice (Trainer::apply_optimizer)
    Buffer<float>& grads = shards.grads();
    double grad_norm = 0;
    P.time("optimizer", "grad norm (sum_of_squares)", 0, pbytes, [&] {
      grad_norm = std::sqrt(ops::sum_of_squares(grads.data(), static_cast<int64_t>(grads.size())));
    });
    last_grad_norm_ = grad_norm;
    if (!apply_optimizer) return;
    if (tc.grad_clip > 0 && grad_norm > tc.grad_clip)
      P.time("optimizer", "grad clip (scale_in_place)", 0, 2 * pbytes, [&] {
        ops::scale_in_place(grads.data(), static_cast<int64_t>(grads.size()),
                            static_cast<float>(tc.grad_clip / grad_norm));
      });
    ops::AdamWHyper hyper{flywheel::learning_rate(tc, step), tc.beta1, tc.beta2, tc.adam_eps, 0.0, step + 1};
    P.time("optimizer", "adamw_update (all parameters)", 0, 7 * pbytes, [&] {
      for (const flywheel::ShardSlice& sl : shards.slices()) {
        hyper.weight_decay = params_.info(sl.param).weight_decay ? tc.weight_decay : 0.0;
        const int64_t o = sl.local_offset;
        ops::adamw_update(shards.values().data() + o, shards.grads().data() + o, shards.adam_m().data() + o,
                          shards.adam_v().data() + o, sl.numel(), hyper);
      }
    });
  }

  double last_loss() const { return last_loss_; }
  double last_grad_norm() const { return last_grad_norm_; }

 private:
  static constexpr const char* kStashFresh = "activation stash: alloc + zero + first touch + free (per step)";
  flywheel::Trainer& trainer_;
  bool fresh_stash_;
  const flywheel::TrainSpec& shape_;
  const flywheel::ModelConfig& c_;
  flywheel::ParameterSet& params_;
  flywheel::Sampler sampler_;
  flywheel::ops::RopeTable<float> rope_;
  int embed_ = -1, final_norm_ = -1, head_ = -1;
  std::vector<LayerParams> layers_;
  std::vector<LayerActs> acts_;
  Buffer<float> stage_out_, final_normed_, final_rstd_;  // ActivationStash::stage_out, final_*
  double last_loss_ = 0, last_grad_norm_ = 0;
};

// What the rest of the machine did while we measured: busy CPU time from /proc/stat (steal included:
// time the hypervisor gave to someone else) minus this process's own CPU time, in cores. On a shared
// machine this says whether a timing can be trusted: 0.0 is a quiet machine, 1.0 a whole core lost.
struct CpuSnapshot {
  double wall = 0, busy = 0, self = 0;
};

CpuSnapshot cpu_snapshot() {
  CpuSnapshot s;
  s.wall = now_s();
  std::ifstream f("/proc/stat");
  std::string label;
  double v[8] = {};  // user nice system idle iowait irq softirq steal
  f >> label;
  for (double& x : v) f >> x;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (f && label == "cpu") s.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  s.self = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  return s;
}

double others_cores(const CpuSnapshot& a, const CpuSnapshot& b) {
  const double wall = b.wall - a.wall;
  return wall > 0 ? std::max(0.0, ((b.busy - a.busy) - (b.self - a.self)) / wall) : 0.0;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::string resolve_shape_path(const std::string& path) {
  if (std::filesystem::exists(path)) return path;
#ifdef FLYWHEEL_SOURCE_DIR
  const std::filesystem::path in_source = std::filesystem::path(FLYWHEEL_SOURCE_DIR) / path;
  if (path.front() != '/' && std::filesystem::exists(in_source)) return in_source.string();
#endif
  return path;  // load_shape reports the missing file
}

int run(int argc, char** argv) {
  flywheel::CommandLine command("train_step_bench",
                                "Training-step throughput against the OpenBLAS sgemm rate at the same thread count.");
  command.option<std::string>("shape", "FILE", "training shape (INI)", "configs/shapes/gpt2-124m.ini")
      .option<int>("threads", "N", "OpenMP + BLAS threads", "2")
      .option<int>("steps", "N", "timed training steps", "3")
      .option<int>("warmup", "N", "untimed training steps first", "1")
      .option<int64_t>("rows", "R", "rows per step (train.micro_batch; default: the shape's)")
      .option<int64_t>("seq", "T", "tokens per row (train.seq_len; default: the shape's)")
      .option<int64_t>("sgemm-n", "N", "square sgemm baseline size", "2048")
      .option<int>("sgemm-reps", "N", "sgemm repetitions after one warm-up (best is reported)", "5")
      .flag("profile", "also replay a step op by op and report where its time goes")
      .option<std::string>("replay-stash", "MODE",
                           "--profile: activation stash allocated per step as run_pipeline_step does (fresh),\n"
                           "or kept across steps (kept: what reusing it would save)",
                           "fresh")
      .option<std::string>("json", "FILE", "also write the figures as one JSON object to FILE")
      .shape_overrides("override a key of the shape, as for `flywheel train`");
  const flywheel::ParsedArgs args = command.parse(argc, argv);
  if (args.help()) {
    std::cout << command.help();
    return 0;
  }
  std::vector<std::string> overrides = args.overrides();
  const int threads = args.get<int>("threads");
  const int steps = args.get<int>("steps"), warmup = args.get<int>("warmup");
  FW_CHECK(steps >= 1 && warmup >= 0, "--steps must be >= 1 and --warmup >= 0");
  if (args.has("rows")) overrides.push_back("--train.micro_batch=" + std::to_string(args.get<int64_t>("rows")));
  if (args.has("seq")) overrides.push_back("--train.seq_len=" + std::to_string(args.get<int64_t>("seq")));
  overrides.push_back("--train.grad_accum=1");
  overrides.push_back("--train.threads=" + std::to_string(threads));

  flywheel::Shape shape = flywheel::load_shape(resolve_shape_path(args.get<std::string>("shape")), overrides);
  shape.validate(1);
  const flywheel::ModelConfig& mc = shape.model;
  const int64_t rows = shape.train.micro_batch, seq = shape.train.seq_len, tokens = rows * seq;

  flywheel::set_thread_count(threads);
  nlohmann::json out;
  out["shape"] = shape.name;
  out["shape_path"] = shape.path;
  out["threads"] = threads;
  out["rows"] = rows;
  out["seq"] = seq;
  out["tokens_per_step"] = tokens;
  out["openblas"] = {{"core", openblas_get_corename()}, {"config", openblas_get_config()}};

  // 1. sgemm baselines.
  const int64_t sn = args.get<int64_t>("sgemm-n");
  const int reps = args.get<int>("sgemm-reps");
  const CpuSnapshot cpu0 = cpu_snapshot();
  const GemmRate square = sgemm_rate(sn, sn, sn, false, false, reps);
  std::printf("openblas: %s\n", openblas_get_config());
  std::printf("sgemm n=%lld, %d threads: %.1f GFLOP/s (best of %d)\n", static_cast<long long>(sn), threads,
              square.gflops, reps);
  const GemmRate up = sgemm_rate(tokens, mc.d_ff, mc.d_model, false, true, reps);
  std::printf("sgemm MLP up-projection [%lld x %lld x %lld] (NT, as linear_forward): %.1f GFLOP/s (best of %d)\n",
              static_cast<long long>(tokens), static_cast<long long>(mc.d_ff), static_cast<long long>(mc.d_model),
              up.gflops, reps);
  const CpuSnapshot cpu1 = cpu_snapshot();
  if (__builtin_cpu_supports("avx512f") && std::string(openblas_get_corename()).find("kylake") == std::string::npos &&
      std::string(openblas_get_corename()).find("ooperlake") == std::string::npos &&
      std::string(openblas_get_corename()).find("apphire") == std::string::npos)
    std::printf("note: the CPU has AVX-512 but OpenBLAS chose its %s kernels (it does not recognise this CPU);"
                " OPENBLAS_CORETYPE=SkylakeX in the environment selects the AVX-512 ones\n",
                openblas_get_corename());
  std::fflush(stdout);
  out["sgemm"] = {{"n", sn}, {"reps", reps}, {"best_s", square.best_s}, {"gflops", square.gflops}};
  out["sgemm_mlp_up"] = {{"m", up.m},           {"n", up.n}, {"k", up.k}, {"layout", "NT"}, {"best_s", up.best_s},
                         {"gflops", up.gflops}};

  // 2. The trainer.
  auto source = flywheel::make_data_source(shape.data, seq, shape.train.seed);
  flywheel::Trainer trainer(shape.train_spec(), *source);
  const int64_t numel = trainer.model().params().numel();
  for (int s = 0; s < warmup; ++s) trainer.train_step(s);
  const CpuSnapshot cpu2 = cpu_snapshot();
  const int64_t faults0 = minor_faults();
  std::vector<double> seconds;
  double last_loss = 0;
  for (int s = 0; s < steps; ++s) {
    const flywheel::StepMetrics m = trainer.train_step(warmup + s);
    FW_CHECK(m.tokens == tokens, "step processed ", m.tokens, " tokens, expected ", tokens);
    seconds.push_back(m.seconds);
    last_loss = m.loss;
  }
  const CpuSnapshot cpu3 = cpu_snapshot();
  const double faults_per_step = static_cast<double>(minor_faults() - faults0) / steps;
  auto mean_of = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return sum / static_cast<double>(v.size());
  };
  const double mean_s = mean_of(seconds);
  const double min_s = min_of(seconds);
  const double load_sgemm = others_cores(cpu0, cpu1), load_steps = others_cores(cpu2, cpu3);
  const double peak_mib = peak_rss_mib();  // before the profile allocates its own state
  const double state_mib = 16.0 * static_cast<double>(numel) / (1024.0 * 1024.0);

  const double flops = model_flops_per_step(mc, rows, seq);
  const double attn_flops = 3.0 * static_cast<double>(mc.n_layers) * attention_forward_flops(mc, rows, seq);
  const double rate_mean = flops / mean_s * 1e-9, rate_best = flops / min_s * 1e-9;
  std::printf("train step %s (%.1fM params, %lld tokens): %.3f s mean, %.3f s min over %d steps (loss %.3f)\n",
              shape.name.c_str(), static_cast<double>(numel) / 1e6, static_cast<long long>(tokens), mean_s, min_s,
              steps, last_loss);
  std::printf("model FLOPs/step: %.1f GFLOP (6 x %.1fM active x %lld tokens + attention %.1f GFLOP)\n", flops * 1e-9,
              static_cast<double>(mc.active_matmul_params()) / 1e6, static_cast<long long>(tokens), attn_flops * 1e-9);
  std::printf("model FLOP/s: %.1f GFLOP/s = %.2f of sgemm (best step: %.1f GFLOP/s = %.2f; target >= 0.5)\n",
              rate_mean, rate_mean / square.gflops, rate_best, rate_best / square.gflops);
  std::printf("tokens/s: %.0f (mean)\n", static_cast<double>(tokens) / mean_s);
  std::printf("peak RSS: %.0f MiB (weights+grads+Adam: %.0f MiB); %.0f minor page faults per step\n", peak_mib,
              state_mib, faults_per_step);
  std::printf("other processes on this machine: %.2f cores during sgemm, %.2f cores during the timed steps%s\n",
              load_sgemm, load_steps,
              std::max(load_sgemm, load_steps) > 0.1 ? " (timings disturbed: rerun on a quiet machine)" : "");
  std::fflush(stdout);
  out["params"] = numel;
  out["active_matmul_params"] = mc.active_matmul_params();
  out["step"] = {{"warmup", warmup}, {"steps", steps},  {"seconds", seconds}, {"mean_s", mean_s},
                 {"min_s", min_s},   {"last_loss", last_loss}};
  out["model_flops_per_step"] = flops;
  out["attention_flops_per_step"] = attn_flops;
  out["model_gflops"] = rate_mean;
  out["model_gflops_best"] = rate_best;
  out["ratio_to_sgemm"] = rate_mean / square.gflops;
  out["ratio_to_sgemm_best"] = rate_best / square.gflops;
  out["tokens_per_s"] = static_cast<double>(tokens) / mean_s;
  out["peak_rss_mib"] = peak_mib;
  out["state_mib"] = state_mib;
  out["minor_faults_per_step"] = faults_per_step;
  out["other_load_cores"] = {{"sgemm", load_sgemm}, {"steps", load_steps}};

  // 3. Profile: replay the step op by op (1 untimed replay, then `steps` timed ones; mean reported).
  if (args.flag("profile")) {
    const std::string stash_mode = args.get<std::string>("replay-stash");
    FW_CHECK(stash_mode == "fresh" || stash_mode == "kept", "--replay-stash must be fresh or kept, got '", stash_mode,
             "'");
    StepReplay replay(trainer, *source, stash_mode == "fresh");
    Profiler P;
    const int64_t first = warmup + steps;
    // Check that the replay is the real step: same weights, same batch -> the same loss and gradient
    // norm as Trainer::train_step (bit-identical: every op is deterministic at a fixed thread count).
    replay.run(first, P, /*apply_optimizer=*/false);
    const flywheel::StepMetrics check = trainer.train_step(first);
    const bool same = check.ce_loss == replay.last_loss() && check.grad_norm == replay.last_grad_norm();
    std::printf("\nreplay check: loss %.9g vs train_step %.9g, grad norm %.9g vs %.9g: %s\n", replay.last_loss(),
                check.ce_loss, replay.last_grad_norm(), check.grad_norm,
                same ? "identical" : "DIFFERENT (src/ changed: update StepReplay to follow it)");
    out["profile_check_identical"] = same;
    P.clear();
    // Replays alternate with real train_steps, so both see the same machine; shares are of the
    // interleaved steps' mean.
    double replay_wall = 0;
    std::vector<double> step_s;
    int64_t step_faults = 0;
    const CpuSnapshot cpu4 = cpu_snapshot();
    for (int s = 0; s < steps; ++s) {
      P.begin_run(s);
      const double t0 = now_s();
      replay.run(first + 1 + 2 * s, P);
      replay_wall += now_s() - t0;
      const int64_t f0 = minor_faults();
      step_s.push_back(trainer.train_step(first + 2 + 2 * s).seconds);
      step_faults += minor_faults() - f0;
    }
    const double load_profile = others_cores(cpu4, cpu_snapshot());
    const double inv = 1.0 / static_cast<double>(steps);
    replay_wall *= inv;
    const double step_mean = mean_of(step_s), step_min = min_of(step_s);
    // Groups sorted by time, each with its ops sorted by time. "min" is the least-disturbed replay
    // (other processes on the machine only ever add time).
    const int runs = steps;
    std::vector<std::string> groups;
    std::map<std::string, double> group_s, group_flops, group_faults;
    std::map<std::string, std::vector<double>> group_runs;
    std::vector<double> total_runs(runs, 0.0);
    double total = 0;
    for (const auto& e : P.entries()) {
      if (!group_s.count(e.group)) groups.push_back(e.group);
      group_s[e.group] += e.seconds * inv;
      group_flops[e.group] += e.flops * inv;
      group_faults[e.group] += static_cast<double>(e.faults) * inv;
      auto& gr = group_runs[e.group];
      gr.resize(runs, 0.0);
      for (size_t r = 0; r < e.runs.size(); ++r) {
        gr[r] += e.runs[r];
        total_runs[r] += e.runs[r];
      }
      total += e.seconds * inv;
    }
    std::stable_sort(groups.begin(), groups.end(),
                     [&](const std::string& a, const std::string& b) { return group_s[a] > group_s[b]; });
    std::printf("\nprofile: one step replayed op by op, %d replays after 1 warm-up, each followed by a real train_step;\n"
                "s/step is the mean, min the least-disturbed replay; shares are of the interleaved train_steps' mean"
                " (%.3f s);\nGFLOP/s counts model FLOPs (attention: causal half, no recomputation); faults: minor page"
                " faults per step\n",
                runs, step_mean);
    std::printf("  %-62s %8s %8s %7s %6s %9s %8s %8s\n", "phase / op", "s/step", "min", "share", "calls", "GFLOP/s",
                "GB/s", "faults");
    nlohmann::json jp = nlohmann::json::array();
    for (const std::string& g : groups) {
      const double gs = group_s[g];
      std::printf("  %-62s %8.3f %8.3f %6.1f%% %6s %9s %8s %8.0f\n", g.c_str(), gs, min_of(group_runs[g]),
                  100.0 * gs / step_mean, "", group_flops[g] > 0 ? fmt("%.1f", group_flops[g] / gs * 1e-9).c_str() : "",
                  "", group_faults[g]);
      std::vector<const Profiler::Entry*> items;
      for (const auto& e : P.entries())
        if (e.group == g) items.push_back(&e);
      std::stable_sort(items.begin(), items.end(),
                       [](const Profiler::Entry* a, const Profiler::Entry* b) { return a->seconds > b->seconds; });
      nlohmann::json jitems = nlohmann::json::array();
      for (const Profiler::Entry* e : items) {
        const double s = e->seconds * inv;
        const double gflops = e->flops > 0 ? e->flops / e->seconds * 1e-9 : 0.0;
        const double gbs = e->bytes > 0 ? e->bytes / e->seconds * 1e-9 : 0.0;
        std::printf("    %-60s %8.3f %8.3f %6.1f%% %6lld %9s %8s %8lld\n", e->name.c_str(), s, min_of(e->runs),
                    100.0 * s / step_mean, static_cast<long long>(e->calls / runs),
                    gflops > 0 ? fmt("%.1f", gflops).c_str() : "", gbs > 0 ? fmt("%.1f", gbs).c_str() : "",
                    static_cast<long long>(e->faults / runs));
        jitems.push_back({{"name", e->name},
                          {"seconds", s},
                          {"min_seconds", min_of(e->runs)},
                          {"share", s / step_mean},
                          {"calls", e->calls / runs},
                          {"gflops", gflops},
                          {"gbytes_per_s", gbs},
                          {"minor_faults", e->faults / runs}});
      }
      jp.push_back({{"group", g},
                    {"seconds", gs},
                    {"min_seconds", min_of(group_runs[g])},
                    {"share", gs / step_mean},
                    {"gflops", group_flops[g] > 0 ? group_flops[g] / gs * 1e-9 : 0.0},
                    {"minor_faults", group_faults[g]},
                    {"ops", jitems}});
    }
    std::printf("  %-62s %8.3f %8.3f %6.1f%%\n", "sum of timed ops", total, min_of(total_runs), 100.0 * total / step_mean);
    std::printf("  %-62s %8.3f %8s %6.1f%%\n", "replay wall time", replay_wall, "", 100.0 * replay_wall / step_mean);
    std::printf("  %-62s %8.3f %8.3f %6.1f%%\n", "measured train_step (interleaved)", step_mean, step_min, 100.0);
    const double interleaved_faults = static_cast<double>(step_faults) / steps;
    std::printf("  minor page faults per step: %.0f in the interleaved train_steps, %.0f in the timed steps above\n",
                interleaved_faults, faults_per_step);
    std::printf("  timed steps above minus interleaved train_steps: %+.3f s (mean), %+.3f s (min)%s\n",
                mean_s - step_mean, min_s - step_min,
                faults_per_step > 1.5 * interleaved_faults + 1000
                    ? ": the replays change malloc's heap state, so the interleaved steps fault less; this"
                      " difference is the cost of the extra page faults"
                    : "");
    std::printf("  other processes on this machine during the profile: %.2f cores%s\n", load_profile,
                load_profile > 0.1 ? " (timings disturbed)" : "");
    out["profile"] = {{"replays", runs},
                      {"step_seconds", step_s},
                      {"step_mean_s", step_mean},
                      {"step_minor_faults", interleaved_faults},
                      {"other_load_cores", load_profile},
                      {"sum_s", total},
                      {"sum_min_s", min_of(total_runs)},
                      {"replay_wall_s", replay_wall},
                      {"groups", jp}};
  }

  if (args.has("json")) {
    const std::string path = args.get<std::string>("json");
    std::ofstream f(path);
    FW_CHECK(f.good(), "cannot write --json file ", path);
    f << out.dump(2) << "\n";
    FW_CHECK(f.good(), "error writing --json file ", path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  flywheel::keep_freed_memory();  // as flywheel's main does
  return flywheel::bench::guarded_main("train_step_bench", [&] { return run(argc, argv); });
}
