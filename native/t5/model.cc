#include "t5/model.h"

#include "generate/slot_kv_cache.h"
#include "io/text_file.h"
#include "io/weight_files.h"
#include "t5/checkpoint.h"
#include "t5/dropout.h"
#include "t5/lora.h"
#include "t5/rms_norm.h"

#include <ATen/CPUGeneratorImpl.h>
#include <sys/resource.h>
#include <c10/core/InferenceMode.h>

#ifdef MENTOR_KD_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace mentor_kd::t5 {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string block_prefix(const char* stack, int64_t i) {
  return std::string(stack) + ".block." + std::to_string(i) + ".layer.";
}

// Names that HF checkpoints may carry besides the parameters proper: tied
// copies of shared.weight, and a cross-attention bias HF itself ignores
// (T5ForConditionalGeneration._keys_to_ignore_on_load_unexpected).
bool is_ignorable_alias(const std::string& name, const T5Config& c) {
  if (name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight") return true;
  if (name == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight") return true;
  if (c.tie_word_embeddings && name == "lm_head.weight") return true;
  return false;
}

std::vector<int64_t> expected_shape(const std::string& name, const T5Config& c) {
  const int64_t D = c.d_model, I = c.inner_dim(), F = c.d_ff, V = c.vocab_size;
  auto ends_with = [&](const char* suffix) {
    std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (name == "shared.weight" || name == "lm_head.weight" || ends_with("embed_tokens.weight")) return {V, D};
  if (ends_with("relative_attention_bias.weight")) return {c.relative_attention_num_buckets, c.num_heads};
  if (ends_with(".q.weight") || ends_with(".k.weight") || ends_with(".v.weight")) return {I, D};
  if (ends_with(".o.weight")) return {D, I};
  if (ends_with(".wi.weight") || ends_with(".wi_0.weight") || ends_with(".wi_1.weight")) return {F, D};
  if (ends_with(".wo.weight")) return {D, F};
  if (ends_with("layer_norm.weight")) return {D};
  throw std::logic_error("no shape rule for " + name);
}

void append_ff_names(std::vector<std::string>& out, const std::string& p, const T5Config& c) {
  if (c.is_gated_act) {
    out.push_back(p + "DenseReluDense.wi_0.weight");
    out.push_back(p + "DenseReluDense.wi_1.weight");
  } else {
    out.push_back(p + "DenseReluDense.wi.weight");
  }
  out.push_back(p + "DenseReluDense.wo.weight");
  out.push_back(p + "layer_norm.weight");
}

void append_attention_names(std::vector<std::string>& out, const std::string& p, const char* kind, bool bias) {
  for (const char* m : {"q", "k", "v", "o"}) out.push_back(p + kind + "." + m + ".weight");
  if (bias) out.push_back(p + kind + ".relative_attention_bias.weight");
  out.push_back(p + "layer_norm.weight");
}

at::Generator make_generator(at::Device device, uint64_t seed) {
#ifdef MENTOR_KD_WITH_CUDA
  if (device.is_cuda()) {
    at::Generator g = at::cuda::detail::createCUDAGenerator(device.index() < 0 ? 0 : device.index());
    g.set_current_seed(seed);
    return g;
  }
#endif
  return at::detail::createCPUGenerator(seed);
}

std::string torch_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kDouble: return "float64";
    default: return c10::toString(t);
  }
}

// Bytes each parameter tensor costs beyond its data (TensorImpl, storage, autograd meta, name).
constexpr uint64_t kPerTensorOverheadBytes = 1024;

std::string human_bytes(uint64_t n) {
  char buf[64];
  const double x = static_cast<double>(n);
  if (x >= 1e9)
    std::snprintf(buf, sizeof(buf), "%.1f GB", x / 1e9);
  else if (x >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.1f MB", x / 1e6);
  else
    std::snprintf(buf, sizeof(buf), "%.1f KB", x / 1e3);
  return std::to_string(n) + " bytes (" + buf + ")";
}

// The first unsigned integer after `key` in a /proc-style text (e.g. "MemAvailable:"), or nullopt.
std::optional<uint64_t> number_after(const std::string& text, const std::string& key) {
  auto pos = text.find(key);
  if (pos == std::string::npos) return std::nullopt;
  pos += key.size();
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
  if (pos >= text.size() || text[pos] < '0' || text[pos] > '9') return std::nullopt;
  uint64_t v = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(text[pos++] - '0');
  }
  return v;
}

// /proc and /sys files report size 0: read them as streams.
std::string read_proc_file(const char* path) {
  std::ifstream f(path);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Which config fields make up the bytes, largest part first, for the refusal message.
std::string parameter_breakdown(const T5Config& c, uint64_t element_size) {
  auto mulsat = [](uint64_t a, uint64_t b) {
    uint64_t out = 0;
    return __builtin_mul_overflow(a, b, &out) ? std::numeric_limits<uint64_t>::max() : out;
  };
  const uint64_t D = c.d_model, I = mulsat(c.num_heads, c.d_kv), F = c.d_ff;
  const uint64_t ff = mulsat(c.is_gated_act ? 3 : 2, mulsat(F, D));
  const uint64_t attn = mulsat(4, mulsat(I, D));
  std::vector<std::pair<uint64_t, std::string>> parts{
      {mulsat(mulsat(c.vocab_size, D), (c.tie_word_embeddings ? 1 : 2) * element_size),
       "embeddings (vocab_size " + std::to_string(c.vocab_size) + " x d_model " + std::to_string(D) + ")"},
      {mulsat(mulsat(c.num_layers, attn + ff + 2 * D), element_size),
       "encoder (num_layers " + std::to_string(c.num_layers) + " x d_model " + std::to_string(D) + ", d_ff " +
           std::to_string(F) + ", num_heads " + std::to_string(c.num_heads) + " x d_kv " + std::to_string(c.d_kv) +
           ")"},
      {mulsat(mulsat(c.num_decoder_layers, 2 * attn + ff + 3 * D), element_size),
       "decoder (num_decoder_layers " + std::to_string(c.num_decoder_layers) + ")"},
      {mulsat(mulsat(2 * c.relative_attention_num_buckets, c.num_heads), element_size),
       "relative attention bias (relative_attention_num_buckets " + std::to_string(c.relative_attention_num_buckets) +
           " x num_heads " + std::to_string(c.num_heads) + ")"},
  };
  std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string out;
  for (const auto& [bytes, what] : parts) out += (out.empty() ? "" : "; ") + what + ": " + human_bytes(bytes);
  return out;
}

// Refuses a model whose parameters would not fit the budget, before anything is allocated.
void check_memory_budget(const T5Config& c, at::Device device, at::ScalarType dtype, const LoadOptions& options,
                         const std::string& source) {
  const uint64_t need = estimate_parameter_bytes(c, dtype, source);
  std::optional<uint64_t> budget = options.memory_budget_bytes;
  std::string budget_what = "the memoryBudgetBytes option";
  if (!budget && device.is_cpu()) {
    budget = available_memory_bytes();
    budget_what = "the memory available to this process (set memoryBudgetBytes to change the budget)";
  }
  if (!budget) {
    // On an accelerator the data goes to device memory; the tensor objects and names stay on the host.
    const uint64_t host = static_cast<uint64_t>(t5_size(c, source).tensors) * kPerTensorOverheadBytes;
    auto avail = available_memory_bytes();
    if (avail && host > *avail)
      throw std::runtime_error(source + ": the model's " + std::to_string(t5_size(c, source).tensors) +
                               " parameter tensors (num_layers " + std::to_string(c.num_layers) +
                               ", num_decoder_layers " + std::to_string(c.num_decoder_layers) + ") need about " +
                               human_bytes(host) + " of host memory, more than the " + human_bytes(*avail) +
                               " available to this process");
  }
  if (budget && need > *budget)
    throw std::runtime_error(source + ": the model's parameters need about " + human_bytes(need) + " as " +
                             torch_dtype_name(dtype) + ", more than " + human_bytes(*budget) + " allowed by " +
                             budget_what + " — " + parameter_breakdown(c, c10::elementSize(dtype)));
}

// Block indices present in a checkpoint for `stack` ("encoder" / "decoder").
void collect_block_index(const std::string& name, const char* stack, std::set<int64_t>& out) {
  const std::string prefix = std::string(stack) + ".block.";
  if (name.rfind(prefix, 0) != 0) return;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && j - i < 18 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return;
  out.insert(std::stoll(name.substr(i, j - i)));
}

// The config fields a parameter's shape comes from, for shape-mismatch messages.
std::string shape_fields(const std::string& name, const T5Config& c) {
  auto ends_with = [&](const char* suffix) {
    std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  auto f = [](const char* k, int64_t v) { return std::string(k) + " = " + std::to_string(v); };
  if (name == "shared.weight" || name == "lm_head.weight" || ends_with("embed_tokens.weight"))
    return f("vocab_size", c.vocab_size) + ", " + f("d_model", c.d_model);
  if (ends_with("relative_attention_bias.weight"))
    return f("relative_attention_num_buckets", c.relative_attention_num_buckets) + ", " + f("num_heads", c.num_heads);
  if (ends_with(".q.weight") || ends_with(".k.weight") || ends_with(".v.weight") || ends_with(".o.weight"))
    return f("num_heads", c.num_heads) + ", " + f("d_kv", c.d_kv) + ", " + f("d_model", c.d_model);
  if (ends_with("layer_norm.weight")) return f("d_model", c.d_model);
  return f("d_ff", c.d_ff) + ", " + f("d_model", c.d_model);
}

}  // namespace

uint64_t estimate_parameter_bytes(const T5Config& c, at::ScalarType dtype, const std::string& source) {
  const T5Size size = t5_size(c, source);
  uint64_t data = 0, overhead = 0, total = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(size.parameters), c10::elementSize(dtype), &data) ||
      __builtin_mul_overflow(static_cast<uint64_t>(size.tensors), kPerTensorOverheadBytes, &overhead) ||
      __builtin_add_overflow(data, overhead, &total))
    throw std::runtime_error(source + ": the parameter bytes overflow a 64-bit size — " +
                             parameter_breakdown(c, c10::elementSize(dtype)));
  return total;
}

