// The schema of a training shape: every key of every section, bound to the per-layer config structs
// with their defaults (shown by --help). Boost.Program_options reads shape files against it.
#include <boost/program_options.hpp>

#include "launch/shape.h"

namespace po = boost::program_options;

namespace flywheel {
namespace {

po::options_description rl_options(RlConfig& r) {
  po::options_description rl("[rl] rollouts and the RL objective (flywheel run)");
  rl.add_options()
      ("rl.task", po::value(&r.task)->default_value(r.task), "built-in task for prompts and rewards: addition | reverse")
      ("rl.sft_steps", po::value(&r.sft_steps)->default_value(r.sft_steps), "SFT warm-up steps before RL")
      ("rl.prompts_per_step", po::value(&r.prompts_per_step)->default_value(r.prompts_per_step), "prompts per RL step")
      ("rl.group_size", po::value(&r.group_size)->default_value(r.group_size), "samples per prompt (G)")
      ("rl.max_new_tokens", po::value(&r.max_new_tokens)->default_value(r.max_new_tokens), "completion budget")
      ("rl.temperature", po::value(&r.temperature)->default_value(r.temperature), "sampling temperature (> 0)")
      ("rl.top_p", po::value(&r.top_p)->default_value(r.top_p), "nucleus sampling mass; 1: off")
      ("rl.top_k", po::value(&r.top_k)->default_value(r.top_k), "top-k sampling; 0: off")
      ("rl.rollout_lag", po::value(&r.rollout_lag)->default_value(r.rollout_lag),
       "0: on-policy | 1: generate step s+1 while step s trains")
      ("rl.serve_dtype", po::value(&r.serve_dtype)->default_value(r.serve_dtype),
       "fp32 (exact: bit-identical train/serve) | bf16 (fast)")
      ("rl.swap", po::value(&r.swap)->default_value(r.swap),
       "sync: in-flight sequences finish on old weights | async: swap between decode steps")
      ("rl.full_every", po::value(&r.full_every)->default_value(r.full_every), "full snapshot every K steps")
      ("rl.max_batch", po::value(&r.max_batch)->default_value(r.max_batch), "decode slots per replica")
      ("rl.lr", po::value(&r.lr)->default_value(r.lr), "constant learning rate of the RL phase")
      ("rl.clip_low", po::value(&r.clip_low)->default_value(r.clip_low), "PPO clip below 1")
      ("rl.clip_high", po::value(&r.clip_high)->default_value(r.clip_high), "PPO clip above 1")
      ("rl.kl_beta", po::value(&r.kl_beta)->default_value(r.kl_beta), "k3 KL penalty to the reference; 0: off")
      ("rl.tis_cap", po::value(&r.tis_cap)->default_value(r.tis_cap),
       "truncated importance sampling cap vs inference logprobs; 0: off")
      ("rl.dpo_beta", po::value(&r.dpo_beta)->default_value(r.dpo_beta),
       "DPO beta (flywheel train with train.objective = dpo)")
      ("rl.reward", po::value(&r.reward)->default_value(r.reward), "task | file (see rl.reward_command)")
      ("rl.reward_command", po::value(&r.reward_command)->default_value(r.reward_command),
       "reward = file: command run as `<command> ROLLOUTS.jsonl SCORED.jsonl`");
  return rl;
}

}  // namespace

po::options_description shape_options(Shape& s) {
  po::options_description model("[model] the transformer");
  ModelConfig& m = s.model;
  model.add_options()
      ("model.vocab_size", po::value(&m.vocab_size)->default_value(m.vocab_size), "vocabulary size (byte tokenizer: 259)")
      ("model.d_model", po::value(&m.d_model)->default_value(m.d_model), "residual width")
      ("model.n_layers", po::value(&m.n_layers)->default_value(m.n_layers), "decoder layers")
      ("model.n_heads", po::value(&m.n_heads)->default_value(m.n_heads), "query heads")
      ("model.n_kv_heads", po::value(&m.n_kv_heads)->default_value(m.n_kv_heads), "key/value heads (GQA); divides n_heads")
      ("model.head_dim", po::value(&m.head_dim)->default_value(m.head_dim), "per-head width; 0: d_model / n_heads")
      ("model.d_ff", po::value(&m.d_ff)->default_value(m.d_ff), "dense SwiGLU hidden width")
      ("model.max_seq_len", po::value(&m.max_seq_len)->default_value(m.max_seq_len), "longest sequence (RoPE table)")
      ("model.rope_theta", po::value(&m.rope_theta)->default_value(m.rope_theta), "RoPE base")
      ("model.norm_eps", po::value(&m.norm_eps)->default_value(m.norm_eps), "RMSNorm epsilon")
      ("model.tie_embeddings", po::value(&m.tie_embeddings)->default_value(m.tie_embeddings), "LM head shares the embedding")
      ("model.init_std", po::value(&m.init_std)->default_value(m.init_std), "weight init standard deviation")
      ("model.moe_experts", po::value(&m.moe_experts)->default_value(m.moe_experts), "experts per MoE layer; 0: dense")
      ("model.moe_top_k", po::value(&m.moe_top_k)->default_value(m.moe_top_k), "experts per token")
      ("model.moe_d_ff", po::value(&m.moe_d_ff)->default_value(m.moe_d_ff), "expert hidden width; 0: d_ff")
      ("model.moe_shared_expert", po::value(&m.moe_shared_expert)->default_value(m.moe_shared_expert), "add an always-on shared expert")
      ("model.moe_normalize_topk", po::value(&m.moe_normalize_topk)->default_value(m.moe_normalize_topk), "renormalise the top-k router weights")
      ("model.moe_aux_loss_coef", po::value(&m.moe_aux_loss_coef)->default_value(m.moe_aux_loss_coef), "load-balancing loss coefficient")
      ("model.forward_kernels", po::value(&m.forward_kernels)->default_value(m.forward_kernels),
       "forward matmuls: blas (OpenBLAS) | invariant (batch-invariant: serving reproduces training bits)");

  po::options_description train("[train] optimisation and run");
  TrainConfig& t = s.train;
  train.add_options()
      ("train.seed", po::value(&t.seed)->default_value(t.seed), "seed for weights, data order and tasks")
      ("train.steps", po::value(&t.steps)->default_value(t.steps), "optimizer steps")
      ("train.seq_len", po::value(&t.seq_len)->default_value(t.seq_len), "tokens per row")
      ("train.micro_batch", po::value(&t.micro_batch)->default_value(t.micro_batch), "rows per micro-batch")
      ("train.grad_accum", po::value(&t.grad_accum)->default_value(t.grad_accum), "micro-batches per step")
      ("train.objective", po::value(&t.objective)->default_value(t.objective), "loss: sft | dpo (flywheel train) | grpo (flywheel run)")
      ("train.lr", po::value(&t.lr)->default_value(t.lr), "peak learning rate")
      ("train.min_lr", po::value(&t.min_lr)->default_value(t.min_lr), "final learning rate of the cosine decay")
      ("train.warmup_steps", po::value(&t.warmup_steps)->default_value(t.warmup_steps), "linear warmup steps")
      ("train.weight_decay", po::value(&t.weight_decay)->default_value(t.weight_decay), "AdamW decoupled weight decay")
      ("train.beta1", po::value(&t.beta1)->default_value(t.beta1), "AdamW beta1")
      ("train.beta2", po::value(&t.beta2)->default_value(t.beta2), "AdamW beta2")
      ("train.adam_eps", po::value(&t.adam_eps)->default_value(t.adam_eps), "AdamW epsilon")
      ("train.grad_clip", po::value(&t.grad_clip)->default_value(t.grad_clip), "global gradient-norm clip; 0: off")
      ("train.threads", po::value(&t.threads)->default_value(t.threads), "threads per rank; 0: cores / ranks on the node")
      ("train.out_dir", po::value(&t.out_dir)->default_value(t.out_dir), "directory holding runs")
      ("train.run_name", po::value(&t.run_name)->default_value(t.run_name), "run directory name; empty: <shape>-<UTC time>")
      ("train.log_every", po::value(&t.log_every)->default_value(t.log_every), "progress line every N steps")
      ("train.checkpoint_every", po::value(&t.checkpoint_every)->default_value(t.checkpoint_every),
       "checkpoint every N steps (and at the end); 0: only at the end")
      ("train.keep_last", po::value(&t.keep_last)->default_value(t.keep_last), "checkpoints kept; 0: all")
      ("train.resume", po::value(&t.resume)->default_value(t.resume),
       "auto: continue from the run's newest good checkpoint | never: refuse an existing run")
      ("train.init_from", po::value(&t.init_from)->default_value(t.init_from),
       "run directory whose newest checkpoint's weights start a new run (same model and seed; e.g. SFT -> DPO)");

  po::options_description data("[data] training data");
  data.add_options()
      ("data.source", po::value(&s.data.source)->default_value(s.data.source),
       "task:addition | task:reverse | jsonl:<path> | text:<path>")
      ("data.task_max_digits", po::value(&s.data.task_max_digits)->default_value(s.data.task_max_digits),
       "difficulty of the built-in tasks");

  po::options_description mesh("[mesh] parallel layout");
  MeshConfig& x = s.mesh;
  mesh.add_options()
      ("mesh.pp", po::value(&x.pp)->default_value(x.pp), "pipeline stages")
      ("mesh.fsdp", po::value(&x.fsdp)->default_value(x.fsdp), "fully-sharded data-parallel ranks")
      ("mesh.cp", po::value(&x.cp)->default_value(x.cp), "context-parallel ranks")
      ("mesh.ep", po::value(&x.ep)->default_value(x.ep), "expert-parallel group size (divides fsdp x cp)")
      ("mesh.serve", po::value(&x.serve)->default_value(x.serve), "serving replica ranks");

  po::options_description all;
  all.add(model).add(train).add(data).add(mesh).add(rl_options(s.rl));
  return all;
}

}  // namespace flywheel
