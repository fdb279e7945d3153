#include "train/soft_labels.h"

#include "io/text_file.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <cerrno>
#include <sstream>
#include <stdexcept>

namespace mentor_kd::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kIndexFile = "soft_labels.json";
constexpr const char* kFormat = "mentor-kd-soft-labels";
constexpr int kVersion = 1;

std::string shard_name(size_t i) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "soft_labels-%05zu.safetensors", i);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------
// Writer

SoftLabelWriter::SoftLabelWriter(std::string dir, int64_t vocab_size, int64_t k, double tau,
                                 at::ScalarType logprob_dtype, int64_t shard_bytes,
                                 std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)),
      vocab_size_(vocab_size),
      k_(k),
      tau_(tau),
      logprob_dtype_(logprob_dtype),
      shard_bytes_(shard_bytes),
      metadata_(std::move(metadata)) {
  if (dir_.empty()) throw std::invalid_argument("soft-label cache: dir is empty");
  if (vocab_size_ < 1) throw std::invalid_argument("soft-label cache: vocabSize must be >= 1");
  if (k_ < 1 || k_ > vocab_size_)
    throw std::invalid_argument("soft-label cache: k must be in [1, vocabSize=" + std::to_string(vocab_size_) +
                                "], got " + std::to_string(k_));
  if (!(std::isfinite(tau_) && tau_ > 0)) throw std::invalid_argument("soft-label cache: tau must be > 0");
  if (logprob_dtype_ != at::kFloat && logprob_dtype_ != at::kHalf)
    throw std::invalid_argument("soft-label cache: logprobDtype must be float32 or float16");
  if (shard_bytes_ <= 0) shard_bytes_ = int64_t(1) << 30;
  if (fs::exists(dir_))
    throw std::invalid_argument("soft-label cache: " + dir_ + " already exists (remove it or pick another dir)");
  index_dtype_ = vocab_size_ <= 32768 ? at::kShort : at::kInt;
  tmp_dir_ = dir_ + ".tmp-" + std::to_string(::getpid());
  remove_stale_temporaries(dir_);
  fs::remove_all(tmp_dir_);
  fs::create_directories(tmp_dir_);
}

void SoftLabelWriter::remove_stale_temporaries(const std::string& dir) {
  // The writer's naming rule: "<dir>.tmp-<pid>". One whose process is gone is a build that was
  // killed half-way; a live process's (another writer of the same cache) is left alone.
  const fs::path target(dir);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp-";
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) return;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    const bool alive = pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM);
    if (!alive) fs::remove_all(entry.path(), ec);
  }
}

SoftLabelWriter::~SoftLabelWriter() {
  if (!done_) {
    std::error_code ec;
    fs::remove_all(tmp_dir_, ec);
  }
}

void SoftLabelWriter::abort() {
  done_ = true;
  std::error_code ec;
  fs::remove_all(tmp_dir_, ec);
}

int64_t SoftLabelWriter::add(t5::T5Model& mentor, const t5::Seq2SeqBatch& batch_in, int64_t first_example) {
  if (mentor.config().vocab_size != vocab_size_)
    throw std::invalid_argument("soft-label cache: the mentor has vocab_size " +
                                std::to_string(mentor.config().vocab_size) + " but the cache was opened for " +
                                std::to_string(vocab_size_));
  if (!batch_in.labels.defined()) throw std::invalid_argument("soft-label cache: the batch needs labels");
  at::Tensor logits;
  t5::Seq2SeqBatch b = mentor.prepare(batch_in);
  {
    at::NoGradGuard no_grad;
    at::Tensor enc = mentor.encode(b.input_ids, b.attention_mask, false);
    at::Tensor dec = mentor.decode(b.decoder_input_ids, b.decoder_attention_mask, enc, b.attention_mask, false);
    logits = mentor.logits(dec);
  }
  return add_logits(logits, b.labels, first_example);
}

