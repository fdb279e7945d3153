#include "t5/lora.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "io/safetensors.h"
#include "io/text_file.h"
#include "t5/dropout.h"

namespace mentor_kd::t5 {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kAdapterConfig = "adapter_config.json";
constexpr const char* kAdapterWeights = "adapter_model.safetensors";
constexpr const char* kKeyPrefix = "base_model.model.";
const char* const kModules = "q, k, v, o, wi_0, wi_1, wo (wi instead of wi_0/wi_1 for a relu feed-forward)";

// "encoder.block.0.layer.0.SelfAttention.q.weight" -> "q".
std::string module_of(const std::string& weight_name) {
  const std::string stem = weight_name.substr(0, weight_name.size() - 7);  // less ".weight"
  return stem.substr(stem.rfind('.') + 1);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One adapted base weight: its name and [out, in].
struct AdaptedWeight {
  std::string name;
  int64_t out = 0, in = 0;
};

// The base weights `lora` adapts in a model of `c`, in the model's parameter order.
std::vector<AdaptedWeight> adapted_weights(const LoraConfig& lora, const T5Config& c) {
  const int64_t D = c.d_model, I = c.inner_dim(), F = c.d_ff;
  std::vector<AdaptedWeight> out;
  for (const auto& name : expected_parameter_names(c)) {
    if (!ends_with(name, ".weight") || name.find(".block.") == std::string::npos) continue;
    const std::string m = module_of(name);
    if (!lora.targets(m)) continue;
    if (m == "q" || m == "k" || m == "v")
      out.push_back({name, I, D});
    else if (m == "o")
      out.push_back({name, D, I});
    else if (m == "wo")
      out.push_back({name, D, F});
    else
      out.push_back({name, F, D});  // wi, wi_0, wi_1
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Checks the adapter tensors of a file against what `lora` over `c` needs; returns them by name.
std::map<std::string, at::Tensor> read_adapter_tensors(const std::string& path, const LoraConfig& lora,
                                                       const T5Config& c) {
  io::SafetensorsFile file(path);
  std::map<std::string, const io::TensorEntry*> entries;
  for (const auto& e : file.header().tensors) entries[e.name] = &e;
  std::map<std::string, at::Tensor> out;
  for (const auto& w : adapted_weights(lora, c)) {
    for (const auto& [half, shape] : {std::pair{"lora_A", std::vector<int64_t>{lora.r, w.in}},
                                      std::pair{"lora_B", std::vector<int64_t>{w.out, lora.r}}}) {
      const std::string key = lora_key(w.name, half);
      auto it = entries.find(key);
      if (it == entries.end())
        throw std::runtime_error(path + ": no tensor '" + key + "' (adapter_config.json targets " +
                                 join(lora.target_modules) + ")");
      if (it->second->shape != shape)
        throw std::runtime_error(path + ": tensor '" + key + "' has shape [" + c10::Join(", ", it->second->shape) +
                                 "] but r = " + std::to_string(lora.r) + " and the model's layer imply [" +
                                 c10::Join(", ", shape) + "]");
      if (!at::isFloatingType(io::scalar_type_from_safetensors(it->second->dtype, path + ": tensor '" + key + "'")))
        throw std::runtime_error(path + ": tensor '" + key + "' has non-float dtype " + it->second->dtype);
      at::Tensor t = file.tensor(*it->second).to(at::kFloat).clone();
      const int64_t bad = t.numel() - at::isfinite(t).sum().item<int64_t>();
      if (bad > 0)
        throw std::runtime_error(path + ": tensor '" + key + "' holds " + std::to_string(bad) + " non-finite value(s)");
      out.emplace(key, t);
      entries.erase(it);
    }
  }
  if (!entries.empty())
    throw std::runtime_error(path + ": unexpected tensor '" + entries.begin()->first +
                             "' (not an adapter of the layers adapter_config.json targets)");
  return out;
}

}  // namespace

bool LoraConfig::targets(const std::string& module) const {
  return std::find(target_modules.begin(), target_modules.end(), module) != target_modules.end();
}

at::Tensor lora_delta(const at::Tensor& x, const LoraLinear& lora, bool train) {
  // x [..., in] -> [..., out]; the adapters are fp32 (PEFT's autocast_adapter_dtype), the result
  // goes back to x's dtype so a bf16 base adds it in its own precision.
  at::Tensor h = fast_dropout(x, lora.dropout, train);
  if (h.scalar_type() != lora.A.scalar_type()) h = h.to(lora.A.scalar_type());  // (autocast casts it back)
  return (at::linear(at::linear(h, lora.A), lora.B) * lora.scaling).to(x.scalar_type());
}

std::string lora_key(const std::string& base_weight_name, const char* half) {
  return kKeyPrefix + base_weight_name.substr(0, base_weight_name.size() - 7) + "." + half + ".weight";
}

void validate_lora_config(const LoraConfig& l, const T5Config& c, const std::string& field) {
  if (l.r < 1) throw std::invalid_argument(field + ".r must be an integer >= 1, got " + std::to_string(l.r));
  if (!(std::isfinite(l.lora_alpha) && l.lora_alpha > 0))
    throw std::invalid_argument(field + ".lora_alpha must be > 0, got " + std::to_string(l.lora_alpha));
  if (!(l.lora_dropout >= 0 && l.lora_dropout < 1))
    throw std::invalid_argument(field + ".lora_dropout must be in [0, 1), got " + std::to_string(l.lora_dropout));
  if (l.target_modules.empty())
    throw std::invalid_argument(field + ".target_modules must list one or more of " + kModules);
  std::set<std::string> seen;
  for (const auto& m : l.target_modules) {
    static const std::set<std::string> known{"q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"};
    if (!known.count(m))
      throw std::invalid_argument(field + ".target_modules: unknown module '" + m +
                                  "' (T5's linear layers: " + kModules + ")");
    if (!seen.insert(m).second) throw std::invalid_argument(field + ".target_modules lists '" + m + "' twice");
    if (c.is_gated_act && m == "wi")
      throw std::invalid_argument(field + ".target_modules: this model has no 'wi' (its feed_forward_proj " +
                                  c.feed_forward_proj + " is gated: wi_0 and wi_1)");
    if (!c.is_gated_act && (m == "wi_0" || m == "wi_1"))
      throw std::invalid_argument(field + ".target_modules: this model has no '" + m + "' (its feed_forward_proj " +
                                  c.feed_forward_proj + " is not gated: wi)");
  }
}

std::string lora_adapter_config_json(const LoraConfig& l, const std::string& base) {
  // The fields PEFT's LoraConfig saves (save_pretrained sets inference_mode true); PEFT reads
  // unknown-to-it defaults for the rest.
  json alpha = std::floor(l.lora_alpha) == l.lora_alpha && std::abs(l.lora_alpha) < 1e15
                   ? json(static_cast<int64_t>(l.lora_alpha))
                   : json(l.lora_alpha);
  json j = {{"alpha_pattern", json::object()},
            {"auto_mapping", nullptr},
            {"base_model_name_or_path", base},
            {"bias", "none"},
            {"fan_in_fan_out", false},
            {"inference_mode", true},
            {"init_lora_weights", true},
            {"layers_pattern", nullptr},
            {"layers_to_transform", nullptr},
            {"lora_alpha", alpha},
            {"lora_dropout", l.lora_dropout},
            {"modules_to_save", nullptr},
            {"peft_type", "LORA"},
            {"r", l.r},
            {"rank_pattern", json::object()},
            {"revision", nullptr},
            {"target_modules", l.target_modules},
            {"task_type", "SEQ_2_SEQ_LM"},
            {"use_dora", false},
            {"use_rslora", false}};
  return j.dump(2) + "\n";
}

LoraConfig read_lora_adapter_config(const std::string& path, std::string* base) {
  json j;
  try {
    j = json::parse(io::read_text_file(path, 1 << 20));
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::runtime_error(path + ": must be a JSON object");
  auto field = [&](const char* k) { return path + ": field '" + k + "'"; };
  if (j.value("peft_type", json()) != "LORA")
    throw std::runtime_error(field("peft_type") + " must be \"LORA\" (only LoRA adapters are read)");
  LoraConfig l;
  if (!j.contains("r") || !j["r"].is_number_integer()) throw std::runtime_error(field("r") + " must be an integer");
  l.r = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number())
    throw std::runtime_error(field("lora_alpha") + " must be a number");
  l.lora_alpha = j["lora_alpha"].get<double>();
  if (j.contains("lora_dropout") && !j["lora_dropout"].is_null()) {
    if (!j["lora_dropout"].is_number()) throw std::runtime_error(field("lora_dropout") + " must be a number");
    l.lora_dropout = j["lora_dropout"].get<double>();
  }
  const json tm = j.value("target_modules", json());
  if (!tm.is_array())
    throw std::runtime_error(field("target_modules") + " must be a list of module names (a regex string is not read)");
  for (const auto& m : tm) {
    if (!m.is_string()) throw std::runtime_error(field("target_modules") + " must hold strings");
    l.target_modules.push_back(m.get<std::string>());
  }
  // Options that change the computation and are not implemented: refused by name, not ignored.
  auto is_set = [&](const char* k) {
    if (!j.contains(k) || j[k].is_null()) return false;
    const json& v = j[k];
    return v.is_boolean() ? v.get<bool>() : v.is_object() || v.is_array() ? !v.empty() : true;
  };
  for (const char* k : {"use_rslora", "use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern", "modules_to_save",
                        "layers_to_transform"})
    if (is_set(k)) throw std::runtime_error(field(k) + " is set; mentor-kd reads plain LoRA adapters only");
  if (j.contains("bias") && j["bias"] != "none") throw std::runtime_error(field("bias") + " must be \"none\"");
  if (base) {
    const json b = j.value("base_model_name_or_path", json());
    *base = b.is_string() ? b.get<std::string>() : "";
  }
  return l;
}

bool is_lora_adapter_dir(const std::string& dir) {
  const fs::path root(dir);
  return fs::exists(root / kAdapterConfig) && !fs::exists(root / "model.safetensors") &&
         !fs::exists(root / "model.safetensors.index.json");
}

std::shared_ptr<T5Model> load_lora_merged(const std::string& dir, at::Device device, at::ScalarType dtype,
                                          const LoadOptions& options) {
  const fs::path root(dir);
  std::string base;
  read_lora_adapter_config((root / kAdapterConfig).string(), &base);
  if (base.empty())
    throw std::runtime_error((root / kAdapterConfig).string() +
                             ": no base_model_name_or_path; merge it with `mentor-kd model merge-lora --base DIR "
                             "--adapter " +
                             dir + " --output DIR`");
  fs::path base_dir(base);
  if (base_dir.is_relative()) base_dir = root / base_dir;
  if (!fs::is_directory(base_dir))
    throw std::runtime_error((root / kAdapterConfig).string() + ": base_model_name_or_path '" + base +
                             "' is not a model directory here (give it to merge-lora as --base)");
  std::shared_ptr<T5Model> m = T5Model::load(base_dir.string(), device, dtype, options);
  m->load_lora(dir);
  std::shared_ptr<T5Model> merged = m->converted(dtype);
  merged->source_dir = dir;
  return merged;
}

void T5Model::attach_lora(const LoraConfig& c, io::NamedTensors adapters) {
  std::map<std::string, at::Tensor> by_name(adapters.begin(), adapters.end());
  auto bind = [&](LoraLinear& l, const std::string& weight_name) {
    if (!c.targets(module_of(weight_name))) return;
    l.A = by_name.at(lora_key(weight_name, "lora_A"));
    l.B = by_name.at(lora_key(weight_name, "lora_B"));
    l.scaling = c.scaling();
    l.dropout = c.lora_dropout;
  };
  auto attn = [&](AttentionWeights& w, const std::string& p) {
    bind(w.lora_q, p + "q.weight");
    bind(w.lora_k, p + "k.weight");
    bind(w.lora_v, p + "v.weight");
    bind(w.lora_o, p + "o.weight");
  };
  auto ff = [&](FeedForwardWeights& w, const std::string& p) {
    if (config_.is_gated_act) {
      bind(w.lora_wi_0, p + "wi_0.weight");
      bind(w.lora_wi_1, p + "wi_1.weight");
    } else {
      bind(w.lora_wi, p + "wi.weight");
    }
    bind(w.lora_wo, p + "wo.weight");
  };
  for (size_t i = 0; i < encoder_.size(); ++i) {
    const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
    attn(encoder_[i].self_attn, p + "0.SelfAttention.");
    ff(encoder_[i].ff, p + "1.DenseReluDense.");
  }
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const std::string p = "decoder.block." + std::to_string(i) + ".layer.";
    attn(decoder_[i].self_attn, p + "0.SelfAttention.");
    attn(decoder_[i].cross_attn, p + "1.EncDecAttention.");
    ff(decoder_[i].ff, p + "2.DenseReluDense.");
  }
  // Base frozen, adapters trained.
  for (auto& [name, t] : params_) t.requires_grad_(false);
  for (auto& [name, t] : adapters) t.requires_grad_(true);
  lora_params_ = std::move(adapters);
  lora_ = c;
}

void T5Model::add_lora(const LoraConfig& c, uint64_t seed) {
  if (lora_) throw std::invalid_argument("this model already has LoRA adapters");
  validate_lora_config(c, config_, "lora");
  // PEFT's init: A kaiming-uniform with a = √5 (bound = 1/√in), B zero: the model starts as its base.
  // Drawn in fp32 on the CPU, so a seed gives the same adapters on every device.
  at::Generator gen = at::detail::createCPUGenerator(seed);
  io::NamedTensors adapters;
  at::NoGradGuard no_grad;
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  for (const auto& w : adapted_weights(c, config_)) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.in));
    at::Tensor A = at::empty({c.r, w.in}, opts);
    A.uniform_(-bound, bound, gen);
    adapters.emplace_back(lora_key(w.name, "lora_A"), A.to(device_));
    adapters.emplace_back(lora_key(w.name, "lora_B"), at::zeros({w.out, c.r}, opts.device(device_)));
  }
  attach_lora(c, std::move(adapters));
}