std::optional<uint64_t> available_memory_bytes() {
  std::optional<uint64_t> best;
  auto consider = [&](std::optional<uint64_t> v) {
    if (v && (!best || *v < *best)) best = v;
  };
  if (auto kb = number_after(read_proc_file("/proc/meminfo"), "MemAvailable:")) consider(*kb * 1024);
  // cgroup v2: memory.max ("max" when unlimited) less what the group already uses.
  const std::string max_text = read_proc_file("/sys/fs/cgroup/memory.max");
  if (auto max = number_after(max_text, "")) {
    auto cur = number_after(read_proc_file("/sys/fs/cgroup/memory.current"), "");
    consider(cur && *cur < *max ? *max - *cur : 0);
  }
  // An address-space limit (ulimit -v, prlimit --as) less the address space already mapped.
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    auto vm_kb = number_after(read_proc_file("/proc/self/status"), "VmSize:");
    const uint64_t used = vm_kb ? *vm_kb * 1024 : 0;
    consider(rl.rlim_cur > used ? rl.rlim_cur - used : 0);
  }
  return best;
}

std::vector<std::string> expected_parameter_names(const T5Config& c) {
  std::vector<std::string> out{"shared.weight"};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::string p = block_prefix("encoder", i);
    append_attention_names(out, p + "0.", "SelfAttention", i == 0);
    append_ff_names(out, p + "1.", c);
  }
  out.push_back("encoder.final_layer_norm.weight");
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    std::string p = block_prefix("decoder", i);
    append_attention_names(out, p + "0.", "SelfAttention", i == 0);
    append_attention_names(out, p + "1.", "EncDecAttention", false);
    append_ff_names(out, p + "2.", c);
  }
  out.push_back("decoder.final_layer_norm.weight");
  if (!c.tie_word_embeddings) out.push_back("lm_head.weight");
  return out;
}

