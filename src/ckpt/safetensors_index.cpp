#include "ckpt/safetensors_index.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ckpt/durable_fs.h"
#include "core/error.h"

namespace flywheel::safetensors {
namespace {
namespace fs = std::filesystem;

nlohmann::json read_index_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.good(), "cannot open ", path);
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    FW_INPUT_THROW(path, ": not valid JSON (", e.what(), ")");
  }
}

// A shard must be a plain file name next to the index: "../x" or "/etc/x" would let an index read
// any file on the machine.
void check_shard_name(const std::string& index, const std::string& tensor, const std::string& file) {
  FW_INPUT_CHECK(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..", index,
                 ": weight_map maps tensor '", tensor, "' to \"", file, "\", which is not a file name in ", index,
                 "'s directory");
}

}  // namespace

std::string shard_file_name(int index, int count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", index + 1, count);
  return name;
}

Model::Model(const std::string& path) {
  std::error_code ec;
  std::string target = path;
  if (fs::is_directory(path, ec)) {
    const fs::path index = fs::path(path) / kIndexFile;
    const fs::path single = fs::path(path) / kModelFile;
    FW_INPUT_CHECK(fs::exists(index, ec) || fs::exists(single, ec), path, " holds neither ", kIndexFile, " nor ",
                   kModelFile);
    target = fs::exists(index, ec) ? index.string() : single.string();
  }
  source_ = target;
  if (target.size() >= 5 && target.compare(target.size() - 5, 5, ".json") == 0) {
    open_index(target);
    return;
  }
  files_.emplace_back(target);
  for (const TensorInfo& t : files_[0].tensors()) where_[t.name] = 0;
}

void Model::open_index(const std::string& index_path) {
  const nlohmann::json index = read_index_json(index_path);
  FW_INPUT_CHECK(index.is_object(), index_path, ": must be a JSON object, not ", index.type_name());
  FW_INPUT_CHECK(index.contains("weight_map") && index["weight_map"].is_object(), index_path,
                 ": \"weight_map\" must be an object of tensor name -> file name");
  if (index.contains("metadata")) {
    const nlohmann::json& meta = index["metadata"];
    FW_INPUT_CHECK(meta.is_object(), index_path, ": \"metadata\" must be an object");
    // total_size is informational: real checkpoints disagree on what it counts, so it is not compared.
    FW_INPUT_CHECK(!meta.contains("total_size") || meta["total_size"].is_number(), index_path,
                   ": metadata.total_size must be a number");
  }
  std::map<std::string, size_t> file_numbers;
  std::map<std::string, std::string> mapped;  // tensor -> file, from the index
  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    FW_INPUT_CHECK(file.is_string(), index_path, ": weight_map[\"", tensor, "\"] must be a file name");
    const std::string name = file.get<std::string>();
    check_shard_name(index_path, tensor, name);
    mapped[tensor] = name;
    if (file_numbers.count(name)) continue;
    const fs::path shard = dir / name;
    std::error_code ec;
    FW_INPUT_CHECK(fs::exists(shard, ec), index_path, ": tensor '", tensor, "' is in ", name,
                   ", which does not exist (", shard.string(), ")");
    file_numbers[name] = files_.size();
    files_.emplace_back(shard.string());
  }
  for (const auto& [tensor, name] : mapped) {
    const File& file = files_[file_numbers[name]];
    FW_INPUT_CHECK(file.has(tensor), index_path, ": weight_map puts tensor '", tensor, "' in ", file.path(),
                   ", which has no such tensor");
    where_[tensor] = file_numbers[name];
  }
  for (const File& file : files_)
    for (const TensorInfo& t : file.tensors()) {
      const auto it = mapped.find(t.name);
      FW_INPUT_CHECK(it != mapped.end(), index_path, ": ", file.path(), " holds tensor '", t.name,
                     "', which weight_map does not list");
      FW_INPUT_CHECK(files_[where_[t.name]].path() == file.path(), index_path, ": tensor '", t.name, "' is in both ",
                     file.path(), " and ", files_[where_[t.name]].path());
    }
}

std::vector<std::string> Model::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

const File& Model::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  FW_INPUT_CHECK(it != where_.end(), source_, " has no tensor '", name, "'");
  return files_[it->second];
}

uint64_t Model::bytes_read() const {
  uint64_t total = 0;
  for (const File& f : files_) total += f.bytes_read();
  return total;
}

ModelWrite write_model(const std::string& dir, const std::vector<Source>& tensors, const WriteOptions& options,
                       uint64_t max_shard_bytes) {
  // The shards, in write order: greedy, a new shard when the next tensor would overflow this one.
  std::vector<const Source*> order;
  std::set<std::string> names;
  for (const Source& s : tensors) {
    FW_CHECK(names.insert(s.name).second, "safetensors: tensor '", s.name, "' given twice");  // across shards too
    order.push_back(&s);
  }
  if (options.sort_by_name)
    std::sort(order.begin(), order.end(), [](const Source* a, const Source* b) { return a->name < b->name; });
  std::vector<std::vector<Source>> shards(1);
  uint64_t total = 0, in_shard = 0;
  for (const Source* s : order) {
    const uint64_t bytes = stored_bytes(*s, options.dtype);
    if (max_shard_bytes > 0 && in_shard > 0 && in_shard + bytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(*s);
    in_shard += bytes;
    total += bytes;
  }
  ModelWrite result;
  result.tensor_bytes = total;
  WriteOptions shard_options = options;
  shard_options.sort_by_name = false;  // already in write order
  const fs::path out(dir);
  std::error_code ec;
  if (shards.size() == 1) {
    result.files.push_back((out / kModelFile).string());
    write_file(result.files[0], shards[0], shard_options);
    fs::remove(out / kIndexFile, ec);  // a stale index would shadow the new file
    return result;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  try {
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = shard_file_name(static_cast<int>(i), static_cast<int>(shards.size()));
      write_file((out / name).string(), shards[i], shard_options);
      result.files.push_back((out / name).string());
      for (const Source& s : shards[i]) weight_map[s.name] = name;
    }
  } catch (...) {
    for (const std::string& f : result.files) fs::remove(f, ec);
    throw;
  }
  const nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  replace_file_atomically((out / kIndexFile).string(), index.dump(2) + "\n");
  result.files.push_back((out / kIndexFile).string());
  fs::remove(out / kModelFile, ec);  // a stale single file would be loaded instead of the shards
  return result;
}

}  // namespace flywheel::safetensors
