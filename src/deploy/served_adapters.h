// LoRA adapters served beside the base model (multi-LoRA, docs/serving.md): a request selects one by naming it as
// its "model" (vLLM's convention). Adapters are registered by name and PEFT directory (`flywheel serve --lora
// NAME=DIR`, or POST /v1/load_lora_adapter {"lora_name", "lora_path"} while serving) and held in the engine's
// AdapterSet (serve/adapter_set.h): at most --max-loras in memory, the least recently used evicted. A request for an
// evicted adapter loads it again from its directory before its sequence starts, so eviction costs a reload, never
// a refusal. Loads, reloads and unloads run on the engine thread between two decode steps (an adapter some sequence
// uses is pinned and is neither evicted nor unloaded). With the batch-invariant kernels, a sequence's tokens and
// logprobs are the bits it gets with its adapter alone, whatever else the batch mixes.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "deploy/generation_service.h"
#include "serve/adapter_set.h"

namespace flywheel {

class ServedAdapters {
 public:
  // Installs the service's adapter loader; `set` is the engine's (DecodeEngine::set_adapters).
  ServedAdapters(AdapterSet& set, GenerationService& service);

  // Registers and loads `dir` as `name` now. Throws ApiError 400 naming the problem (another base, a bad file) and
  // 409 when `name` is in use by a running sequence (a replacement would change its weights under it).
  void load(const std::string& name, const std::string& dir);
  // Forgets `name`. Throws ApiError 404 when it is not registered, 409 while a sequence uses it.
  void unload(const std::string& name);
  bool has(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  void load_if_missing(const std::string& name);  // the service's loader: on the engine thread

  AdapterSet& set_;
  GenerationService& service_;
  mutable std::mutex mutex_;
  std::map<std::string, std::string> dirs_;  // registered adapters -> PEFT directory
};

}  // namespace flywheel