void T5Model::load_lora(const std::string& dir) {
  if (lora_) throw std::invalid_argument("this model already has LoRA adapters");
  const fs::path root(dir);
  const std::string cfg_path = (root / kAdapterConfig).string();
  if (!fs::exists(cfg_path))
    throw std::runtime_error(dir + ": no " + std::string(kAdapterConfig) + " (not a PEFT adapter directory)");
  LoraConfig c = read_lora_adapter_config(cfg_path, nullptr);
  validate_lora_config(c, config_, cfg_path + ": lora");
  auto tensors = read_adapter_tensors((root / kAdapterWeights).string(), c, config_);
  io::NamedTensors adapters;
  for (const auto& w : adapted_weights(c, config_))
    for (const char* half : {"lora_A", "lora_B"}) {
      const std::string key = lora_key(w.name, half);
      adapters.emplace_back(key, tensors.at(key).to(device_));
    }
  attach_lora(c, std::move(adapters));
}

io::NamedTensors T5Model::read_lora(const std::string& dir) const {
  if (!lora_) throw std::invalid_argument("read_lora: this model has no LoRA adapters");
  const fs::path root(dir);
  const std::string cfg_path = (root / kAdapterConfig).string();
  LoraConfig c = read_lora_adapter_config(cfg_path, nullptr);
  if (c.r != lora_->r || c.lora_alpha != lora_->lora_alpha || c.lora_dropout != lora_->lora_dropout ||
      c.target_modules != lora_->target_modules)
    throw std::runtime_error(cfg_path + ": the checkpoint's LoRA settings (r " + std::to_string(c.r) + ", lora_alpha " +
                             std::to_string(c.lora_alpha) + ", target_modules " + join(c.target_modules) +
                             ") differ from the run's (r " + std::to_string(lora_->r) + ", lora_alpha " +
                             std::to_string(lora_->lora_alpha) + ", target_modules " + join(lora_->target_modules) +
                             ")");
  auto tensors = read_adapter_tensors((root / kAdapterWeights).string(), c, config_);
  io::NamedTensors out;
  for (const auto& [name, t] : lora_params_) out.emplace_back(name, tensors.at(name));
  return out;
}

