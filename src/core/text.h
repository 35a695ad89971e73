// Whether bytes are text: shape files and JSONL lines are read as text, and a binary file given in
// their place is refused with the offset of its first non-text byte, never with its bytes echoed to
// the terminal.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace flywheel {

// The offset of the first byte that makes `bytes` not text, or nullopt when it is text: valid UTF-8
// without control characters other than tab, line feed, carriage return, form feed and vertical tab.
std::optional<size_t> first_non_text_byte(std::string_view bytes);

}  // namespace flywheel
