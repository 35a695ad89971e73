// Editing INI text in place (training shapes): set one key, keeping comments, order and every other
// line. Used to record the resolved shape (file + command-line overrides) with runs and checkpoints,
// and by `flywheel-ckpt reshard` to rewrite a checkpoint's [mesh].
#pragma once

#include <string>
#include <vector>

namespace flywheel {

// Sets `key = value` in [section] of INI text. An existing key line is replaced (an inline comment on
// it is dropped); a missing key is added at the end of its section; a missing section is appended.
std::string set_ini_value(const std::string& text, const std::string& section, const std::string& key,
                          const std::string& value);

// Applies "--section.key=value" overrides with set_ini_value. Throws on a token of another form.
std::string apply_overrides(std::string text, const std::vector<std::string>& overrides);

}  // namespace flywheel
