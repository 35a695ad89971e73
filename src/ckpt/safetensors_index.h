// A Hugging Face model's weights: one model.safetensors, or shards named by an index file
// (huggingface_hub serialization/_base.py):
//
//   model.safetensors.index.json   {"metadata": {"total_size": <tensor bytes>}, "weight_map": {name: file}}
//   model-00001-of-00003.safetensors, ...
//
// Model opens either form and answers "which file holds tensor X" after checking that the index and
// the files agree; write_model writes either form, sharding when the tensors exceed a size.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ckpt/safetensors.h"

namespace flywheel::safetensors {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kIndexFile = "model.safetensors.index.json";

// "model-00001-of-00003.safetensors" for index 0 of 3.
std::string shard_file_name(int index, int count);

class Model {
 public:
  // `path`: a directory (its index file if there is one, else its model.safetensors), an index
  // .json file, or a .safetensors file. Throws InputError naming the file and the problem: an
  // index that is not the documented JSON, a file name that leaves the directory, a missing file, a
  // tensor the index maps to a file that lacks it, a tensor in two files or in no index entry.
  explicit Model(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const File& file_of(const std::string& name) const;  // throws InputError naming the tensor
  const TensorInfo& tensor(const std::string& name) const { return file_of(name).tensor(name); }
  Tensor read_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const {
    return file_of(name).read_rows_f32(name, row_begin, row_end);
  }
  const std::vector<File>& files() const { return files_; }
  uint64_t bytes_read() const;  // over every file
  const std::string& source() const { return source_; }  // the index or the single file

 private:
  void open_index(const std::string& index_path);

  std::string source_;
  std::vector<File> files_;
  std::map<std::string, size_t> where_;  // tensor -> index into files_
};

struct ModelWrite {
  std::vector<std::string> files;  // what was written, the index last when sharded
  uint64_t tensor_bytes = 0;
};

// Writes DIR/model.safetensors, or, when the tensors take more than max_shard_bytes (0: no limit),
// DIR/model-0000i-of-0000n.safetensors filled greedily in write order (a tensor larger than the limit
// gets a shard of its own, as huggingface_hub does) and then DIR/model.safetensors.index.json. The
// index is written last and atomically, so an interrupted write never leaves an index naming missing
// shards; shards already written are removed when a later one fails.
ModelWrite write_model(const std::string& dir, const std::vector<Source>& tensors, const WriteOptions& options,
                       uint64_t max_shard_bytes = 0);

}  // namespace flywheel::safetensors
