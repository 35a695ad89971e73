// The shape text a checkpoint records (state.h5 `shape_text`: an INI training shape, verbatim):
// parsing it back into a Shape, editing single keys (reshard rewrites [mesh]; the test helper
// writes its command-line overrides in so the recorded text is the resolved shape), summarising it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "launch/ini_text.h"
#include "launch/shape.h"

namespace flywheel::ckpt_tool {

using flywheel::apply_overrides;  // launch/ini_text.h
using flywheel::set_ini_value;

// Parses shape text through load_shape (which reads files: the text goes through a temporary file).
// Errors name `origin` (e.g. "run/step-00000020/state.h5 shape_text").
Shape parse_shape_text(const std::string& text, const std::string& origin);

// How a checkpoint's weights (name -> global shape) differ from the parameters `model` registers:
// "<name> is missing", "<name> has shape [a] , the model expects [b]", "<name> is not a tensor of
// the model". Empty when they match. A LoRA model's checkpoints hold its adapters only (train/lora_base.h): only
// those are expected. (`flywheel train` before its fix recorded the shape file
// without command-line overrides, so a checkpoint's shape text can describe another model.)
std::vector<std::string> model_mismatches(const ModelConfig& model,
                                          const std::map<std::string, std::vector<int64_t>>& weights);

// "dense, 4 layers, d_model 128, 4 heads (2 kv), d_ff 384, vocab 259, untied embeddings".
std::string model_summary(const ModelConfig& model);

}  // namespace flywheel::ckpt_tool
