#include "ckpt/state_file.h"

#include "ckpt/h5_util.h"
#include "core/error.h"

namespace flywheel {

void write_state_file(const std::string& path, const StateRecord& record) {
  try {
    H5Handle file = h5_create_file(path);
    const hid_t root = file.get();
    h5_write_attr_int64(root, "format_version", record.format_version);
    h5_write_attr_int64(root, "step", record.state.step);
    h5_write_attr_uint64(root, "seed", record.state.seed);
    h5_write_attr_int64(root, "world_size", static_cast<int64_t>(record.shards.size()));
    h5_write_attr_string(root, "shape_text", record.state.shape_text);
    h5_write_attr_string(root, "mesh", record.state.mesh.dump());
    h5_write_attr_string(root, "extra", record.state.extra.dump());
    std::vector<uint64_t> hashes, sizes;
    for (const FileDigest& d : record.shards) {
      hashes.push_back(d.xxh3_64);
      sizes.push_back(d.bytes);
    }
    h5_write_uint64_table(root, "shard_xxh3_64", hashes);
    h5_write_uint64_table(root, "shard_bytes", sizes);
    file.close();
  } catch (const Error& e) {
    FW_THROW("writing checkpoint state ", path, ": ", e.what());
  }
}

StateRecord read_state_file(const std::string& path) {
  StateRecord record;
  try {
    H5Handle file = h5_open_file_readonly(path);
    const hid_t root = file.get();
    record.format_version = h5_read_attr_int64(root, "format_version");
    FW_CHECK(record.format_version >= 1 && record.format_version <= kCheckpointFormatVersion, "format_version ",
             record.format_version, " is not supported (this build reads 1 to ", kCheckpointFormatVersion, ")");
    record.state.step = h5_read_attr_int64(root, "step");
    record.state.seed = h5_read_attr_uint64(root, "seed");
    record.state.shape_text = h5_read_attr_string(root, "shape_text");
    record.state.mesh = nlohmann::json::parse(h5_read_attr_string(root, "mesh"));
    record.state.extra = nlohmann::json::parse(h5_read_attr_string(root, "extra"));
    const int64_t world_size = h5_read_attr_int64(root, "world_size");
    const std::vector<uint64_t> hashes = h5_read_uint64_table(root, "shard_xxh3_64");
    const std::vector<uint64_t> sizes = h5_read_uint64_table(root, "shard_bytes");
    FW_CHECK(world_size >= 1 && hashes.size() == static_cast<size_t>(world_size) && sizes.size() == hashes.size(),
             "world_size ", world_size, " does not match the shard tables (", hashes.size(), " checksums, ",
             sizes.size(), " sizes)");
    for (size_t r = 0; r < hashes.size(); ++r) record.shards.push_back({hashes[r], sizes[r]});
  } catch (const nlohmann::json::exception& e) {
    FW_THROW("reading checkpoint state ", path, ": mesh/extra attribute is not valid JSON: ", e.what());
  } catch (const InputError& e) {
    FW_INPUT_THROW("reading checkpoint state ", path, ": ", e.what());
  } catch (const Error& e) {
    FW_THROW("reading checkpoint state ", path, ": ", e.what());
  }
  return record;
}

nlohmann::json state_record_to_json(const StateRecord& record) {
  nlohmann::json shards = nlohmann::json::array();
  // uint64 checksums travel as hex text: exact, and independent of JSON number handling.
  for (const FileDigest& d : record.shards) shards.push_back({{"xxh3_64", hex64(d.xxh3_64)}, {"bytes", d.bytes}});
  return {{"format_version", record.format_version},
          {"step", record.state.step},
          {"seed", record.state.seed},
          {"shape_text", record.state.shape_text},
          {"mesh", record.state.mesh},
          {"extra", record.state.extra},
          {"shards", shards}};
}

StateRecord state_record_from_json(const nlohmann::json& json) {
  StateRecord record;
  record.format_version = json.at("format_version").get<int64_t>();
  record.state.step = json.at("step").get<int64_t>();
  record.state.seed = json.at("seed").get<uint64_t>();
  record.state.shape_text = json.at("shape_text").get<std::string>();
  record.state.mesh = json.at("mesh");
  record.state.extra = json.at("extra");
  for (const nlohmann::json& s : json.at("shards"))
    record.shards.push_back(
        {std::stoull(s.at("xxh3_64").get<std::string>(), nullptr, 16), s.at("bytes").get<uint64_t>()});
  return record;
}

}  // namespace flywheel
