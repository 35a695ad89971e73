#include "launch/shape.h"

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "launch/ini_text.h"
#include "train/tokenizer.h"

namespace po = boost::program_options;

namespace flywheel {

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

namespace {
std::string read_file(const std::string& path) {
  FW_CHECK(std::filesystem::is_regular_file(path), "shape file '", path, "' does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  FW_CHECK(in, "shape file '", path, "' cannot be opened for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

Shape load_shape(const std::string& path, const std::vector<std::string>& overrides) {
  Shape shape;
  shape.path = path;
  shape.name = std::filesystem::path(path).stem().string();
  shape.text = read_file(path);
  po::options_description options = shape_options(shape);
  po::variables_map values;
  po::parsed_options parsed(&options);
  try {
    // Stored first wins in Boost.Program_options: command-line overrides, then the file.
    parsed = po::command_line_parser(overrides)
                 .options(options)
                 .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
                 .run();
    po::store(parsed, values);
  } catch (const po::error& e) {
    FW_THROW("command-line override: ", e.what(), " (see `flywheel train --help` for the shape keys)");
  }
  try {
    std::istringstream file(shape.text);
    po::store(po::parse_config_file(file, options, /*allow_unregistered=*/false), values);
    po::notify(values);
  } catch (const po::error& e) {
    FW_THROW("shape file '", path, "': ", e.what(), " (see `flywheel train --help` for the shape keys)");
  }
  // Record the resolved shape: the file's text with every override written in, so a run directory
  // or a checkpoint describes exactly the model and run it holds.
  for (const po::option& o : parsed.options) {
    const size_t dot = o.string_key.find('.');
    if (dot != std::string::npos && !o.value.empty())
      shape.text = set_ini_value(shape.text, o.string_key.substr(0, dot), o.string_key.substr(dot + 1), o.value.back());
  }
  return shape;
}

void Shape::validate(int64_t world_size) const {
  model.validate();
  train.validate();
  mesh.validate();
  FW_CHECK(train.seq_len <= model.max_seq_len, "train.seq_len = ", train.seq_len, " exceeds model.max_seq_len = ",
           model.max_seq_len, ": raise max_seq_len or shorten the sequences");
  FW_CHECK(train.micro_batch % mesh.fsdp == 0, "train.micro_batch = ", train.micro_batch,
           " is not divisible by mesh.fsdp = ", mesh.fsdp, ": every data-parallel rank takes the same number of rows");
  FW_CHECK(model.n_layers % mesh.pp == 0, "model.n_layers = ", model.n_layers, " is not divisible by mesh.pp = ",
           mesh.pp, ": every pipeline stage holds the same number of layers");
  FW_CHECK(!(model.tie_embeddings && mesh.pp > 1), "model.tie_embeddings = true with mesh.pp = ", mesh.pp,
           ": a tied embedding would live on the first and the last stage; untie it or use mesh.pp = 1");
  FW_CHECK(train.seq_len % (2 * mesh.cp) == 0 || mesh.cp == 1, "train.seq_len = ", train.seq_len,
           " is not divisible by 2 x mesh.cp = ", 2 * mesh.cp, ": the load-balanced causal split cuts 2 cp chunks");
  FW_CHECK(!model.is_moe() || model.moe_experts % mesh.ep == 0, "model.moe_experts = ", model.moe_experts,
           " is not divisible by mesh.ep = ", mesh.ep, ": each expert-parallel rank owns the same number of experts");
  FW_CHECK(train.objective == "sft" || train.objective == "dpo", "train.objective = '", train.objective,
           "': `flywheel train` trains sft or dpo; grpo runs with serving replicas under `flywheel run`");
  if (train.objective == "dpo") {
    FW_CHECK(data.source.rfind("jsonl:", 0) == 0, "train.objective = dpo reads preference pairs: data.source = '",
             data.source, "' must be jsonl:<path> with {\"prompt\", \"chosen\", \"rejected\"} per line");
    FW_CHECK(mesh.cp == 1, "train.objective = dpo with mesh.cp = ", mesh.cp,
             ": DPO sums each row's logprobs on one rank; use mesh.cp = 1");
    FW_CHECK((train.micro_batch / mesh.fsdp) % 2 == 0, "train.objective = dpo: train.micro_batch / mesh.fsdp = ",
             train.micro_batch / mesh.fsdp, " rows per rank must be even (a pair's chosen and rejected rows stay together)");
    FW_CHECK(rl.dpo_beta > 0, "rl.dpo_beta = ", rl.dpo_beta, ": must be > 0");
  }
  FW_CHECK(mesh.serve == 0, "mesh.serve = ", mesh.serve, ": `flywheel train` has no serving ranks; set mesh.serve = 0 ",
           "or use `flywheel run`");
  mesh.check_world(world_size);  // last: a shape that cannot work on any world size says so first
  FW_CHECK(model.vocab_size >= ByteTokenizer::kVocabSize, "model.vocab_size = ", model.vocab_size,
           " is smaller than the byte tokenizer's ", ByteTokenizer::kVocabSize, " ids");
}

void Shape::validate_rl(int64_t world_size) const {
  model.validate();
  train.validate();
  mesh.validate();
  rl.validate();
  FW_CHECK(train.objective == "grpo", "train.objective = '", train.objective,
           "': `flywheel run` trains grpo (set train.objective = grpo)");
  FW_CHECK(mesh.serve >= 1, "mesh.serve = ", mesh.serve, ": `flywheel run` needs at least one serving replica rank");
  FW_CHECK(rl.sft_steps < train.steps, "rl.sft_steps = ", rl.sft_steps, " leaves no RL step of train.steps = ",
           train.steps);
  const int64_t rows = rl.prompts_per_step * rl.group_size;
  FW_CHECK(train.global_batch() == rows, "train.micro_batch x train.grad_accum = ", train.micro_batch, " x ",
           train.grad_accum, " = ", train.global_batch(), " but an RL step has rl.prompts_per_step x rl.group_size = ",
           rows, " rows: make them equal (the SFT warm-up uses the same batch)");
  FW_CHECK(!(rl.exact() && !model.invariant_forward()), "rl.serve_dtype = fp32 (exact) needs model.forward_kernels = ",
           "invariant so trainer and replicas compute the same bits (or serve bf16: rl.serve_dtype = bf16)");
  FW_CHECK(train.init_from.empty(), "train.init_from is for `flywheel train`; `flywheel run` starts from its SFT warm-up");
  // The trainer-side checks of `flywheel train` hold too, on the trainer ranks.
  Shape trainers = *this;
  trainers.mesh.serve = 0;
  trainers.train.objective = "sft";
  trainers.validate(world_size - mesh.serve);
}

}  // namespace flywheel