int64_t SoftLabelWriter::add_logits(const at::Tensor& mentor_logits, const at::Tensor& labels_in,
                                    int64_t first_example) {
  if (done_) throw std::logic_error("soft-label cache: the writer was already finished");
  if (first_example != next_example_)
    throw std::invalid_argument("soft-label cache: examples must be added in order; expected example " +
                                std::to_string(next_example_) + ", got " + std::to_string(first_example));
  if (mentor_logits.dim() != 3 || mentor_logits.size(2) != vocab_size_)
    throw std::invalid_argument("soft-label cache: mentor logits must be [B,T,V=" + std::to_string(vocab_size_) + "]");
  at::Tensor labels = labels_in.to(at::kCPU, at::kLong);
  if (labels.dim() != 2 || labels.size(0) != mentor_logits.size(0) || labels.size(1) != mentor_logits.size(1))
    throw std::invalid_argument("soft-label cache: labels must be [B,T] matching the mentor logits");
  at::NoGradGuard no_grad;
  const int64_t B = labels.size(0);
  int64_t added = 0;
  for (int64_t b = 0; b < B; ++b) {
    at::Tensor keep = labels[b].ne(-100).nonzero().reshape({-1});
    const int64_t n = keep.numel();
    if (n > 0) {
      at::Tensor rows = mentor_logits[b].index_select(0, keep.to(mentor_logits.device()));
      kd::TopK t = kd::topk_soft_labels(rows, k_, tau_);
      indices_.push_back(t.indices.to(at::kCPU, index_dtype_));
      logprobs_.push_back(t.logprobs.to(at::kCPU, logprob_dtype_));
      rest_.push_back(t.rest_mass.to(at::kCPU, at::kFloat));
      buffered_bytes_ += n * (k_ * (c10::elementSize(index_dtype_) + c10::elementSize(logprob_dtype_)) + 4);
    }
    offsets_.push_back(offsets_.back() + n);
    added += n;
    ++next_example_;
    total_tokens_ += n;
    if (buffered_bytes_ >= shard_bytes_) flush_shard();
  }
  return added;
}

void SoftLabelWriter::flush_shard() {
  const int64_t n_examples = static_cast<int64_t>(offsets_.size()) - 1;
  if (n_examples == 0) return;
  const int64_t n_tokens = offsets_.back();
  auto cat = [&](std::vector<at::Tensor>& parts, at::IntArrayRef empty_shape, at::ScalarType dt) {
    return parts.empty() ? at::empty(empty_shape, at::TensorOptions().dtype(dt)) : at::cat(parts, 0).contiguous();
  };
  io::NamedTensors tensors{
      {"offsets", at::tensor(offsets_, at::TensorOptions().dtype(at::kLong))},
      {"indices", cat(indices_, {0, k_}, index_dtype_)},
      {"logprobs", cat(logprobs_, {0, k_}, logprob_dtype_)},
      {"rest_mass", cat(rest_, {0}, at::kFloat)},
  };
  const std::string name = shard_name(shards_.size());
  const fs::path path = fs::path(tmp_dir_) / name;
  io::write_safetensors(path.string(), tensors, {{"format", kFormat}});
  data_bytes_ += static_cast<int64_t>(fs::file_size(path));
  shards_.push_back({name, shard_first_example_, n_examples, n_tokens});
  shard_first_example_ += n_examples;
  offsets_.assign(1, 0);
  indices_.clear();
  logprobs_.clear();
  rest_.clear();
  buffered_bytes_ = 0;
}

SoftLabelCacheInfo SoftLabelWriter::finish(int64_t expected_examples) {
  if (done_) throw std::logic_error("soft-label cache: the writer was already finished");
  if (expected_examples >= 0 && expected_examples != next_example_)
    throw std::invalid_argument("soft-label cache: " + std::to_string(next_example_) + " examples were added but " +
                                std::to_string(expected_examples) + " were expected");
  flush_shard();
  json idx = {{"format", kFormat},
              {"version", kVersion},
              {"vocab_size", vocab_size_},
              {"k", k_},
              {"tau", tau_},
              {"index_dtype", io::safetensors_dtype_code(index_dtype_)},
              {"logprob_dtype", io::safetensors_dtype_code(logprob_dtype_)},
              {"num_examples", next_example_},
              {"num_tokens", total_tokens_},
              {"data_bytes", data_bytes_},
              {"metadata", metadata_}};
  json shards = json::array();
  for (const auto& s : shards_)
    shards.push_back({{"file", s.file},
                      {"first_example", s.first_example},
                      {"num_examples", s.num_examples},
                      {"num_tokens", s.num_tokens}});
  idx["shards"] = shards;
  io::write_text_file_atomic(fs::path(tmp_dir_) / kIndexFile, idx.dump(2) + "\n");
  if (fs::exists(dir_))
    throw std::runtime_error("soft-label cache: " + dir_ + " appeared while writing; left the result in " + tmp_dir_);
  fs::rename(tmp_dir_, dir_);
  done_ = true;
  SoftLabelCacheInfo info;
  info.dir = dir_;
  info.vocab_size = vocab_size_;
  info.k = k_;
  info.tau = tau_;
  info.num_examples = next_example_;
  info.num_tokens = total_tokens_;
  info.index_dtype = io::safetensors_dtype_code(index_dtype_);
  info.logprob_dtype = io::safetensors_dtype_code(logprob_dtype_);
  info.data_bytes = data_bytes_;
  info.metadata = metadata_;
  return info;
}

// ---------------------------------------------------------------------------
// Reader

