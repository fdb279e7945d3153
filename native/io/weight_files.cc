#include "io/weight_files.h"

#include <cstdio>
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

void write_weight_files(const fs::path& dir, const NamedTensors& tensors, int64_t max_shard_bytes) {
  fs::create_directories(dir);
  // Remove weights from an earlier save so a directory never mixes layouts.
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string n = entry.path().filename().string();
    if (n == "model.safetensors" || n == "model.safetensors.index.json" ||
        (n.rfind("model-", 0) == 0 && n.size() > 12 && n.substr(n.size() - 12) == ".safetensors"))
      fs::remove(entry.path());
  }
  const std::map<std::string, std::string> meta{{"format", "pt"}};
  int64_t total = 0;
  for (const auto& [name, t] : tensors) total += t.numel() * t.element_size();
  if (max_shard_bytes <= 0 || total <= max_shard_bytes) {
    write_safetensors((dir / "model.safetensors").string(), tensors, meta);
    return;
  }
  std::vector<NamedTensors> shards(1);
  int64_t cur = 0;
  for (const auto& p : tensors) {
    const int64_t n = p.second.numel() * p.second.element_size();
    if (cur > 0 && cur + n > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(p);
    cur += n;
  }
  json weight_map = json::object();
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    write_safetensors((dir / buf).string(), shards[i], meta);
    for (const auto& p : shards[i]) weight_map[p.first] = buf;
  }
  json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text_file_atomic(dir / "model.safetensors.index.json", idx.dump(2) + "\n");
}

}  // namespace mentor_kd::io
