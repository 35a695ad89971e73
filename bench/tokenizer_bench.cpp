// Encode throughput of a Hugging Face tokenizer (data/hf_tokenizer.h) on large texts, one thread.
//
// Each file is encoded as one text, twice: first with an empty pre-token cache (as a fresh process
// meets new text), then again with the cache the first pass filled. The run checks its own answer:
// decode(encode(text)) must give the text back (after the tokenizer's normalizer, for Qwen NFC).
//
//   tokenizer_bench --tokenizer DIR_OR_FILE --text FILE [--text FILE ...]
//   tokenizer_bench --tokenizer DIR_OR_FILE --show "some text"     (prints the ids and the decode)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bench_args.h"
#include "data/hf_normalizer.h"
#include "data/hf_tokenizer.h"

using namespace flywheel;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void show(const HfTokenizer& tokenizer, const std::string& text) {
  const std::vector<int32_t> ids = tokenizer.encode(text, {.add_special_tokens = true});
  for (int32_t id : ids) std::printf("%d ", id);
  std::printf("\n%zu ids; decode: \"%s\"\n", ids.size(), tokenizer.decode(ids).c_str());
}

struct Pass {
  double seconds;
  size_t tokens;
};

Pass encode_pass(const HfTokenizer& tokenizer, const std::string& text, std::vector<int32_t>* ids) {
  const auto start = std::chrono::steady_clock::now();
  *ids = tokenizer.encode(text);
  return Pass{seconds_since(start), ids->size()};
}

void bench_file(const std::string& tokenizer_path, const std::string& path) {
  const std::string text = read_file(path);
  // A fresh tokenizer per file, so the first pass starts from an empty cache.
  const auto start = std::chrono::steady_clock::now();
  const auto tokenizer = HfTokenizer::load(tokenizer_path);
  const double load = seconds_since(start);
  std::vector<int32_t> ids;
  const Pass cold = encode_pass(*tokenizer, text, &ids);
  const Pass warm = encode_pass(*tokenizer, text, &ids);
  const std::string expected = hf::normalize_unicode(text, hf::NormalizationForm::kNfc);
  const std::string decoded = tokenizer->decode(ids);
  const bool round_trip = decoded == text || decoded == expected;
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("%s: %.2f MB, %zu tokens (%.2f bytes/token), load %.2f s\n", path.c_str(), mb, cold.tokens,
              static_cast<double>(text.size()) / static_cast<double>(cold.tokens), load);
  std::printf("  cold cache: %.3f s  %.2f MB/s  %.0f tokens/s\n", cold.seconds, mb / cold.seconds,
              static_cast<double>(cold.tokens) / cold.seconds);
  std::printf("  warm cache: %.3f s  %.2f MB/s  %.0f tokens/s\n", warm.seconds, mb / warm.seconds,
              static_cast<double>(warm.tokens) / warm.seconds);
  std::printf("  decode(encode(text)) == text%s: %s\n", decoded == text ? "" : " (NFC)", round_trip ? "yes" : "NO");
  if (!round_trip) throw std::runtime_error("the round trip failed on " + path);
}

}  // namespace

int main(int argc, char** argv) {
  return bench::guarded_main("tokenizer_bench", [&] {
    CommandLine command("tokenizer_bench", "Encode throughput of a Hugging Face tokenizer.json, one thread.");
    command.required<std::string>("tokenizer", "PATH", "tokenizer.json, or a directory holding it")
        .repeatable("text", "FILE", "a text file to encode as one text (any number)")
        .option<std::string>("show", "TEXT", "print the ids of TEXT (with special tokens) and their decode");
    const ParsedArgs args = command.parse(argc, argv);
    if (args.help()) {
      std::printf("%s", command.help().c_str());
      return 0;
    }
    const std::string tokenizer_path = args.get<std::string>("tokenizer");
    if (const auto text = args.find<std::string>("show")) show(*HfTokenizer::load(tokenizer_path), *text);
    for (const std::string& path : args.list("text")) bench_file(tokenizer_path, path);
    return 0;
  });
}
