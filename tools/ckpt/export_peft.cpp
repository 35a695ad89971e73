// flywheel-ckpt export --format peft: a LoRA run's adapter as PEFT's save_pretrained writes one
// (huggingface/peft: utils/constants.py names the files, tuners/lora/config.py the keys):
//
//   adapter_model.safetensors   base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r]
//                               for every adapted module (the names PeftModel.from_pretrained reads)
//   adapter_config.json         peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, use_rslora, lora_dropout,
//                               target_modules, base_model_name_or_path, bias none
//
// target_modules is PEFT's list of module-name suffixes when that list selects exactly the adapted modules
// (PEFT adapts a module whose name is, or ends with ".", an entry); otherwise -- "experts" without the dense
// MLP's projections, say -- a regular expression that PEFT full-matches against module names.
// Written into OUT.tmp-<pid> and renamed into place, as --format hf.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "ckpt/durable_fs.h"
#include "ckpt/safetensors.h"
#include "ckpt/temp_dir.h"
#include "common.h"
#include "export.h"
#include "model/transformer.h"
#include "shape_text.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char* kPeftPrefix = "base_model.model.";

std::string module_of(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::string(".weight").size());
}
std::string leaf_of(const std::string& module) { return module.substr(module.rfind('.') + 1); }

// PEFT's target_modules for the adapted modules among every linear module of the base.
Json target_modules(const std::set<std::string>& adapted, const std::set<std::string>& linear) {
  std::set<std::string> leaves;
  for (const std::string& m : adapted) leaves.insert(leaf_of(m));
  bool exact = true;
  for (const std::string& m : linear) exact = exact && (leaves.count(leaf_of(m)) > 0) == (adapted.count(m) > 0);
  if (exact) return Json(std::vector<std::string>(leaves.begin(), leaves.end()));
  // Layer and expert indices generalised to \d+: targets apply to every layer alike.
  std::set<std::string> patterns;
  for (const std::string& m : adapted) {
    std::string p = std::regex_replace(m, std::regex(R"(\.)"), R"(\.)");
    patterns.insert(std::regex_replace(p, std::regex(R"(\\\.[0-9]+\\\.)"), R"(\.\d+\.)"));
  }
  std::string regex;
  for (const std::string& p : patterns) regex += (regex.empty() ? "" : "|") + p;
  return "(" + regex + ")";
}

// The base model's name for adapter_config.json: the imported config's _name_or_path, else the directory the
// run imported from, else "" (a model Flywheel initialised).
std::string base_model_name(const std::string& run_dir, const std::string& from_hf) {
  const fs::path config = fs::path(run_dir) / "hf" / "config.json";
  std::error_code ec;
  if (fs::exists(config, ec)) {
    std::ifstream in(config);
    const Json json = Json::parse(in, nullptr, false);
    if (json.is_object() && json.contains("_name_or_path") && json["_name_or_path"].is_string())
      return json["_name_or_path"].get<std::string>();
  }
  return from_hf;
}

}  // namespace

int export_peft(const HfExportRequest& request) {
  const int64_t step = choose_step(request.run_dir, request.step);
  StepReader reader = open_verified_step(request.run_dir, step, "export: verifying", request.style);
  const ModelConfig model = step_model(reader);
  if (!model.lora.enabled())
    fail("--format peft: step ", step,
         " has no LoRA adapters (its run trained every weight); --format hf "
         "exports the model");
  std::vector<safetensors::Source> sources;
  std::set<std::string> adapted, linear;
  for (const std::string& name : reader.names("weight")) {
    if (name.find(".lora_") == std::string::npos) continue;
    sources.push_back({kPeftPrefix + name, reader.global_shape("weight", name),
                       [&reader, name] { return reader.read("weight", name); }});
    if (name.ends_with(".lora_A.weight")) adapted.insert(name.substr(0, name.size() - 14));
  }
  // The base's linear modules, from the model (the checkpoint names its base but does not hold it).
  const Transformer registry(model, /*allocate_full=*/false);
  for (const ParamInfo& info : registry.params().list())
    if (!info.adapter && info.name.ends_with("_proj.weight")) linear.insert(module_of(info.name));
  const Shape shape = parse_shape_text(reader.record().state.shape_text, reader.check().dir + "/state.h5");
  Json config = {{"peft_type", "LORA"},
                 {"task_type", "CAUSAL_LM"},
                 {"base_model_name_or_path", base_model_name(request.run_dir, shape.train.from_hf)},
                 {"r", model.lora.rank},
                 {"lora_alpha", model.lora.alpha},
                 {"lora_dropout", model.lora.dropout},
                 {"use_rslora", model.lora.use_rslora},
                 {"target_modules", target_modules(adapted, linear)},
                 {"bias", "none"},
                 {"fan_in_fan_out", false},
                 {"use_dora", false},
                 {"modules_to_save", nullptr},
                 {"init_lora_weights", true},
                 {"inference_mode", true},
                 {"rank_pattern", Json::object()},
                 {"alpha_pattern", Json::object()}};
  TemporaryDirectory dir(request.out);
  safetensors::WriteOptions options;
  options.dtype = request.dtype;
  options.metadata = export_metadata(reader, model.tie_embeddings, model_summary(model));
  const uint64_t bytes =
      safetensors::write_file((fs::path(dir.path()) / "adapter_model.safetensors").string(), sources, options);
  replace_file_atomically((fs::path(dir.path()) / "adapter_config.json").string(), config.dump(2) + "\n");
  dir.commit(request.force);
  std::cout << "exported the LoRA adapter of step " << step << " (" << reader.check().dir << ") to " << request.out
            << "\n  adapter_model.safetensors: " << sources.size() << " tensors (" << adapted.size()
            << " modules, rank " << model.lora.rank << "), " << format_bytes(bytes) << " "
            << (request.dtype == DType::kBF16 ? "BF16" : "F32") << "\n  adapter_config.json: r " << model.lora.rank
            << ", lora_alpha " << model.lora.alpha << (model.lora.use_rslora ? ", rsLoRA" : "") << ", target_modules "
            << config["target_modules"].dump() << "\n";
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
