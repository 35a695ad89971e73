#include "serve/adapter_set.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "ckpt/safetensors.h"
#include "core/bf16.h"
#include "core/error.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

constexpr const char* kPeftPrefix = "base_model.model.";

// adapter_config.json's r, lora_alpha and use_rslora (PEFT's LoraConfig), checked.
struct PeftConfig {
  int64_t rank = 0;
  float scale = 0;
};

PeftConfig read_peft_config(const std::string& dir) {
  const fs::path path = fs::path(dir) / "adapter_config.json";
  std::ifstream in(path);
  FW_INPUT_CHECK(in.good(), "adapter ", dir, ": cannot read ", path.string(),
                 " (a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors)");
  const nlohmann::json c = nlohmann::json::parse(in, nullptr, false);
  FW_INPUT_CHECK(c.is_object(), "adapter ", dir, ": adapter_config.json is not a JSON object");
  const std::string type = c.value("peft_type", std::string("LORA"));
  FW_INPUT_CHECK(type == "LORA", "adapter ", dir, ": peft_type '", type, "'; allowed: LORA");
  FW_INPUT_CHECK(!c.value("use_dora", false), "adapter ", dir,
                 ": use_dora = true (DoRA) is not supported; allowed: false");
  FW_INPUT_CHECK(c.contains("r") && c["r"].is_number_integer() && c["r"].get<int64_t>() >= 1, "adapter ", dir,
                 ": adapter_config.json needs r, an integer >= 1");
  FW_INPUT_CHECK(c.contains("lora_alpha") && c["lora_alpha"].is_number() && c["lora_alpha"].get<double>() > 0,
                 "adapter ", dir, ": adapter_config.json needs lora_alpha, a number > 0");
  const int64_t r = c["r"].get<int64_t>();
  const double alpha = c["lora_alpha"].get<double>();
  const bool rslora = c.value("use_rslora", false);
  // PEFT LoraLayer.update_layer: scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
  return {r, static_cast<float>(rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r))};
}

}  // namespace

AdapterSet::AdapterSet(const ParameterSet& base, int64_t capacity) : base_(base), capacity_(capacity) {
  FW_INPUT_CHECK(capacity >= 1, "adapter capacity ", capacity, ": must be >= 1");
}

std::unique_ptr<AdapterWeights> AdapterSet::build(const std::string& name, const std::string& origin,
                                                  const std::map<std::string, Tensor>& tensors, int64_t rank,
                                                  float scale) const {
  FW_INPUT_CHECK(!tensors.empty(), "adapter '", name, "' (", origin, ") has no tensors");
  auto out = std::make_unique<AdapterWeights>();
  out->name = name;
  out->rank = rank;
  out->scale = scale;
  std::set<std::string> modules;
  for (const auto& [tensor_name, t] : tensors) {
    const bool is_a = tensor_name.ends_with(".lora_A.weight"), is_b = tensor_name.ends_with(".lora_B.weight");
    FW_INPUT_CHECK(is_a || is_b, "adapter '", name, "' (", origin, "): tensor ", tensor_name,
                   " is not a LoRA matrix (<module>.lora_A.weight or <module>.lora_B.weight)");
    modules.insert(tensor_name.substr(0, tensor_name.size() - std::string(".lora_A.weight").size()));
  }
  for (const std::string& module : modules) {
    const int id = base_.find(module + ".weight");
    FW_INPUT_CHECK(id >= 0 && base_.info(id).shape.size() == 2, "adapter '", name, "' (", origin, ") adapts ", module,
                   ", which the served base has no matrix of: an adapter for another architecture?");
    const auto a = tensors.find(module + ".lora_A.weight"), b = tensors.find(module + ".lora_B.weight");
    FW_INPUT_CHECK(a != tensors.end() && b != tensors.end(), "adapter '", name, "' (", origin, "): ", module,
                   " has only one of lora_A and lora_B");
    const int64_t out_dim = base_.info(id).shape[0], in_dim = base_.info(id).shape[1];
    const std::vector<int64_t> want_a = {rank, in_dim}, want_b = {out_dim, rank};
    for (const auto& [t, want, half] : {std::tuple{a->second, want_a, "lora_A"}, {b->second, want_b, "lora_B"}})
      FW_INPUT_CHECK(t.shape() == want, "adapter '", name, "' (", origin, "): ", module, ".", half,
                     ".weight has shape ", shape_text(t.shape()), "; the served base's ", module, ".weight is ",
                     shape_text({out_dim, in_dim}), " and r = ", rank, ", so it needs ", shape_text(want),
                     " (an adapter for another base?)");
    std::pair<Tensor, Tensor> stored;
    for (const auto& [src, dst] : {std::pair{&a->second, &stored.first}, {&b->second, &stored.second}}) {
      Tensor held = Tensor::empty(base_.dtype(), src->shape());
      if (base_.dtype() == DType::kBF16)
        fp32_to_bf16(src->data<float>(), held.data<BFloat16>(), src->numel());
      else
        std::memcpy(held.raw(), src->raw(), static_cast<size_t>(src->numel()) * sizeof(float));
      *dst = held;
      out->storage.push_back(held);
    }
    out->by_base[id] = stored;
  }
  return out;
}

