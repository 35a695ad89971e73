// The shape text a checkpoint records (state.h5 `shape_text`: an INI training shape, verbatim):
// parsing it back into a Shape, editing single keys (reshard rewrites [mesh]; the test helper
// writes its command-line overrides in so the recorded text is the resolved shape), summarising it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "launch/shape.h"

namespace flywheel::ckpt_tool {

// Sets `key = value` in [section] of INI text, keeping every other line (comments, order). An
// existing key line is replaced (an inline comment on it is dropped); a missing key is added at
// the end of its section; a missing section is appended.
std::string set_ini_value(const std::string& text, const std::string& section, const std::string& key,
                          const std::string& value);

// Applies "--section.key=value" overrides to the text with set_ini_value. Throws on a token that
// is not of that form.
std::string apply_overrides(std::string text, const std::vector<std::string>& overrides);

// Parses shape text through load_shape (which reads files: the text goes through a temporary file).
// Errors name `origin` (e.g. "run/step-00000020/state.h5 shape_text").
Shape parse_shape_text(const std::string& text, const std::string& origin);

// "dense, 4 layers, d_model 128, 4 heads (2 kv), d_ff 384, vocab 259, untied embeddings".
std::string model_summary(const ModelConfig& model);

}  // namespace flywheel::ckpt_tool
