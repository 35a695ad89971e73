// The safetensors header checks (docs/safetensors.md): everything the reader later does with an
// offset, a shape or a dtype size is safe because parse_header refused any header where it would not
// be. The rules are those of the reference reader (huggingface/safetensors, safetensors/src/tensor.rs:
// read_metadata and Metadata::validate), plus duplicate keys, which it refuses through serde_json.
#include <algorithm>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "ckpt/safetensors.h"
#include "core/error.h"

namespace flywheel::safetensors {
namespace {

using nlohmann::json;

// bytes 0: a dtype of the format this reader does not take (sub-byte floats, FP8, unsigned > 8 bits,
// complex): a file with one is refused by name rather than misread.
constexpr DTypeInfo kDTypes[] = {
    {"F32", 4, true},      {"F16", 2, true},      {"BF16", 2, true},    {"F64", 8, false},  {"I64", 8, false},
    {"I32", 4, false},     {"I16", 2, false},     {"I8", 1, false},     {"U8", 1, false},   {"BOOL", 1, false},
    {"F4", 0, false},      {"F6_E2M3", 0, false}, {"F6_E3M2", 0, false}, {"F8_E5M2", 0, false},
    {"F8_E4M3", 0, false}, {"F8_E8M0", 0, false}, {"U16", 0, false},    {"U32", 0, false},  {"U64", 0, false},
    {"C64", 0, false}};

// Deeper nesting than a header ever has (3 levels) is refused while parsing, before a hostile
// "[[[[..." header can build a deep document.
constexpr int kMaxDepth = 8;

// The offset of the first byte that breaks UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), or npos.
size_t invalid_utf8_at(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len = 0;
    uint32_t low = 0x80, high = 0xbf;  // the allowed range of the second byte
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) len = 3, low = c == 0xe0 ? 0xa0 : 0x80, high = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, low = c == 0xf0 ? 0x90 : 0x80, high = c == 0xf4 ? 0x8f : 0xbf;
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char b = s[i + k];
      if (k == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xbf)) return i;
    }
    i += len;
  }
  return std::string::npos;
}

// Parses JSON refusing duplicate keys at any level and nesting deeper than kMaxDepth.
json parse_strict(const std::string& file, const std::string& text) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxDepth) FW_INPUT_THROW(file, ": header nests deeper than ", kMaxDepth, " levels");
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.back().insert(parsed.get<std::string>()).second)
      FW_INPUT_THROW(file, ": header has the key \"", parsed.get<std::string>(), "\" twice");
    return true;
  };
  try {
    return json::parse(text, check);
  } catch (const json::exception& e) {
    FW_INPUT_THROW(file, ": header is not valid JSON (", e.what(), ")");
  }
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& meta) {
  FW_INPUT_CHECK(meta.is_object(), file, ": __metadata__ must be an object of strings, not ", meta.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : meta.items()) {
    FW_INPUT_CHECK(value.is_string(), file, ": __metadata__ \"", key, "\" must be a string, not ", value.type_name());
    out[key] = value.get<std::string>();
  }
  return out;
}

uint64_t unsigned_of(const json& value, const std::string& where, const char* what) {
  FW_INPUT_CHECK(value.is_number_unsigned(), where, ": ", what, " must be non-negative integers, found ",
                 value.dump());
  return value.get<uint64_t>();
}

