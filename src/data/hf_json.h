// Reading tokenizer.json defensively: every value is reached through a JsonCursor, which knows the
// file and the JSON path it came from, so that any problem is reported as
//   <file>: at $.model.merges[12]: <what is wrong, and what is allowed>
// and never as a crash or a bare nlohmann exception.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace flywheel::hf {

class JsonCursor {
 public:
  // The root of a parsed document; `file` names it in errors.
  JsonCursor(const nlohmann::json& root, std::string file);

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  bool is_null() const { return value_->is_null(); }

  // A member that must be present (null counts as present); fails naming the key otherwise.
  JsonCursor at(std::string_view key) const;
  // A member that may be missing or null.
  std::optional<JsonCursor> find(std::string_view key) const;
  // An element of an array (this must be an array; i < size()).
  JsonCursor operator[](size_t index) const;
  // The number of elements of an array or members of an object; fails on anything else.
  size_t size() const;

  // Typed reads that fail naming the expected and the actual JSON type.
  std::string string() const;
  bool boolean() const;
  int64_t integer() const;
  double number() const;
  // Members read with a default when missing or null.
  bool boolean_or(std::string_view key, bool fallback) const;
  // The object's "type" member (the tag of every component of tokenizer.json).
  std::string type() const;

  void expect_object() const;
  void expect_array() const;

  // Throws flywheel::Error: "<file>: at <path>: <message>".
  [[noreturn]] void fail(const std::string& message) const;

 private:
  JsonCursor(const nlohmann::json* value, std::shared_ptr<const std::string> file, std::string path)
      : value_(value), file_(std::move(file)), path_(std::move(path)) {}
  const char* type_name() const;

  const nlohmann::json* value_;
  std::shared_ptr<const std::string> file_;
  std::string path_;
};

// Parses JSON text; malformed text fails naming the file and the byte where parsing stopped.
nlohmann::json parse_json(std::string_view text, const std::string& file);

}  // namespace flywheel::hf