void T5Model::save_lora(const std::string& dir, bool with_model_config) const {
  if (!lora_) throw std::invalid_argument("save_lora: this model has no LoRA adapters");
  const fs::path root(dir);
  fs::create_directories(root);
  const std::string base = source_dir.empty() ? "" : fs::absolute(source_dir).lexically_normal().string();
  io::write_safetensors((root / kAdapterWeights).string(), lora_params_, {{"format", "pt"}});
  io::write_text_file_atomic(root / kAdapterConfig, lora_adapter_config_json(*lora_, base));
  if (with_model_config) {
    io::write_text_file_atomic(root / "config.json",
                               t5_config_to_json(config_, dtype_ == at::kBFloat16 ? "bfloat16" : "float32"));
    if (!generation_config_json.empty())
      io::write_text_file_atomic(root / "generation_config.json", generation_config_json);
  }
}

void T5Model::merge_lora_into(T5Model& target) const {
  // W' = W + B·A·(lora_alpha/r), in fp32 from this model's weights, then rounded to the target's dtype.
  at::NoGradGuard no_grad;
  for (const auto& w : adapted_weights(*lora_, config_)) {
    const at::Tensor A = parameter(lora_key(w.name, "lora_A")).to(at::kFloat);
    const at::Tensor B = parameter(lora_key(w.name, "lora_B")).to(at::kFloat);
    target.param(w.name).copy_(parameter(w.name).to(at::kFloat) + at::matmul(B, A) * lora_->scaling());
  }
}

}  // namespace mentor_kd::t5