TensorInfo parse_entry(const std::string& file, const std::string& name, const json& entry) {
  const std::string where = file + ": tensor '" + name + "'";
  FW_INPUT_CHECK(entry.is_object(), where, ": entry must be an object, not ", entry.type_name());
  for (const auto& [key, value] : entry.items())
    FW_INPUT_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where, ": unknown key \"", key,
                   "\" (allowed: dtype, shape, data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    FW_INPUT_CHECK(entry.contains(key), where, ": missing \"", key, "\"");
  TensorInfo t;
  t.name = name;
  FW_INPUT_CHECK(entry["dtype"].is_string(), where, ": dtype must be a string, not ", entry["dtype"].dump());
  t.dtype = entry["dtype"].get<std::string>();
  const DTypeInfo* info = find_dtype(t.dtype);
  FW_INPUT_CHECK(info != nullptr, where, ": unknown dtype \"", t.dtype, "\"");
  FW_INPUT_CHECK(info->bytes > 0, where, ": unsupported dtype ", t.dtype,
                 " (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");
  t.element_bytes = info->bytes;

  const json& shape = entry["shape"];
  FW_INPUT_CHECK(shape.is_array(), where, ": shape must be a list, not ", shape.dump());
  uint64_t numel = 1;
  for (const json& d : shape) {
    const uint64_t dim = unsigned_of(d, where, "shape dimensions");
    constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
    FW_INPUT_CHECK(dim <= kMax && !__builtin_mul_overflow(numel, dim, &numel) && numel <= kMax, where, ": shape ",
                   shape.dump(), " overflows the element count");
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t bytes = 0;
  FW_INPUT_CHECK(!__builtin_mul_overflow(numel, t.element_bytes, &bytes), where, ": shape ", shape.dump(),
                 " overflows the byte count");

  const json& offsets = entry["data_offsets"];
  FW_INPUT_CHECK(offsets.is_array() && offsets.size() == 2, where, ": data_offsets must be [begin, end], not ",
                 offsets.dump());
  t.begin = unsigned_of(offsets[0], where, "data_offsets");
  t.end = unsigned_of(offsets[1], where, "data_offsets");
  FW_INPUT_CHECK(t.begin <= t.end, where, ": data_offsets ", offsets.dump(), " end before they begin");
  FW_INPUT_CHECK(t.end - t.begin == bytes, where, ": data_offsets ", offsets.dump(), " span ", t.end - t.begin,
                 " bytes, but ", t.dtype, " ", shape.dump(), " needs ", bytes);
  return t;
}

// Sorted by offset, the tensors must cover [0, buffer_bytes) exactly once: no byte belongs to two
// tensors (an overlap would alias them), none to no tensor (a gap or a tail hides data).
void check_tiling(const std::string& file, std::vector<const TensorInfo*> order, uint64_t buffer_bytes) {
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : order) {
    const std::string where = file + ": tensor '" + t->name + "'";
    FW_INPUT_CHECK(t->end <= buffer_bytes, where, ": data_offsets [", t->begin, ", ", t->end,
                   "] run past the end of the ", buffer_bytes, "-byte data buffer (truncated file?)");
    FW_INPUT_CHECK(t->begin >= expected, where, ": data_offsets [", t->begin, ", ", t->end, "] overlap tensor '",
                   previous->name, "' [", previous->begin, ", ", previous->end, "]");
    FW_INPUT_CHECK(t->begin == expected, where, ": data_offsets [", t->begin, ", ", t->end, "] leave a gap of ",
                   t->begin - expected, " bytes after ", previous ? "tensor '" + previous->name + "'" : "the header");
    expected = t->end;
    previous = t;
  }
  FW_INPUT_CHECK(expected == buffer_bytes, file, ": the data buffer is ", buffer_bytes,
                 " bytes but the tensors end at ", expected, " (", buffer_bytes - expected,
                 " bytes belong to no tensor)");
}

}  // namespace

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

int64_t TensorInfo::numel() const { return shape_numel(shape); }

uint64_t TensorInfo::row_bytes() const {
  if (shape.empty()) return element_bytes;
  uint64_t n = element_bytes;
  // At most the tensor's bytes when it has elements; when it has none, a wrapped product of huge
  // dimensions after a 0 is still multiplied by that 0 or by 0 rows.
  for (size_t i = 1; i < shape.size(); ++i) n *= static_cast<uint64_t>(shape[i]);
  return n;
}

void parse_header(const std::string& file, const std::string& text, uint64_t buffer_bytes,
                  std::vector<TensorInfo>& tensors, std::map<std::string, std::string>& metadata) {
  const size_t bad = invalid_utf8_at(text);
  FW_INPUT_CHECK(bad == std::string::npos, file, ": header is not valid UTF-8 (byte ", bad, " of the header)");
  const json header = parse_strict(file, text);
  FW_INPUT_CHECK(header.is_object(), file, ": header must be a JSON object, not ", header.type_name());
  tensors.clear();
  metadata.clear();
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") metadata = parse_metadata(file, entry);
    else tensors.push_back(parse_entry(file, name, entry));
  }
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : tensors) order.push_back(&t);
  check_tiling(file, order, buffer_bytes);
  // nlohmann's object is a std::map: items() came sorted by name already.
}

}  // namespace flywheel::safetensors
