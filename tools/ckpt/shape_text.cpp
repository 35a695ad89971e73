#include "shape_text.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ckpt/tensor_slice.h"
#include "core/error.h"
#include "model/transformer.h"

namespace flywheel::ckpt_tool {
namespace {

// Deletes the temporary shape file however parse_shape_text leaves.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) std::remove(path.c_str());
  }
};

}  // namespace

Shape parse_shape_text(const std::string& text, const std::string& origin) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "flywheel-ckpt-shape-XXXXXX").string();
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) throw Error("cannot create a temporary file to parse the shape text of " + origin);
  ::close(fd);
  TempFile temp{pattern};
  {
    std::ofstream out(pattern, std::ios::binary);
    out << text;
    if (!out) throw Error("cannot write a temporary file to parse the shape text of " + origin);
  }
  try {
    Shape shape = load_shape(pattern, {}, FromHf::kAsRecorded);
    shape.path = origin;
    shape.name.clear();  // the temp file's stem means nothing
    return shape;
  } catch (const std::exception& e) {
    std::string message = e.what();
    // Name the checkpoint, not the temporary file the text passed through.
    for (size_t at; (at = message.find(pattern)) != std::string::npos;) message.replace(at, pattern.size(), origin);
    throw Error("cannot parse the shape text recorded in " + origin + ": " + message);
  }
}

std::vector<std::string> model_mismatches(const ModelConfig& model,
                                          const std::map<std::string, std::vector<int64_t>>& weights) {
  const Transformer registry(model, /*allocate_full=*/false);
  std::vector<std::string> problems;
  std::map<std::string, bool> expected;
  for (const ParamInfo& info : registry.params().list()) {
    if (model.lora.enabled() && !info.adapter) continue;  // a LoRA checkpoint names its base (train/lora_base.h)
    expected[info.name] = true;
    const auto found = weights.find(info.name);
    if (found == weights.end())
      problems.push_back(info.name + " is missing");
    else if (found->second != info.shape)
      problems.push_back(info.name + " has shape " + shape_text(found->second) + ", the model expects " +
                         shape_text(info.shape));
  }
  for (const auto& [name, shape] : weights)
    if (!expected.count(name)) problems.push_back(name + " is not a tensor of the model");
  return problems;
}

std::string model_summary(const ModelConfig& m) {
  std::string text = detail::concat(m.is_moe() ? "MoE" : "dense", ", ", m.n_layers, " layers, d_model ", m.d_model,
                                    ", ", m.n_heads, " heads (", m.n_kv_heads, " kv)");
  if (m.is_moe())
    text += detail::concat(", ", m.moe_experts, " experts top-", m.moe_top_k, " (expert d_ff ", m.resolved_moe_d_ff(),
                           m.moe_shared_expert ? ", shared expert" : "", ")");
  else
    text += detail::concat(", d_ff ", m.d_ff);
  return text + detail::concat(", vocab ", m.vocab_size, m.tie_embeddings ? ", tied embeddings" : ", untied embeddings");
}

}  // namespace flywheel::ckpt_tool
