// One line of a JSONL file (SFT examples, preference pairs, scored rollouts), read strictly: what a
// lenient parser would silently read differently is refused. Invalid JSON, a value that is not an
// object, a key given twice in one object ({"prompt": "a", "prompt": "b"}: parsers keep one of them
// without a word), and bytes that are not text (a binary file: the message gives the column of the
// first such byte and never echoes the bytes).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace flywheel {

// Parses `line`, or throws InputError "<where>..." (where: "data file 'x.jsonl' line 3: ").
// `expected` completes the message when the value is not an object ("a JSON object with string
// fields \"prompt\" and \"completion\"").
nlohmann::json parse_object_line(const std::string& line, const std::string& where, const std::string& expected);

}  // namespace flywheel
