#include "deploy/served_adapters.h"

#include "core/error.h"
#include "deploy/openai_protocol.h"

namespace flywheel {

ServedAdapters::ServedAdapters(AdapterSet& set, GenerationService& service) : set_(set), service_(service) {
  service_.set_adapter_loader([this](const std::string& name) { load_if_missing(name); });
}

void ServedAdapters::load_if_missing(const std::string& name) {
  if (set_.has(name)) return;
  std::string dir;
  {
    std::lock_guard lock(mutex_);
    auto it = dirs_.find(name);
    FW_INPUT_CHECK(it != dirs_.end(), "adapter '", name, "' is not registered (it was unloaded)");
    dir = it->second;
  }
  set_.load_peft(name, dir);
}

void ServedAdapters::load(const std::string& name, const std::string& dir) {
  try {
    service_.swap_weights(GenerationService::SwapMode::kAsync, [&](DecodeEngine&) { set_.load_peft(name, dir); });
  } catch (const InputError& e) {
    const bool in_use = std::string(e.what()).find("cannot replace adapter") != std::string::npos;
    throw ApiError(in_use ? 409 : 400, "invalid_request_error", e.what(), "lora_path",
                   in_use ? "adapter_in_use" : "adapter_unusable");
  }
  std::lock_guard lock(mutex_);
  dirs_[name] = dir;
}

void ServedAdapters::unload(const std::string& name) {
  if (!has(name))
    throw ApiError(404, "invalid_request_error", "adapter '" + name + "' is not served", "lora_name",
                   "model_not_found");
  try {
    service_.swap_weights(GenerationService::SwapMode::kAsync, [&](DecodeEngine&) {
      if (set_.has(name)) set_.unload(name);  // an evicted one has nothing in memory
    });
  } catch (const InputError& e) {
    throw ApiError(409, "invalid_request_error", e.what(), "lora_name", "adapter_in_use");
  }
  std::lock_guard lock(mutex_);
  dirs_.erase(name);
}

bool ServedAdapters::has(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return dirs_.count(name) > 0;
}

std::vector<std::string> ServedAdapters::names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, dir] : dirs_) names.push_back(name);
  return names;
}

}  // namespace flywheel