at::Tensor relative_position_bucket(const at::Tensor& relative_position, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance) {
  // Same tensor ops, in the same order and precision, as HF — the float32
  // log() decides bucket edges, so any other formula could disagree on a boundary.
  at::Tensor rel = relative_position;
  at::Tensor buckets = at::zeros_like(rel);
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (rel > 0).to(at::kLong) * num_buckets;
    rel = at::abs(rel);
  } else {
    rel = -at::min(rel, at::zeros_like(rel));
  }
  const int64_t max_exact = num_buckets / 2;
  at::Tensor is_small = rel < max_exact;
  at::Tensor if_large = max_exact + (at::log(rel.to(at::kFloat) / static_cast<double>(max_exact)) /
                                     std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                                     static_cast<double>(num_buckets - max_exact))
                                        .to(at::kLong);
  if_large = at::min(if_large, at::full_like(if_large, num_buckets - 1));
  return buckets + at::where(is_small, rel, if_large);
}

T5Model::T5Model(T5Config config, at::Device device, at::ScalarType dtype)
    : config_(std::move(config)), device_(device), dtype_(dtype) {}

at::Tensor& T5Model::param(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end())
    for (auto& [n, t] : lora_params_)
      if (n == name) return t;
  if (it == index_.end()) throw std::invalid_argument("no parameter named '" + name + "'");
  return params_[it->second].second;
}

at::Tensor T5Model::parameter(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    for (const auto& [n, t] : lora_params_)
      if (n == name) return t;
  if (it == index_.end()) throw std::invalid_argument("no parameter named '" + name + "'");
  return params_[it->second].second;
}

int64_t T5Model::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

void T5Model::zero_grad() {
  for (auto* list : {&params_, &lora_params_})
    for (auto& [name, t] : *list) {
      if (t.grad().defined()) t.mutable_grad() = at::Tensor();
    }
}

void T5Model::set_parameter(const std::string& name, const at::Tensor& value) {
  at::Tensor& p = param(name);
  if (value.sizes() != p.sizes())
    throw std::invalid_argument("parameter '" + name + "' has shape [" + c10::Join(", ", p.sizes()) + "], got [" +
                                c10::Join(", ", value.sizes()) + "]");
  at::NoGradGuard no_grad;
  p.copy_(value);
}

std::shared_ptr<T5Model> T5Model::converted(at::ScalarType dtype) const {
  std::shared_ptr<T5Model> out(new T5Model(config_, device_, dtype));
  out->allocate();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) out->params_[i].second.copy_(params_[i].second);
  if (lora_) merge_lora_into(*out);
  out->generation_config_json = generation_config_json;
  out->source_dir = source_dir;
  return out;
}

void T5Model::allocate() {
  auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (const auto& name : expected_parameter_names(config_)) {
    index_[name] = params_.size();
    params_.emplace_back(name, at::empty(expected_shape(name, config_), opts));
  }
  bind_blocks();
}

void T5Model::bind_blocks() {
  auto attn = [&](const std::string& p, const char* kind, bool bias) {
    AttentionWeights w;
    w.q = param(p + kind + ".q.weight");
    w.k = param(p + kind + ".k.weight");
    w.v = param(p + kind + ".v.weight");
    w.o = param(p + kind + ".o.weight");
    if (bias) w.relative_attention_bias = param(p + kind + ".relative_attention_bias.weight");
    return w;
  };
  auto ff = [&](const std::string& p) {
    FeedForwardWeights w;
    if (config_.is_gated_act) {
      w.wi_0 = param(p + "DenseReluDense.wi_0.weight");
      w.wi_1 = param(p + "DenseReluDense.wi_1.weight");
    } else {
      w.wi = param(p + "DenseReluDense.wi.weight");
    }
    w.wo = param(p + "DenseReluDense.wo.weight");
    return w;
  };
  shared_ = param("shared.weight");
  lm_head_ = config_.tie_word_embeddings ? shared_ : param("lm_head.weight");
  encoder_final_norm_ = param("encoder.final_layer_norm.weight");
  decoder_final_norm_ = param("decoder.final_layer_norm.weight");
  encoder_.clear();
  decoder_.clear();
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    std::string p = block_prefix("encoder", i);
    EncoderBlockWeights b;
    b.self_norm = param(p + "0.layer_norm.weight");
    b.self_attn = attn(p + "0.", "SelfAttention", i == 0);
    b.ff_norm = param(p + "1.layer_norm.weight");
    b.ff = ff(p + "1.");
    encoder_.push_back(std::move(b));
  }
  for (int64_t i = 0; i < config_.num_decoder_layers; ++i) {
    std::string p = block_prefix("decoder", i);
    DecoderBlockWeights b;
    b.self_norm = param(p + "0.layer_norm.weight");
    b.self_attn = attn(p + "0.", "SelfAttention", i == 0);
    b.cross_norm = param(p + "1.layer_norm.weight");
    b.cross_attn = attn(p + "1.", "EncDecAttention", false);
    b.ff_norm = param(p + "2.layer_norm.weight");
    b.ff = ff(p + "2.");
    decoder_.push_back(std::move(b));
  }
}

