#include "data/hf_json.h"

#include "core/error.h"

namespace flywheel::hf {

JsonCursor::JsonCursor(const nlohmann::json& root, std::string file)
    : value_(&root), file_(std::make_shared<const std::string>(std::move(file))), path_("$") {}

void JsonCursor::fail(const std::string& message) const {
  FW_INPUT_THROW(*file_, ": at ", path_, ": ", message);
}

const char* JsonCursor::type_name() const { return value_->type_name(); }

void JsonCursor::expect_object() const {
  if (!value_->is_object()) fail(std::string("expected an object, found ") + type_name());
}

void JsonCursor::expect_array() const {
  if (!value_->is_array()) fail(std::string("expected an array, found ") + type_name());
}

JsonCursor JsonCursor::at(std::string_view key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end()) fail("missing member \"" + std::string(key) + "\"");
  return JsonCursor(&*it, file_, path_ + "." + std::string(key));
}

std::optional<JsonCursor> JsonCursor::find(std::string_view key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonCursor(&*it, file_, path_ + "." + std::string(key));
}

JsonCursor JsonCursor::operator[](size_t index) const {
  expect_array();
  if (index >= value_->size()) fail("index " + std::to_string(index) + " is past the end");
  return JsonCursor(&(*value_)[index], file_, path_ + "[" + std::to_string(index) + "]");
}

size_t JsonCursor::size() const {
  if (!value_->is_array() && !value_->is_object())
    fail(std::string("expected an array or an object, found ") + type_name());
  return value_->size();
}

std::string JsonCursor::string() const {
  if (!value_->is_string()) fail(std::string("expected a string, found ") + type_name());
  return value_->get<std::string>();
}

bool JsonCursor::boolean() const {
  if (!value_->is_boolean()) fail(std::string("expected true or false, found ") + type_name());
  return value_->get<bool>();
}

int64_t JsonCursor::integer() const {
  if (!value_->is_number_integer()) fail(std::string("expected an integer, found ") + type_name());
  return value_->get<int64_t>();
}

double JsonCursor::number() const {
  if (!value_->is_number()) fail(std::string("expected a number, found ") + type_name());
  return value_->get<double>();
}

bool JsonCursor::boolean_or(std::string_view key, bool fallback) const {
  const auto member = find(key);
  return member ? member->boolean() : fallback;
}

std::string JsonCursor::type() const { return at("type").string(); }

nlohmann::json parse_json(std::string_view text, const std::string& file) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    FW_INPUT_THROW(file, ": not valid JSON (", e.what(), ")");
  }
}

}  // namespace flywheel::hf
