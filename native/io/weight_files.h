// Where an HF model directory keeps its weights: model.safetensors, or the shards that
// model.safetensors.index.json lists (HF's sharded layout). Shared by every model family's loader
// and save, so an index is read, trusted and written the same way everywhere: its weight_map must
// name plain files in the directory, each tensor must sit in the shard the index names, and each
// listed tensor must be found. Every error names the file and the tensor or field.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mentor_kd::io {

// Writes `tensors` into `dir` (created if missing) as model.safetensors, or, when they total more
// than max_shard_bytes > 0, as model-00001-of-0000N.safetensors shards (in order, a new shard when
// the next tensor would overflow one) plus model.safetensors.index.json. Weight files of an earlier
// save are removed first, so a directory never mixes layouts; each file is written atomically.
void write_weight_files(const std::filesystem::path& dir, const NamedTensors& tensors, int64_t max_shard_bytes);

class WeightFiles {
 public:
  // Reads `dir`'s index if there is no model.safetensors; throws naming the directory when neither is there.
  explicit WeightFiles(const std::filesystem::path& dir);

  // The safetensors files to open, each once (one file, or the index's shards in name order).
  const std::vector<std::string>& files() const { return files_; }

  // Records that `file` holds `tensor`; with an index, throws unless the index lists it under that file.
  void found(const std::string& file, const std::string& tensor);

  // With an index, throws naming the index for the first listed tensor that found() never saw,
  // unless `may_be_absent` accepts its name (a family's optional aliases).
  void check_all_found(const std::function<bool(const std::string&)>& may_be_absent = nullptr) const;

 private:
  std::vector<std::string> files_;
  std::string index_path_;                         // empty: one model.safetensors, no index
  std::map<std::string, std::string> weight_map_;  // tensor -> shard file name, from the index
  std::set<std::string> found_;
};

}  // namespace mentor_kd::io
