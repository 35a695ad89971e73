// Editing INI text in place (training shapes): set one key, keeping comments, order and every other
// line. Used to record the resolved shape (file + command-line overrides) with runs and checkpoints,
// and by `flywheel-ckpt reshard` to rewrite a checkpoint's [mesh].
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace flywheel {

// A command-line override "--section.key=value", split. The one definition of that form: the command
// line (launch/command_line.h) tells overrides from other arguments with it.
struct IniOverride {
  std::string section, key, value;
  std::string name() const { return section + "." + key; }  // "model.n_layers"
};
// nullopt unless `token` is "--section.key=value" with a non-empty section and key (value may be empty).
std::optional<IniOverride> parse_override(const std::string& token);

// Sets `key = value` in [section] of INI text. An existing key line is replaced (an inline comment on
// it is dropped); a missing key is added at the end of its section; a missing section is appended.
std::string set_ini_value(const std::string& text, const std::string& section, const std::string& key,
                          const std::string& value);

// Applies "--section.key=value" overrides in order with set_ini_value. Throws on a token of another form.
std::string apply_overrides(std::string text, const std::vector<std::string>& overrides);

}  // namespace flywheel