void T5Model::init_weights(uint64_t seed) {
  // HF T5PreTrainedModel._init_weights, drawn in float32 on the CPU so a seed
  // gives the same model on every device and dtype.
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const double f = config_.initializer_factor;
  const double D = static_cast<double>(config_.d_model), F = static_cast<double>(config_.d_ff);
  const double kv = static_cast<double>(config_.d_kv), H = static_cast<double>(config_.num_heads);
  at::NoGradGuard no_grad;
  for (auto& [name, t] : params_) {
    auto ends_with = [&](const char* s) {
      std::string suffix(s);
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    double std_dev;
    if (ends_with("layer_norm.weight")) {
      t.fill_(f);
      continue;
    } else if (name == "shared.weight" || name == "lm_head.weight") {
      std_dev = f;
    } else if (ends_with(".q.weight")) {
      std_dev = f * std::pow(D * kv, -0.5);
    } else if (ends_with(".k.weight") || ends_with(".v.weight") || ends_with("relative_attention_bias.weight")) {
      std_dev = f * std::pow(D, -0.5);
    } else if (ends_with(".o.weight")) {
      std_dev = f * std::pow(H * kv, -0.5);
    } else if (ends_with(".wo.weight")) {
      std_dev = f * std::pow(F, -0.5);
    } else {  // wi, wi_0, wi_1
      std_dev = f * std::pow(D, -0.5);
    }
    at::Tensor cpu = at::empty(t.sizes(), at::TensorOptions().dtype(at::kFloat));
    cpu.normal_(0.0, std_dev, gen);
    t.copy_(cpu);
  }
}

std::shared_ptr<T5Model> T5Model::from_config(const T5Config& config, at::Device device, at::ScalarType dtype,
                                              uint64_t seed, const LoadOptions& options) {
  // No checkpoint to compare sizes with: the estimate against the budget is the guard.
  check_memory_budget(config, device, dtype, options, "config");
  std::shared_ptr<T5Model> m(new T5Model(config, device, dtype));
  m->allocate();
  m->init_weights(seed);
  for (auto& [name, t] : m->params_) t.requires_grad_(true);
  json gen = {
      {"decoder_start_token_id", config.decoder_start_token_id},
      {"eos_token_id", config.eos_token_ids.size() == 1 ? json(config.eos_token_ids[0]) : json(config.eos_token_ids)},
      {"pad_token_id", config.pad_token_id}};
  m->generation_config_json = gen.dump(2) + "\n";
  return m;
}

std::shared_ptr<T5Model> T5Model::load(const std::string& dir, at::Device device, at::ScalarType dtype,
                                       const LoadOptions& options) {
  fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": not a directory (expected a HF model directory)");
  // A PEFT adapter directory loads as its base model with the adapters merged in (t5/lora.h).
  if (is_lora_adapter_dir(dir)) return load_lora_merged(dir, device, dtype, options);
  const std::string config_path = (root / "config.json").string();
  T5Config config = read_t5_config(config_path);
  std::shared_ptr<T5Model> m(new T5Model(config, device, dtype));
  m->source_dir = dir;
  if (fs::exists(root / "generation_config.json"))
    m->generation_config_json = io::read_text_file(root / "generation_config.json");

  // Which files hold which tensors (one file, or shards listed by the index).
  io::WeightFiles weights(root);

  // Every header first, and every size config.json implies checked against them, before a byte
  // of the model is allocated: a config that claims a million layers or a 1e9-entry vocabulary
  // over a small file is refused here, naming the field.
  std::vector<std::unique_ptr<io::SafetensorsFile>> opened;
  std::set<int64_t> encoder_blocks, decoder_blocks;
  for (const auto& file : weights.files()) {
    opened.push_back(std::make_unique<io::SafetensorsFile>(file));
    for (const auto& e : opened.back()->header().tensors) {
      weights.found(file, e.name);
      collect_block_index(e.name, "encoder", encoder_blocks);
      collect_block_index(e.name, "decoder", decoder_blocks);
    }
  }
  // The layer counts bound how many parameter names there are: check them before listing names.
  for (const auto& [field, want, have, stack] :
       {std::tuple{"num_layers", config.num_layers, encoder_blocks.size(), "encoder"},
        std::tuple{"num_decoder_layers", config.num_decoder_layers, decoder_blocks.size(), "decoder"}}) {
    if (static_cast<uint64_t>(want) > have)
      throw std::runtime_error(config_path + ": field '" + field + "' = " + std::to_string(want) +
                               " but the checkpoint holds " + std::to_string(have) + " " + stack +
                               " blocks (config.json and weights disagree)");
  }
  const std::vector<std::string> names = expected_parameter_names(config);
  const std::set<std::string> expected(names.begin(), names.end());
  std::set<std::string> present;
  for (const auto& st : opened) {
    for (const auto& e : st->header().tensors) {
      const std::string& file = st->path();
      std::string target = e.name;
      const bool known = expected.count(e.name) > 0;
      if (!known) {
        if (!is_ignorable_alias(e.name, config))
          throw std::runtime_error(file + ": unexpected tensor '" + e.name +
                                   "' (not a parameter of a T5 model with this config.json)");
        // A tied copy stands in for shared.weight (checked like it); HF's ignored cross-attention bias is skipped.
        if (e.name.find("embed_tokens") == std::string::npos && e.name != "lm_head.weight") continue;
        target = "shared.weight";
      }
      auto want = expected_shape(target, config);
      if (e.shape != want)
        throw std::runtime_error(file + ": tensor '" + e.name + "' has shape [" + c10::Join(", ", e.shape) +
                                 "] but config.json implies [" + c10::Join(", ", want) + "] (" +
                                 shape_fields(target, config) + ")");
      if (!at::isFloatingType(io::scalar_type_from_safetensors(e.dtype, file + ": tensor '" + e.name + "'")))
        throw std::runtime_error(file + ": tensor '" + e.name + "' has non-float dtype " + e.dtype);
      present.insert(target);
    }
  }
  for (const auto& name : names) {
    if (!present.count(name))
      throw std::runtime_error(dir + ": checkpoint has no tensor '" + name +
                               "' (config.json and weights disagree, or the file is incomplete)");
  }
  weights.check_all_found([&](const std::string& name) { return is_ignorable_alias(name, config); });
  check_memory_budget(config, device, dtype, options, config_path);

  m->allocate();
  std::set<std::string> loaded;
  at::NoGradGuard no_grad;
  for (const auto& st : opened) {
    for (const auto& e : st->header().tensors) {
      std::string target = e.name;
      const bool known = m->index_.count(e.name) > 0;
      if (!known) {
        if (e.name.find("embed_tokens") == std::string::npos && e.name != "lm_head.weight") continue;
        target = "shared.weight";
      }
      // shared.weight itself wins over a tied copy, whichever comes first in the file.
      if (!known && loaded.count(target)) continue;
      at::Tensor& p = m->param(target);
      p.copy_(st->tensor(e));
      // NaN/Inf weights (or values beyond the model dtype's range) give NaN losses and
      // degenerate output much later; refuse them here unless asked not to.
      if (!options.allow_non_finite) {
        const int64_t bad = p.numel() - at::isfinite(p).sum().item<int64_t>();
        if (bad > 0)
          throw std::runtime_error(st->path() + ": tensor '" + e.name + "' holds " + std::to_string(bad) +
                                   " non-finite value(s) (NaN or Inf" +
                                   (dtype == io::scalar_type_from_safetensors(e.dtype, e.name)
                                        ? std::string()
                                        : std::string(", or beyond the range of ") + torch_dtype_name(dtype)) +
                                   "); load with allowNonFinite: true to accept them");
      }
      loaded.insert(target);
    }
  }
  for (auto& [name, t] : m->params_) t.requires_grad_(true);
  return m;
}