SoftLabelCache::SoftLabelCache(const std::string& dir) {
  const fs::path root(dir);
  const fs::path index = root / kIndexFile;
  const std::string where = index.string();
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": not a directory (expected a soft-label cache)");
  if (!fs::exists(index))
    throw std::runtime_error(where + ": not found (not a soft-label cache, or it was never finished)");
  json j;
  try {
    std::ifstream f(index);
    std::stringstream ss;
    ss << f.rdbuf();
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": not valid JSON: " + e.what());
  }
  auto need = [&](const char* key) -> const json& {
    if (!j.is_object() || !j.contains(key)) throw std::runtime_error(where + ": missing field '" + key + "'");
    return j[key];
  };
  auto need_int = [&](const char* key) {
    const json& v = need(key);
    if (!v.is_number_integer())
      throw std::runtime_error(where + ": field '" + std::string(key) + "' must be an integer");
    return v.get<int64_t>();
  };
  if (!need("format").is_string() || need("format").get<std::string>() != kFormat)
    throw std::runtime_error(where + ": field 'format' must be '" + kFormat + "'");
  if (need_int("version") != kVersion)
    throw std::runtime_error(where + ": version " + std::to_string(need_int("version")) +
                             " is not supported (expected " + std::to_string(kVersion) + ")");
  info_.dir = dir;
  info_.vocab_size = need_int("vocab_size");
  info_.k = need_int("k");
  if (!need("tau").is_number()) throw std::runtime_error(where + ": field 'tau' must be a number");
  info_.tau = need("tau").get<double>();
  info_.num_examples = need_int("num_examples");
  info_.num_tokens = need_int("num_tokens");
  info_.index_dtype = need("index_dtype").get<std::string>();
  info_.logprob_dtype = need("logprob_dtype").get<std::string>();
  if (j.contains("metadata") && j["metadata"].is_object())
    for (auto it = j["metadata"].begin(); it != j["metadata"].end(); ++it)
      if (it.value().is_string()) info_.metadata[it.key()] = it.value().get<std::string>();
  if (info_.k < 1 || info_.k > info_.vocab_size) throw std::runtime_error(where + ": k must be in [1, vocab_size]");
  if (info_.index_dtype != "I16" && info_.index_dtype != "I32")
    throw std::runtime_error(where + ": index_dtype must be I16 or I32");
  if (info_.logprob_dtype != "F32" && info_.logprob_dtype != "F16")
    throw std::runtime_error(where + ": logprob_dtype must be F32 or F16");
  const json& shards = need("shards");
  if (!shards.is_array()) throw std::runtime_error(where + ": field 'shards' must be an array");
  int64_t next = 0, tokens = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const json& s = shards[i];
    const std::string sw = where + ": shards[" + std::to_string(i) + "]";
    if (!s.is_object() || !s.contains("file") || !s["file"].is_string() || !s.contains("first_example") ||
        !s.contains("num_examples") || !s.contains("num_tokens"))
      throw std::runtime_error(sw + " needs file, first_example, num_examples, num_tokens");
    const std::string file = s["file"].get<std::string>();
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      throw std::runtime_error(sw + ".file '" + file + "' is not a file in this directory");
    Shard sh;
    sh.first_example = s["first_example"].get<int64_t>();
    sh.num_examples = s["num_examples"].get<int64_t>();
    sh.num_tokens = s["num_tokens"].get<int64_t>();
    if (sh.first_example != next)
      throw std::runtime_error(sw + ".first_example is " + std::to_string(sh.first_example) + ", expected " +
                               std::to_string(next));
    const std::string path = (root / file).string();
    sh.file = std::make_unique<io::SafetensorsFile>(path);
    info_.data_bytes += static_cast<int64_t>(fs::file_size(path));
    auto tensor = [&](const char* name) {
      for (const auto& e : sh.file->header().tensors)
        if (e.name == name) return sh.file->tensor(e);
      throw std::runtime_error(path + ": no tensor '" + std::string(name) + "'");
    };
    sh.offsets = tensor("offsets");
    sh.indices = tensor("indices");
    sh.logprobs = tensor("logprobs");
    sh.rest_mass = tensor("rest_mass");
    const at::ScalarType idx_t = info_.index_dtype == "I16" ? at::kShort : at::kInt;
    const at::ScalarType lp_t = info_.logprob_dtype == "F16" ? at::kHalf : at::kFloat;
    if (sh.offsets.scalar_type() != at::kLong || sh.offsets.dim() != 1 || sh.offsets.numel() != sh.num_examples + 1)
      throw std::runtime_error(path + ": tensor 'offsets' must be I64 [" + std::to_string(sh.num_examples + 1) + "]");
    if (sh.indices.scalar_type() != idx_t || sh.indices.dim() != 2 || sh.indices.size(0) != sh.num_tokens ||
        sh.indices.size(1) != info_.k)
      throw std::runtime_error(path + ": tensor 'indices' must be " + info_.index_dtype + " [" +
                               std::to_string(sh.num_tokens) + ", " + std::to_string(info_.k) + "]");
    if (sh.logprobs.scalar_type() != lp_t || sh.logprobs.sizes() != sh.indices.sizes())
      throw std::runtime_error(path + ": tensor 'logprobs' must be " + info_.logprob_dtype + " shaped like 'indices'");
    if (sh.rest_mass.scalar_type() != at::kFloat || sh.rest_mass.dim() != 1 || sh.rest_mass.size(0) != sh.num_tokens)
      throw std::runtime_error(path + ": tensor 'rest_mass' must be F32 [" + std::to_string(sh.num_tokens) + "]");
    const int64_t* off = sh.offsets.data_ptr<int64_t>();
    if (off[0] != 0 || off[sh.num_examples] != sh.num_tokens)
      throw std::runtime_error(path + ": tensor 'offsets' must start at 0 and end at num_tokens");
    for (int64_t e = 0; e < sh.num_examples; ++e)
      if (off[e + 1] < off[e])
        throw std::runtime_error(path + ": tensor 'offsets' decreases at example " +
                                 std::to_string(sh.first_example + e));
    next += sh.num_examples;
    tokens += sh.num_tokens;
    shards_.push_back(std::move(sh));
  }
  if (next != info_.num_examples)
    throw std::runtime_error(where + ": the shards hold " + std::to_string(next) + " examples but num_examples is " +
                             std::to_string(info_.num_examples));
  if (tokens != info_.num_tokens)
    throw std::runtime_error(where + ": the shards hold " + std::to_string(tokens) + " tokens but num_tokens is " +
                             std::to_string(info_.num_tokens));
}

