// The schema of a training shape: every key of every section, bound to the per-layer config structs
// with their defaults (shown by --help). Boost.Program_options reads shape files against it.
#include <boost/lexical_cast.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <sstream>
#include <string>
#include <vector>
#include <type_traits>

#include "launch/shape.h"

namespace po = boost::program_options;

namespace flywheel {
namespace {

// The --help text of a default: doubles in their shortest round-trip form (3e-3 shows as 0.003, not
// Boost's lexical_cast 0.0030000000000000001), other types as Boost writes them.
template <typename T>
std::string default_text(const T& value) {
  if constexpr (std::is_floating_point_v<T>) {
    char text[32];
    const auto [end, error] = std::to_chars(text, text + sizeof(text), value);
    return error == std::errc() ? std::string(text, end) : std::to_string(value);
  } else {
    return boost::lexical_cast<std::string>(value);
  }
}

// A key bound to `field`, its current value the default.
template <typename T>
po::typed_value<T>* with_default(T* field) {
  return po::value(field)->default_value(*field, default_text(*field));
}

// model.moe_mlp_only_layers: "" or layer indices separated by commas ("0, 3"), into `layers`.
po::typed_value<std::string>* layer_list(std::vector<int64_t>* layers) {
  std::string text;
  for (int64_t layer : *layers) text += (text.empty() ? "" : ",") + std::to_string(layer);
  return po::value<std::string>()->default_value(text, text.empty() ? "\"\"" : text)->notifier(
      [layers](const std::string& value) {
        const po::validation_error bad(po::validation_error::invalid_option_value, "model.moe_mlp_only_layers", value);
        layers->clear();
        std::string item;
        std::istringstream in(value);
        while (std::getline(in, item, ',')) {
          const size_t first = item.find_first_not_of(" \t"), last = item.find_last_not_of(" \t");
          if (first == std::string::npos) throw bad;
          const std::string digits = item.substr(first, last - first + 1);
          int64_t layer = 0;
          const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), layer);
          if (error != std::errc() || end != digits.data() + digits.size()) throw bad;
          layers->push_back(layer);
        }
      });
}

po::options_description rl_options(RlConfig& r) {
  po::options_description rl("[rl] rollouts and the RL objective (flywheel run)");
  rl.add_options()("rl.task", with_default(&r.task), "built-in task for prompts and rewards: addition | reverse")(
      "rl.prompts", with_default(&r.prompts),
      "task: rl.task's examples | chat:FILE: JSONL of {\"messages\": [..., user], \"answer\": ...} (docs/rl.md)")(
      "rl.sft_steps", with_default(&r.sft_steps),
      "SFT warm-up steps before RL, on data.source when it is a file (chat:, jsonl:, text:), else on rl.task")(
      "rl.prompts_per_step", with_default(&r.prompts_per_step), "prompts per RL step")(
      "rl.group_size", with_default(&r.group_size), "samples per prompt (G)")(
      "rl.max_new_tokens", with_default(&r.max_new_tokens), "completion budget")(
      "rl.temperature", with_default(&r.temperature), "sampling temperature (> 0)")(
      "rl.top_p", with_default(&r.top_p), "nucleus sampling mass; 1: off")("rl.top_k", with_default(&r.top_k),
                                                                           "top-k sampling; 0: off")(
      "rl.rollout_lag", with_default(&r.rollout_lag), "0: on-policy | 1: generate step s+1 while step s trains")(
      "rl.serve_dtype", with_default(&r.serve_dtype), "fp32 (exact: bit-identical train/serve) | bf16 (fast)")(
      "rl.swap", with_default(&r.swap),
      "sync: in-flight sequences finish on old weights | async: swap between decode steps")(
      "rl.full_every", with_default(&r.full_every), "full snapshot every K steps")(
      "rl.max_batch", with_default(&r.max_batch), "decode slots per replica")(
      "rl.serve_port", with_default(&r.serve_port),
      "replica r serves the OpenAI API on 127.0.0.1:serve_port + r (0: a free port each; -1: none)")(
      "rl.lr", with_default(&r.lr), "constant learning rate of the RL phase")("rl.clip_low", with_default(&r.clip_low),
                                                                              "PPO clip below 1")(
      "rl.clip_high", with_default(&r.clip_high), "PPO clip above 1")("rl.kl_beta", with_default(&r.kl_beta),
                                                                      "k3 KL penalty to the reference; 0: off")(
      "rl.tis_cap", with_default(&r.tis_cap), "truncated importance sampling cap vs inference logprobs; 0: off")(
      "rl.dpo_beta", with_default(&r.dpo_beta), "DPO beta (flywheel train with train.objective = dpo)")(
      "rl.reward", with_default(&r.reward), "task | file (see rl.reward_command)")(
      "rl.reward_command", with_default(&r.reward_command),
      "reward = file: command run as `<command> ROLLOUTS.jsonl SCORED.jsonl`");
  return rl;
}

}  // namespace