void T5Model::save(const std::string& dir, int64_t max_shard_bytes) const {
  const fs::path root(dir);
  io::write_weight_files(root, params_, max_shard_bytes);
  io::write_text_file_atomic(root / "config.json", t5_config_to_json(config_, torch_dtype_name(dtype_)));
  if (!generation_config_json.empty())
    io::write_text_file_atomic(root / "generation_config.json", generation_config_json);
}

// ---------------------------------------------------------------------------
// Forward pass

Seq2SeqBatch T5Model::prepare(const Seq2SeqBatch& in) const {
  Seq2SeqBatch b;
  const int64_t V = config_.vocab_size;
  auto ids = [&](const at::Tensor& t, const char* what, bool allow_ignore) {
    if (!t.defined()) return t;
    if (t.dim() != 2)
      throw std::invalid_argument(std::string(what) + " must be 2-D [batch, length], got " + std::to_string(t.dim()) +
                                  "-D");
    if (at::isFloatingType(t.scalar_type())) throw std::invalid_argument(std::string(what) + " must hold integers");
    at::Tensor x = t.to(at::kLong);
    if (x.numel() > 0) {
      at::Tensor valid = allow_ignore ? x.masked_fill(x == -100, 0) : x;
      int64_t lo = valid.min().item<int64_t>(), hi = valid.max().item<int64_t>();
      if (lo < 0)
        throw std::invalid_argument(std::string(what) + " contains id " + std::to_string(lo) + " < 0" +
                                    (allow_ignore ? " (only -100 may be negative)" : ""));
      if (hi >= V)
        throw std::invalid_argument(std::string(what) + " contains id " + std::to_string(hi) + " >= vocab_size " +
                                    std::to_string(V));
    }
    return x.to(device_);
  };
  auto mask = [&](const at::Tensor& t, const char* what, const at::Tensor& like, const char* like_name) {
    if (!t.defined()) return t;
    if (t.sizes() != like.sizes())
      throw std::invalid_argument(std::string(what) + " has shape [" + c10::Join(", ", t.sizes()) + "] but " +
                                  like_name + " has [" + c10::Join(", ", like.sizes()) + "]");
    // Anything but 0/1 scales the -inf padding bias into NaN or lets padding through.
    at::Tensor bad = (t != 0).logical_and(t != 1);
    if (t.numel() > 0 && bad.any().item<bool>()) {
      at::Tensor v = t.masked_select(bad).narrow(0, 0, 1).to(at::kCPU, at::kDouble);
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%g", v.item<double>());
      throw std::invalid_argument(std::string(what) + " holds " + buf + "; mask values must be 0 or 1");
    }
    return t.to(device_, at::kLong);
  };
  if (!in.input_ids.defined()) throw std::invalid_argument("inputIds is required");
  b.input_ids = ids(in.input_ids, "inputIds", false);
  if (b.input_ids.size(0) == 0 || b.input_ids.size(1) == 0) throw std::invalid_argument("inputIds is empty");
  b.attention_mask = in.attention_mask.defined() ? mask(in.attention_mask, "attentionMask", b.input_ids, "inputIds")
                                                 : at::ones_like(b.input_ids);
  b.labels = ids(in.labels, "labels", true);
  b.decoder_input_ids = ids(in.decoder_input_ids, "decoderInputIds", false);
  const int64_t B = b.input_ids.size(0);
  for (const auto& [t, name] : {std::pair{b.labels, "labels"}, std::pair{b.decoder_input_ids, "decoderInputIds"}}) {
    if (t.defined() && t.size(0) != B)
      throw std::invalid_argument(std::string(name) + " has batch size " + std::to_string(t.size(0)) +
                                  " but inputIds has " + std::to_string(B));
  }
  if (b.labels.defined() && b.decoder_input_ids.defined() && b.labels.sizes() != b.decoder_input_ids.sizes())
    throw std::invalid_argument("labels and decoderInputIds must have the same shape");
  if (!b.decoder_input_ids.defined() && b.labels.defined()) b.decoder_input_ids = shift_right(b.labels);
  if (b.decoder_input_ids.defined())
    b.decoder_attention_mask =
        mask(in.decoder_attention_mask, "decoderAttentionMask", b.decoder_input_ids, "decoderInputIds");
  return b;
}

at::Tensor T5Model::shift_right(const at::Tensor& labels) const {
  // HF T5PreTrainedModel._shift_right: start token, labels[:, :-1], -100 -> pad.
  at::Tensor out = at::empty_like(labels);
  out.select(1, 0).fill_(config_.decoder_start_token_id);
  if (labels.size(1) > 1) out.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return out.masked_fill(out == -100, config_.pad_token_id);
}

double T5Model::mask_min() const {
  // torch.finfo(dtype).min, as HF's extended attention masks use.
  if (dtype_ == at::kBFloat16) return -3.3895313892515355e38;
  if (dtype_ == at::kHalf) return -65504.0;
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

at::Tensor T5Model::padding_bias(const at::Tensor& attention_mask) const {
  // HF's (1 - mask) * finfo.min, shaped [B, 1, 1, S] to add to [B, H, Lq, S] scores.
  return (1.0 - attention_mask.to(dtype_).unsqueeze(1).unsqueeze(2)) * mask_min();
}

at::Tensor T5Model::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  return t5::rms_norm(x, weight, config_.layer_norm_epsilon);
}

at::Tensor T5Model::position_bias(const at::Tensor& table, int64_t query_len, int64_t key_len, bool bidirectional,
                                  int64_t query_offset) const {
  auto lopts = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor context = at::arange(query_offset, query_offset + query_len, lopts).unsqueeze(1);
  at::Tensor memory = at::arange(key_len, lopts).unsqueeze(0);
  at::Tensor buckets = relative_position_bucket(memory - context, bidirectional, config_.relative_attention_num_buckets,
                                                config_.relative_attention_max_distance);
  // [q, k, heads] -> [1, heads, q, k]
  return at::embedding(table, buckets).permute({2, 0, 1}).unsqueeze(0);
}