const SoftLabelCache::Shard& SoftLabelCache::shard_of(int64_t example) const {
  if (example < 0 || example >= info_.num_examples)
    throw std::out_of_range("soft-label cache " + info_.dir + ": example " + std::to_string(example) +
                            " is outside [0, " + std::to_string(info_.num_examples) + ")");
  auto it = std::upper_bound(shards_.begin(), shards_.end(), example,
                             [](int64_t e, const Shard& s) { return e < s.first_example; });
  return *(it - 1);
}

int64_t SoftLabelCache::num_tokens_of(int64_t example) const {
  const Shard& s = shard_of(example);
  const int64_t* off = s.offsets.data_ptr<int64_t>();
  const int64_t e = example - s.first_example;
  return off[e + 1] - off[e];
}

kd::TopK SoftLabelCache::gather(const std::vector<int64_t>& example_ids, const at::Tensor& labels_in,
                                int64_t ignore_index) const {
  at::Tensor labels = labels_in.to(at::kCPU, at::kLong).contiguous();
  if (labels.dim() != 2 || labels.size(0) != static_cast<int64_t>(example_ids.size()))
    throw std::invalid_argument(
        "soft-label cache: labels must be [B,T] with B = " + std::to_string(example_ids.size()) + " example ids");
  const int64_t B = labels.size(0), T = labels.size(1), k = info_.k;
  kd::TopK out;
  // Padding rows: distinct ids with log-prob −inf (skipped) and no rest mass.
  out.indices = at::arange(k, at::TensorOptions().dtype(at::kInt)).repeat({B * T, 1}).contiguous();
  out.logprobs = at::full({B * T, k}, -std::numeric_limits<float>::infinity(), at::TensorOptions().dtype(at::kFloat));
  out.rest_mass = at::zeros({B * T}, at::TensorOptions().dtype(at::kFloat));
  const int64_t* y = labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t ex = example_ids[b];
    const Shard& s = shard_of(ex);
    const int64_t* off = s.offsets.data_ptr<int64_t>();
    const int64_t first = off[ex - s.first_example], count = off[ex - s.first_example + 1] - first;
    std::vector<int64_t> positions;
    for (int64_t t = 0; t < T; ++t)
      if (y[b * T + t] != ignore_index) positions.push_back(t);
    if (static_cast<int64_t>(positions.size()) != count)
      throw std::invalid_argument(
          "soft-label cache " + info_.dir + ": example " + std::to_string(ex) + " has " +
          std::to_string(positions.size()) + " target tokens in this batch but " + std::to_string(count) +
          " in the cache (was the cache built with another tokenizer, dataset or maxTargetLength?)");
    if (count == 0) continue;
    at::Tensor dst_rows = at::tensor(positions, at::TensorOptions().dtype(at::kLong)) + b * T;
    out.indices.index_copy_(0, dst_rows, s.indices.narrow(0, first, count).to(at::kInt));
    out.logprobs.index_copy_(0, dst_rows, s.logprobs.narrow(0, first, count).to(at::kFloat));
    out.rest_mass.index_copy_(0, dst_rows, s.rest_mass.narrow(0, first, count));
  }
  return out;
}

}  // namespace mentor_kd::train