po::options_description shape_options(Shape& s) {
  po::options_description model("[model] the transformer");
  ModelConfig& m = s.model;
  model.add_options()
      ("model.from_hf", with_default(&s.train.from_hf),
       "a Hugging Face model directory (Qwen3, Qwen3-MoE, Llama-3): its config.json sets the other [model] keys, "
       "its safetensors weights start the run")
      ("model.vocab_size", with_default(&m.vocab_size), "vocabulary size (byte tokenizer: 259)")
      ("model.d_model", with_default(&m.d_model), "residual width")
      ("model.n_layers", with_default(&m.n_layers), "decoder layers")
      ("model.n_heads", with_default(&m.n_heads), "query heads")
      ("model.n_kv_heads", with_default(&m.n_kv_heads), "key/value heads (GQA); divides n_heads")
      ("model.head_dim", with_default(&m.head_dim), "per-head width; 0: d_model / n_heads")
      ("model.d_ff", with_default(&m.d_ff), "dense SwiGLU hidden width")
      ("model.max_seq_len", with_default(&m.max_seq_len), "longest sequence (RoPE table)")
      ("model.rope_theta", with_default(&m.rope_theta), "RoPE base")
      ("model.rope_scaling", with_default(&m.rope_scaling),
       "RoPE frequency scaling: none | llama3 (HF rope_type llama3: rope_factor, rope_*_freq_factor, "
       "rope_original_max_positions)")
      ("model.rope_factor", with_default(&m.rope_factor),
       "llama3: long wavelengths (> original / low_freq_factor tokens) turn factor times slower; >= 1")
      ("model.rope_low_freq_factor", with_default(&m.rope_low_freq_factor),
       "llama3: wavelengths above original / low_freq_factor are fully scaled")
      ("model.rope_high_freq_factor", with_default(&m.rope_high_freq_factor),
       "llama3: wavelengths below original / high_freq_factor stay; between: interpolated (> low)")
      ("model.rope_original_max_positions", with_default(&m.rope_original_max_positions),
       "llama3: context length of pre-training in tokens (HF original_max_position_embeddings)")
      ("model.qk_norm", with_default(&m.qk_norm),
       "Qwen3 q_norm/k_norm: RMSNorm over head_dim of each head's q and k before RoPE (one [head_dim] gain each)")
      ("model.attention_bias", with_default(&m.attention_bias),
       "biases on the q, k, v and o projections (HF Llama/Qwen3 attention_bias)")
      ("model.norm_eps", with_default(&m.norm_eps), "RMSNorm epsilon")
      ("model.tie_embeddings", with_default(&m.tie_embeddings), "LM head shares the embedding")
      ("model.init_std", with_default(&m.init_std), "weight init standard deviation")
      ("model.moe_experts", with_default(&m.moe_experts), "experts per MoE layer; 0: dense")
      ("model.moe_top_k", with_default(&m.moe_top_k), "experts per token")
      ("model.moe_d_ff", with_default(&m.moe_d_ff), "expert hidden width; 0: d_ff")
      ("model.moe_shared_expert", with_default(&m.moe_shared_expert), "add an always-on shared expert")
      ("model.moe_normalize_topk", with_default(&m.moe_normalize_topk), "renormalise the top-k router weights")
      ("model.moe_aux_loss_coef", with_default(&m.moe_aux_loss_coef), "load-balancing loss coefficient")
      ("model.moe_decoder_sparse_step", with_default(&m.moe_decoder_sparse_step),
       "layer i is MoE when (i + 1) % step == 0 (HF decoder_sparse_step); others dense with d_ff")
      ("model.moe_mlp_only_layers", layer_list(&m.moe_mlp_only_layers),
       "comma-separated layer indices that stay dense (HF mlp_only_layers)")
      ("model.forward_kernels", with_default(&m.forward_kernels),
       "forward matmuls: blas (OpenBLAS) | invariant (batch-invariant: serving reproduces training bits)");

  po::options_description train("[train] optimisation and run");
  TrainConfig& t = s.train;
  train.add_options()
      ("train.seed", with_default(&t.seed), "seed for weights, data order and tasks")
      ("train.steps", with_default(&t.steps), "optimizer steps")
      ("train.seq_len", with_default(&t.seq_len), "tokens per row")
      ("train.micro_batch", with_default(&t.micro_batch), "rows per micro-batch")
      ("train.grad_accum", with_default(&t.grad_accum), "micro-batches per step")
      ("train.objective", with_default(&t.objective), "loss: sft | dpo (flywheel train) | grpo (flywheel run)")
      ("train.lr", with_default(&t.lr), "peak learning rate")
      ("train.min_lr", with_default(&t.min_lr), "final learning rate of the cosine decay")
      ("train.warmup_steps", with_default(&t.warmup_steps), "linear warmup steps")
      ("train.weight_decay", with_default(&t.weight_decay), "AdamW decoupled weight decay")
      ("train.beta1", with_default(&t.beta1), "AdamW beta1")
      ("train.beta2", with_default(&t.beta2), "AdamW beta2")
      ("train.adam_eps", with_default(&t.adam_eps), "AdamW epsilon")
      ("train.grad_clip", with_default(&t.grad_clip), "global gradient-norm clip; 0: off")
      ("train.threads", with_default(&t.threads), "threads per rank; 0: cores / ranks on the node")
      ("train.out_dir", with_default(&t.out_dir), "directory holding runs")
      ("train.run_name", with_default(&t.run_name), "run directory name; empty: <shape>-<UTC time>")
      ("train.log_every", with_default(&t.log_every), "progress line every N steps")
      ("train.checkpoint_every", with_default(&t.checkpoint_every),
       "checkpoint every N steps (and at the end); 0: only at the end")
      ("train.keep_last", with_default(&t.keep_last), "checkpoints kept; 0: all")
      ("train.resume", with_default(&t.resume),
       "auto: continue from the run's newest good checkpoint | never: refuse an existing run")
      ("train.init_from", with_default(&t.init_from),
       "run directory whose newest checkpoint's weights start a new run (same model and seed; e.g. SFT -> DPO)");

  po::options_description data("[data] training data");
  data.add_options()
      ("data.source", with_default(&s.data.source),
       "task:addition | task:reverse | jsonl:<path> ({prompt, completion}) | chat:<path> ({messages}) | text:<path>")
      ("data.task_max_digits", with_default(&s.data.task_max_digits),
       "difficulty of the built-in tasks")
      ("data.tokenizer", po::value(&s.data.tokenizer)->default_value("auto"),
       "auto (model.from_hf's tokenizer.json when it has one, else byte) | byte | a tokenizer.json or its directory")
      ("data.chat_format", with_default(&s.data.chat_format),
       "auto (from the tokenizer's tokenizer_config.json chat_template) | chatml (Qwen3) | llama3")
      ("data.enable_thinking", with_default(&s.data.enable_thinking),
       "Qwen3 chat template: false puts an empty <think></think> in the generation prompt (answer directly)");

  po::options_description mesh("[mesh] parallel layout");
  MeshConfig& x = s.mesh;
  mesh.add_options()
      ("mesh.pp", with_default(&x.pp), "pipeline stages")
      ("mesh.fsdp", with_default(&x.fsdp), "fully-sharded data-parallel ranks")
      ("mesh.cp", with_default(&x.cp), "context-parallel ranks")
      ("mesh.ep", with_default(&x.ep), "expert-parallel group size (divides fsdp x cp)")
      ("mesh.serve", with_default(&x.serve), "serving replica ranks");

  po::options_description lora("[lora] low-rank adapters on a frozen base (model/lora_config.h)");
  LoraConfig& a = s.model.lora;
  lora.add_options()
      ("lora.rank", with_default(&a.rank), "adapter rank r; 0: no adapters (full-parameter training)")
      ("lora.alpha", with_default(&a.alpha), "scale s = alpha / r (alpha / sqrt(r) with use_rslora)")
      ("lora.targets", with_default(&a.targets),
       "comma-separated: q, k, v, o, gate, up, down (dense MLP and shared expert), experts, or all-linear")
      ("lora.dropout", with_default(&a.dropout), "dropout on the adapter input (0 only, for now)")
      ("lora.use_rslora", with_default(&a.use_rslora), "rank-stabilised scale alpha / sqrt(r)")
      ("lora.seed", with_default(&a.seed), "seed of the adapters' A matrices");

  po::options_description all;
  all.add(model).add(train).add(data).add(mesh).add(lora).add(rl_options(s.rl));
  return all;
}

}  // namespace flywheel