at::Tensor T5Model::attention(const at::Tensor& hidden_q, const at::Tensor& key_value_states, const AttentionWeights& w,
                              const at::Tensor& bias, bool train) const {
  const int64_t B = hidden_q.size(0), Lq = hidden_q.size(1), Lk = key_value_states.size(1);
  const int64_t H = config_.num_heads, dk = config_.d_kv, I = H * dk;
  // One GEMM for the projections that share an input (q, k, v for self-attention;
  // k, v for cross-attention): a wider N keeps OpenBLAS near its peak and reads
  // the activations once. The concatenated weight is rebuilt per call (a few MB)
  // so the parameters stay separate leaves under their HF names.
  at::Tensor q, k, v;
  if (hidden_q.is_same(key_value_states)) {
    auto qkv = at::linear(hidden_q, at::cat({w.q, w.k, w.v}, 0)).split(I, -1);
    q = qkv[0], k = qkv[1], v = qkv[2];
  } else {
    q = at::linear(hidden_q, w.q);
    auto kv = at::linear(key_value_states, at::cat({w.k, w.v}, 0)).split(I, -1);
    k = kv[0], v = kv[1];
  }
  if (w.lora_q.defined()) q = q + lora_delta(hidden_q, w.lora_q, train);
  if (w.lora_k.defined()) k = k + lora_delta(key_value_states, w.lora_k, train);
  if (w.lora_v.defined()) v = v + lora_delta(key_value_states, w.lora_v, train);
  q = q.view({B, Lq, H, dk}).transpose(1, 2);
  k = k.view({B, Lk, H, dk}).transpose(1, 2);
  v = v.view({B, Lk, H, dk}).transpose(1, 2);
  // No 1/sqrt(d) scaling: T5 folds it into the initialisation.
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2));
  if (bias.defined()) scores = scores + bias;
  at::Tensor weights = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
  weights = fast_dropout(weights, config_.dropout_rate, train);
  at::Tensor out = at::matmul(weights, v).transpose(1, 2).reshape({B, Lq, I});
  if (w.lora_o.defined()) return at::linear(out, w.o) + lora_delta(out, w.lora_o, train);
  return at::linear(out, w.o);
}

at::Tensor T5Model::feed_forward(const at::Tensor& x, const FeedForwardWeights& w, bool train,
                                 const at::Tensor& fused_wi) const {
  auto act = [&](const at::Tensor& t) {
    switch (config_.act) {
      case Activation::Relu: return at::relu(t);
      case Activation::GeluNew: return at::gelu(t, "tanh");
      case Activation::Gelu: return at::gelu(t);
      case Activation::Silu: return at::silu(t);
    }
    return t;
  };
  at::Tensor h;
  if (config_.is_gated_act) {
    // One GEMM, as in attention(); generation passes the concatenation in, built once.
    auto both = at::linear(x, fused_wi.defined() ? fused_wi : at::cat({w.wi_0, w.wi_1}, 0)).split(config_.d_ff, -1);
    if (w.lora_wi_0.defined()) both[0] = both[0] + lora_delta(x, w.lora_wi_0, train);
    if (w.lora_wi_1.defined()) both[1] = both[1] + lora_delta(x, w.lora_wi_1, train);
    h = act(both[0]) * both[1];
  } else {
    h = at::linear(x, w.wi);
    if (w.lora_wi.defined()) h = h + lora_delta(x, w.lora_wi, train);
    h = act(h);
  }
  h = fast_dropout(h, config_.dropout_rate, train);
  if (w.lora_wo.defined()) return at::linear(h, w.wo) + lora_delta(h, w.lora_wo, train);
  return at::linear(h, w.wo);
}

// One block of each stack ([B, L, D] -> [B, L, D]): what activation checkpointing recomputes.
at::Tensor T5Model::encoder_block(const EncoderBlockWeights& blk, const at::Tensor& x_in, const at::Tensor& bias,
                                  bool train) const {
  const double p = config_.dropout_rate;
  at::Tensor h = rms_norm(x_in, blk.self_norm);
  at::Tensor x = x_in + fast_dropout(attention(h, h, blk.self_attn, bias, train), p, train);
  return x + fast_dropout(feed_forward(rms_norm(x, blk.ff_norm), blk.ff, train), p, train);
}

at::Tensor T5Model::decoder_block(const DecoderBlockWeights& blk, const at::Tensor& x_in, const at::Tensor& self_bias,
                                  const at::Tensor& encoder_hidden, const at::Tensor& cross_bias, bool train) const {
  const double p = config_.dropout_rate;
  at::Tensor h = rms_norm(x_in, blk.self_norm);
  at::Tensor x = x_in + fast_dropout(attention(h, h, blk.self_attn, self_bias, train), p, train);
  x = x +
      fast_dropout(attention(rms_norm(x, blk.cross_norm), encoder_hidden, blk.cross_attn, cross_bias, train), p, train);
  return x + fast_dropout(feed_forward(rms_norm(x, blk.ff_norm), blk.ff, train), p, train);
}

namespace {
void append_lora(std::vector<at::Tensor>& out, std::initializer_list<const LoraLinear*> adapters) {
  for (const LoraLinear* l : adapters)
    if (l->defined()) out.insert(out.end(), {l->A, l->B});
}
void append_attention(std::vector<at::Tensor>& out, const AttentionWeights& w) {
  for (const at::Tensor* t : {&w.q, &w.k, &w.v, &w.o}) out.push_back(*t);
  append_lora(out, {&w.lora_q, &w.lora_k, &w.lora_v, &w.lora_o});
}
void append_feed_forward(std::vector<at::Tensor>& out, const FeedForwardWeights& w) {
  for (const at::Tensor* t : {&w.wi, &w.wi_0, &w.wi_1, &w.wo})
    if (t->defined()) out.push_back(*t);
  append_lora(out, {&w.lora_wi, &w.lora_wi_0, &w.lora_wi_1, &w.lora_wo});
}
}  // namespace

std::vector<at::Tensor> block_parameters(const EncoderBlockWeights& blk) {
  std::vector<at::Tensor> out{blk.self_norm, blk.ff_norm};
  append_attention(out, blk.self_attn);
  append_feed_forward(out, blk.ff);
  return out;
}

