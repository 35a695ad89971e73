#include "deploy/text_stream.h"

#include <algorithm>

namespace flywheel {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD: what an incomplete UTF-8 sequence decodes to

// The length of the longest proper prefix of a stop string that `text` ends with.
size_t stop_prefix_at_end(const std::string& text, const std::vector<std::string>& stops) {
  size_t longest = 0;
  for (const std::string& stop : stops)
    for (size_t n = std::min(stop.size() - 1, text.size()); n > longest; --n)
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        longest = n;
        break;
      }
  return longest;
}

// The bytes at the end of `text` that begin a UTF-8 character without finishing it (a tokenizer that decodes raw
// bytes, like the byte tokenizer, ends there mid-character).
size_t incomplete_utf8_at_end(const std::string& text, size_t end) {
  for (size_t back = 1; back <= 3 && back <= end; ++back) {
    const auto c = static_cast<unsigned char>(text[end - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for the lead
    const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

}  // namespace

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stops)
    : tokenizer_(tokenizer), stops_(std::move(stops)) {}

std::string TextStream::decoded() const { return tokenizer_.decode(ids_, DecodeOptions{.skip_special_tokens = true}); }

std::string TextStream::append(std::span<const int32_t> ids) {
  if (stop_hit_) return "";
  std::string text;
  for (int32_t id : ids) {  // one id at a time: the stop string's token is the last one used
    ids_.push_back(id);
    text = decoded();
    size_t earliest = std::string::npos;
    for (const std::string& stop : stops_) earliest = std::min(earliest, text.find(stop));
    if (earliest != std::string::npos) {
      stop_hit_ = true;
      text.resize(std::max(earliest, released_.size()));
      break;
    }
  }
  size_t end = text.size();
  if (!stop_hit_) {
    end -= stop_prefix_at_end(text, stops_);
    while (end >= kReplacement.size() &&
           text.compare(end - kReplacement.size(), kReplacement.size(), kReplacement) == 0)
      end -= kReplacement.size();
    end -= incomplete_utf8_at_end(text, end);
  }
  if (end <= released_.size() || text.compare(0, released_.size(), released_) != 0) return "";
  std::string delta = text.substr(released_.size(), end - released_.size());
  released_ += delta;
  return delta;
}

std::string TextStream::finish() {
  if (stop_hit_) return "";
  const std::string text = decoded();
  if (text.size() <= released_.size() || text.compare(0, released_.size(), released_) != 0) return "";
  std::string delta = text.substr(released_.size());
  released_ += delta;
  return delta;
}

}  // namespace flywheel
