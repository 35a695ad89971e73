// Byte sizes as an operator writes them for --max-shard-size: "5GB", "500MB", "2GiB", "1.5GB" or
// plain bytes "1000000". Units as huggingface_hub's parse_size_to_int / transformers' max_shard_size
// spell them: KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024; B is bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace flywheel::ckpt_tool {

// The size in bytes (a fraction rounded down), or nullopt when `text` is not of that form, is zero,
// or does not fit in 64 bits.
std::optional<uint64_t> parse_byte_size(const std::string& text);

// What parse_byte_size accepts, for usage errors.
inline constexpr const char* kByteSizeForms =
    "a positive number of bytes (e.g. 2000000000) or a size with a unit: KB, MB, GB, TB (powers of 1000, "
    "as Hugging Face writes 5GB) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 500MB, 2GiB, 1.5GB";

}  // namespace flywheel::ckpt_tool