std::vector<at::Tensor> block_parameters(const DecoderBlockWeights& blk) {
  std::vector<at::Tensor> out{blk.self_norm, blk.cross_norm, blk.ff_norm};
  append_attention(out, blk.self_attn);
  append_attention(out, blk.cross_attn);
  append_feed_forward(out, blk.ff);
  return out;
}

at::Tensor T5Model::encode(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool train) {
  const double p = config_.dropout_rate;
  at::Tensor x = fast_dropout(at::embedding(shared_, input_ids), p, train);
  const int64_t S = input_ids.size(1);
  // Extended mask (1 - m) * finfo.min, added to block 0's relative bias once and reused by every block.
  at::Tensor ext = padding_bias(attention_mask);  // [B,1,1,S]
  at::Tensor bias = position_bias(encoder_[0].self_attn.relative_attention_bias, S, S, true, 0) + ext;
  for (size_t i = 0; i < encoder_.size(); ++i) {
    const EncoderBlockWeights& blk = encoder_[i];
    if (checkpoint_block_now(i))
      x = checkpointed_block(
          [this, blk, train](const std::vector<at::Tensor>& in) { return encoder_block(blk, in[0], in[1], train); },
          {x, bias}, block_parameters(blk));
    else
      x = encoder_block(blk, x, bias, train);
  }
  return fast_dropout(rms_norm(x, encoder_final_norm_), p, train);
}

at::Tensor T5Model::decode(const at::Tensor& decoder_input_ids, const at::Tensor& decoder_attention_mask,
                           const at::Tensor& encoder_hidden, const at::Tensor& attention_mask, bool train) {
  const double p = config_.dropout_rate;
  const int64_t T = decoder_input_ids.size(1);
  at::Tensor x = fast_dropout(at::embedding(shared_, decoder_input_ids), p, train);
  // Causal (times the decoder padding mask if given), as HF's get_extended_attention_mask.
  at::Tensor causal =
      at::ones({T, T}, at::TensorOptions().dtype(dtype_).device(device_)).tril().unsqueeze(0).unsqueeze(0);
  if (decoder_attention_mask.defined()) causal = causal * decoder_attention_mask.to(dtype_).unsqueeze(1).unsqueeze(2);
  at::Tensor self_bias =
      position_bias(decoder_[0].self_attn.relative_attention_bias, T, T, false, 0) + (1.0 - causal) * mask_min();
  at::Tensor cross_bias = padding_bias(attention_mask);
  for (size_t i = 0; i < decoder_.size(); ++i) {
    const DecoderBlockWeights& blk = decoder_[i];
    if (checkpoint_block_now(i))
      x = checkpointed_block(
          [this, blk, train](const std::vector<at::Tensor>& in) {
            return decoder_block(blk, in[0], in[1], in[2], in[3], train);
          },
          {x, self_bias, encoder_hidden, cross_bias}, block_parameters(blk));
    else
      x = decoder_block(blk, x, self_bias, encoder_hidden, cross_bias, train);
  }
  return fast_dropout(rms_norm(x, decoder_final_norm_), p, train);
}

at::Tensor T5Model::lm_head_input(const at::Tensor& decoder_hidden) const {
  // Original T5 ties the head to the embedding and rescales (HF: * d_model**-0.5).
  if (config_.tie_word_embeddings) return decoder_hidden * std::pow(static_cast<double>(config_.d_model), -0.5);
  return decoder_hidden;
}

at::Tensor T5Model::logits(const at::Tensor& decoder_hidden) const {
  return at::linear(lm_head_input(decoder_hidden), lm_head_);
}

ForwardOutput T5Model::forward(const Seq2SeqBatch& batch, const ForwardOptions& options) {
  Seq2SeqBatch b = prepare(batch);
  if (!b.decoder_input_ids.defined()) throw std::invalid_argument("forward needs labels or decoderInputIds");
  ForwardOutput out;
  ActivationCheckpointScope checkpointing(options.activation_checkpointing);
  out.encoder_hidden = encode(b.input_ids, b.attention_mask, options.train);
  out.decoder_hidden =
      decode(b.decoder_input_ids, b.decoder_attention_mask, out.encoder_hidden, b.attention_mask, options.train);
  at::Tensor logits = this->logits(out.decoder_hidden);
  if (b.labels.defined()) {
    const int64_t V = config_.vocab_size;
    out.loss = at::cross_entropy_loss(logits.reshape({-1, V}).to(at::kFloat), b.labels.reshape({-1}), {},
                                      at::Reduction::Mean, -100);
    out.num_loss_tokens = (b.labels != -100).sum().item<int64_t>();
  }
  if (options.need_logits) out.logits = logits;
  if (!options.need_encoder_hidden) out.encoder_hidden = at::Tensor();
  return out;
}

// ---------------------------------------------------------------------------
// Generation

namespace {

// HF's TopKLogitsWarper then TopPLogitsWarper (min_tokens_to_keep = 1), on float32 scores.
at::Tensor filter_top_k_top_p(at::Tensor scores, int64_t top_k, double top_p) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (top_k > 0) {
    int64_t k = std::min<int64_t>(top_k, scores.size(-1));
    at::Tensor kth = std::get<0>(at::topk(scores, k, -1)).narrow(-1, k - 1, 1);
    scores = scores.masked_fill(scores < kth, neg_inf);
  }
  if (top_p < 1.0) {
    auto [sorted, idx] = at::sort(scores, -1, /*descending=*/false);
    at::Tensor cum = at::softmax(sorted, -1).cumsum(-1);
    at::Tensor remove = cum <= (1.0 - top_p);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);
    at::Tensor to_remove = remove.scatter(-1, idx, remove);
    scores = scores.masked_fill(to_remove, neg_inf);
  }
  return scores;
}

}  // namespace

