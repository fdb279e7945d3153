#include "io/weight_files.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "io/text_file.h"

namespace mentor_kd::io {
namespace fs = std::filesystem;
using json = nlohmann::json;

WeightFiles::WeightFiles(const fs::path& dir) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    files_.push_back(single.string());
    return;
  }
  if (!fs::exists(index))
    throw std::runtime_error(dir.string() +
                             ": no model.safetensors or model.safetensors.index.json (PyTorch .bin checkpoints are not "
                             "read; convert with safetensors)");
  index_path_ = index.string();
  json j;
  try {
    j = json::parse(read_text_file(index));
  } catch (const json::exception& e) {
    throw std::runtime_error(index_path_ + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw std::runtime_error(index_path_ + ": needs a 'weight_map' object");
  std::set<std::string> shards;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw std::runtime_error(index_path_ + ": weight_map['" + it.key() + "'] must be a file name");
    std::string file = it.value().get<std::string>();
    // Only files of this directory: an index must not make the loader read elsewhere.
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      throw std::runtime_error(index_path_ + ": weight_map['" + it.key() + "'] = '" + file +
                               "' is not a file in this directory");
    weight_map_[it.key()] = file;
    shards.insert(file);
  }
  for (const auto& f : shards) files_.push_back((dir / f).string());
}

void WeightFiles::found(const std::string& file, const std::string& tensor) {
  if (!index_path_.empty()) {
    auto it = weight_map_.find(tensor);
    if (it == weight_map_.end())
      throw std::runtime_error(file + ": tensor '" + tensor + "' is not listed in model.safetensors.index.json");
    // (So a name in two shards cannot pass: the index maps each name to one file.)
    if (it->second != fs::path(file).filename().string())
      throw std::runtime_error(file + ": tensor '" + tensor + "' is listed in the index under " + it->second);
  }
  found_.insert(tensor);
}

void WeightFiles::check_all_found(const std::function<bool(const std::string&)>& may_be_absent) const {
  for (const auto& [name, file] : weight_map_) {
    if (!found_.count(name) && !(may_be_absent && may_be_absent(name)))
      throw std::runtime_error(index_path_ + ": tensor '" + name + "' listed for " + file + " was not found in it");
  }
}

}  // namespace mentor_kd::io