void AdapterSet::make_room(const std::string& incoming) {
  if (static_cast<int64_t>(entries_.size()) < capacity_) return;
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->second.pins == 0 && (victim == entries_.end() || it->second.last_used < victim->second.last_used))
      victim = it;
  FW_INPUT_CHECK(victim != entries_.end(), "cannot load adapter '", incoming, "': all ", capacity_,
                 " adapter slots hold adapters that running sequences use; wait for them or raise the capacity");
  entries_.erase(victim);
  ++evictions_;
}

void AdapterSet::insert(const std::string& name, std::unique_ptr<AdapterWeights> weights) {
  const auto existing = entries_.find(name);
  if (existing != entries_.end()) {
    FW_INPUT_CHECK(existing->second.pins == 0, "cannot replace adapter '", name, "': ", existing->second.pins,
                   " running sequence(s) use it");
    entries_.erase(existing);
  }
  make_room(name);
  Entry& e = entries_[name];
  e.weights = std::move(weights);
  e.last_used = ++clock_;
}

void AdapterSet::load_peft(const std::string& name, const std::string& dir) {
  const PeftConfig config = read_peft_config(dir);
  const safetensors::File file((fs::path(dir) / "adapter_model.safetensors").string());
  std::map<std::string, Tensor> tensors;
  for (const safetensors::TensorInfo& t : file.tensors()) {
    FW_INPUT_CHECK(t.name.rfind(kPeftPrefix, 0) == 0, "adapter '", name, "' (", file.path(), "): tensor ", t.name,
                   " does not start with ", kPeftPrefix, " (PEFT's save_pretrained names)");
    tensors[t.name.substr(std::string(kPeftPrefix).size())] = file.read_f32(t.name);
  }
  insert(name, build(name, file.path(), tensors, config.rank, config.scale));
}

void AdapterSet::add(const std::string& name, const std::vector<NamedTensor>& tensors, int64_t rank, float scale) {
  std::map<std::string, Tensor> by_name;
  for (const NamedTensor& t : tensors) {
    FW_CHECK(t.tensor.dtype() == DType::kF32, "adapter '", name, "': tensor ", t.name, " is ",
             dtype_name(t.tensor.dtype()), "; give fp32");
    by_name[t.name] = t.tensor;
  }
  insert(name, build(name, "given tensors", by_name, rank, scale));
}

void AdapterSet::unload(const std::string& name) {
  const auto it = entries_.find(name);
  FW_INPUT_CHECK(it != entries_.end(), "cannot unload adapter '", name, "': it is not loaded");
  FW_INPUT_CHECK(it->second.pins == 0, "cannot unload adapter '", name, "': ", it->second.pins,
                 " running sequence(s) use it");
  entries_.erase(it);
}

const AdapterWeights* AdapterSet::find(const std::string& name) {
  const auto it = entries_.find(name);
  if (it == entries_.end()) return nullptr;
  it->second.last_used = ++clock_;
  return it->second.weights.get();
}

void AdapterSet::pin(const std::string& name) {
  const auto it = entries_.find(name);
  FW_CHECK(it != entries_.end(), "pin: adapter '", name, "' is not loaded");
  ++it->second.pins;
  it->second.last_used = ++clock_;
}

void AdapterSet::unpin(const std::string& name) {
  const auto it = entries_.find(name);
  FW_CHECK(it != entries_.end() && it->second.pins > 0, "unpin: adapter '", name, "' is not pinned");
  --it->second.pins;
}

std::vector<std::string> AdapterSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

}  // namespace flywheel