at::Tensor T5Model::generate(const at::Tensor& input_ids_in, const at::Tensor& attention_mask_in,
                             const GenerateOptions& o) {
  if (o.max_new_tokens < 1) throw std::invalid_argument("maxNewTokens must be >= 1");
  if (o.num_return_sequences < 1) throw std::invalid_argument("numReturnSequences must be >= 1");
  if (o.do_sample && !(o.temperature > 0)) throw std::invalid_argument("temperature must be > 0 when sampling");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("topP must be in (0, 1]");
  if (o.top_k < 0) throw std::invalid_argument("topK must be >= 0");
  if (!o.do_sample && o.num_return_sequences > 1)
    throw std::invalid_argument("numReturnSequences > 1 needs doSample (greedy decoding would repeat one sequence)");
  // The decoding loop reads the base weights directly: an adapted model generates from a merged copy.
  if (lora_) return converted(dtype_)->generate(input_ids_in, attention_mask_in, o);
  Seq2SeqBatch in;
  in.input_ids = input_ids_in;
  in.attention_mask = attention_mask_in;
  Seq2SeqBatch b = prepare(in);

  c10::InferenceMode inference;
  const int64_t n = o.num_return_sequences;
  at::Tensor enc = encode(b.input_ids, b.attention_mask, false);
  at::Tensor mask = b.attention_mask;
  if (n > 1) {
    enc = enc.repeat_interleave(n, 0);
    mask = mask.repeat_interleave(n, 0);
  }
  const int64_t B = enc.size(0), S = enc.size(1), H = config_.num_heads, dk = config_.d_kv, T = o.max_new_tokens;
  at::Tensor cross_bias = padding_bias(mask);  // [B,1,1,S]
  // Cross-attention K/V once per sequence; self-attention K/V appended per step.
  const size_t L = decoder_.size();
  std::vector<at::Tensor> cross_k(L), cross_v(L);
  auto kv_opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (size_t l = 0; l < L; ++l) {
    auto kv = at::linear(enc, at::cat({decoder_[l].cross_attn.k, decoder_[l].cross_attn.v}, 0)).view({B, S, 2, H, dk});
    cross_k[l] = kv.select(2, 0).transpose(1, 2).contiguous();
    cross_v[l] = kv.select(2, 1).transpose(1, 2).contiguous();
  }
  // The self-attention cache [B, H, capacity, d_kv] per layer grows with the steps actually taken
  // (doubling), not with maxNewTokens up front: a generation that stops at EOS never pays for the rest.
  generate::SlotKvCache self_kv(static_cast<int64_t>(L), B, H, dk, kv_opts);
  // Fused projection weights, concatenated once for the whole generation.
  std::vector<at::Tensor> self_qkv(L), ff_wi(L);
  for (size_t l = 0; l < L; ++l) {
    const auto& blk = decoder_[l];
    self_qkv[l] = at::cat({blk.self_attn.q, blk.self_attn.k, blk.self_attn.v}, 0);
    if (config_.is_gated_act) ff_wi[l] = at::cat({blk.ff.wi_0, blk.ff.wi_1}, 0);
  }

  c10::optional<at::Generator> gen;
  if (o.do_sample && o.seed) gen = make_generator(device_, *o.seed);
  auto lopts = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor eos = at::tensor(config_.eos_token_ids, at::TensorOptions().dtype(at::kLong)).to(device_);
  at::Tensor tokens = at::full({B, 1}, config_.decoder_start_token_id, lopts);
  at::Tensor finished = at::zeros({B}, lopts.dtype(at::kBool));
  std::vector<at::Tensor> steps{tokens};

  auto heads = [&](const at::Tensor& x, const at::Tensor& w) {
    return at::linear(x, w).view({B, 1, H, dk}).transpose(1, 2);
  };
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor x = at::embedding(shared_, tokens);  // [B,1,D]
    // Step t's causal relative bias over keys 0..t only ([1, heads, 1, t + 1]): the same values as
    // row t of the full T x T table, without the T^2 memory for steps never taken.
    at::Tensor bias_t = position_bias(decoder_[0].self_attn.relative_attention_bias, 1, t + 1, false, t);
    self_kv.reserve(t + 1, T);
    for (size_t l = 0; l < L; ++l) {
      const auto& blk = decoder_[l];
      at::Tensor h = rms_norm(x, blk.self_norm);
      auto qkv = at::linear(h, self_qkv[l]).view({B, 1, 3, H, dk});
      at::Tensor q = qkv.select(2, 0).transpose(1, 2);
      self_kv.k(l).narrow(2, t, 1).copy_(qkv.select(2, 1).transpose(1, 2));
      self_kv.v(l).narrow(2, t, 1).copy_(qkv.select(2, 2).transpose(1, 2));
      at::Tensor K = self_kv.k(l).narrow(2, 0, t + 1), Vv = self_kv.v(l).narrow(2, 0, t + 1);
      at::Tensor scores = at::matmul(q, K.transpose(-1, -2)) + bias_t;
      at::Tensor w = at::softmax(scores.to(at::kFloat), -1).to(dtype_);
      at::Tensor a = at::linear(at::matmul(w, Vv).transpose(1, 2).reshape({B, 1, H * dk}), blk.self_attn.o);
      x = x + a;
      h = rms_norm(x, blk.cross_norm);
      q = heads(h, blk.cross_attn.q);
      scores = at::matmul(q, cross_k[l].transpose(-1, -2)) + cross_bias;
      w = at::softmax(scores.to(at::kFloat), -1).to(dtype_);
      a = at::linear(at::matmul(w, cross_v[l]).transpose(1, 2).reshape({B, 1, H * dk}), blk.cross_attn.o);
      x = x + a;
      x = x + feed_forward(rms_norm(x, blk.ff_norm), blk.ff, false, ff_wi[l]);
    }
    at::Tensor logits = this->logits(rms_norm(x, decoder_final_norm_)).select(1, 0).to(at::kFloat);  // [B,V]
    at::Tensor next;
    if (o.do_sample) {
      at::Tensor scores = filter_top_k_top_p(logits / o.temperature, o.top_k, o.top_p);
      next = at::multinomial(at::softmax(scores, -1), 1, false, gen).squeeze(1);
    } else {
      next = logits.argmax(-1);
    }
    next = at::where(finished, at::full_like(next, config_.pad_token_id), next);
    tokens = next.unsqueeze(1);
    steps.push_back(tokens);
    finished = finished.logical_or(at::isin(next, eos));
    if (finished.all().item<bool>()) break;
  }
  return at::cat(steps, 1);
}

}  // namespace mentor_kd::t5
