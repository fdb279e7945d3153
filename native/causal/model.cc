#include "causal/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "causal/parameters.h"
#include "causal/rotary_embedding.h"
#include "generate/sampler.h"
#include "io/text_file.h"
#include "io/weight_files.h"
#include "t5/rms_norm.h"

namespace mentor_kd::causal {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

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
  std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(n) / 1e6);
  return std::to_string(n) + " bytes (" + buf + ")";
}

// Refuses a model whose parameters would not fit the budget, before anything is allocated.
void check_memory_budget(const CausalConfig& c, at::Device device, at::ScalarType dtype, const LoadOptions& options,
                         const std::string& source) {
  const CausalSize size = causal_size(c, source);
  uint64_t data = 0, overhead = 0, need = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(size.parameters), c10::elementSize(dtype), &data) ||
      __builtin_mul_overflow(static_cast<uint64_t>(size.tensors), kPerTensorOverheadBytes, &overhead) ||
      __builtin_add_overflow(data, overhead, &need))
    throw std::runtime_error(source +
                             ": the parameter bytes overflow a 64-bit size (vocab_size, hidden_size, "
                             "intermediate_size, num_hidden_layers)");
  std::optional<uint64_t> budget = options.memory_budget_bytes;
  std::string what = "the memoryBudgetBytes option";
  if (!budget && device.is_cpu()) {
    budget = t5::available_memory_bytes();
    what = "the memory available to this process (set memoryBudgetBytes to change the budget)";
  }
  if (budget && need > *budget)
    throw std::runtime_error(
        source + ": the model's parameters need about " + human_bytes(need) + " as " + torch_dtype_name(dtype) +
        ", more than " + human_bytes(*budget) + " allowed by " + what + " (vocab_size " + std::to_string(c.vocab_size) +
        ", hidden_size " + std::to_string(c.hidden_size) + ", intermediate_size " +
        std::to_string(c.intermediate_size) + ", num_hidden_layers " + std::to_string(c.num_hidden_layers) + ")");
}

}  // namespace

CausalLM::CausalLM(CausalConfig config, at::Device device, at::ScalarType dtype)
    : config_(std::move(config)), device_(device), dtype_(dtype) {}

at::Tensor& CausalLM::param(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw std::invalid_argument("no parameter named '" + name + "'");
  return params_[it->second].second;
}

at::Tensor CausalLM::parameter(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw std::invalid_argument("no parameter named '" + name + "'");
  return params_[it->second].second;
}

int64_t CausalLM::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

void CausalLM::zero_grad() {
  for (auto& [name, t] : params_)
    if (t.grad().defined()) t.mutable_grad() = at::Tensor();
}

void CausalLM::set_parameter(const std::string& name, const at::Tensor& value) {
  at::Tensor& p = param(name);
  if (value.sizes() != p.sizes())
    throw std::invalid_argument("parameter '" + name + "' has shape [" + c10::Join(", ", p.sizes()) + "], got [" +
                                c10::Join(", ", value.sizes()) + "]");
  at::NoGradGuard no_grad;
  p.copy_(value);
}

void CausalLM::allocate() {
  auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (const auto& name : expected_parameter_names(config_)) {
    index_[name] = params_.size();
    params_.emplace_back(name, at::empty(expected_shape(name, config_), opts));
  }
  bind_layers();
}

void CausalLM::bind_layers() {
  embed_ = param("model.embed_tokens.weight");
  lm_head_ = config_.tie_word_embeddings ? embed_ : param("lm_head.weight");
  final_norm_ = param("model.norm.weight");
  layers_.clear();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string p = layer_prefix(i);
    LayerWeights l;
    l.input_norm = param(p + "input_layernorm.weight");
    l.post_attention_norm = param(p + "post_attention_layernorm.weight");
    l.attn.q = param(p + "self_attn.q_proj.weight");
    l.attn.k = param(p + "self_attn.k_proj.weight");
    l.attn.v = param(p + "self_attn.v_proj.weight");
    l.attn.o = param(p + "self_attn.o_proj.weight");
    if (config_.qkv_bias) {
      l.attn.q_bias = param(p + "self_attn.q_proj.bias");
      l.attn.k_bias = param(p + "self_attn.k_proj.bias");
      l.attn.v_bias = param(p + "self_attn.v_proj.bias");
    }
    if (config_.o_bias) l.attn.o_bias = param(p + "self_attn.o_proj.bias");
    l.mlp.gate = param(p + "mlp.gate_proj.weight");
    l.mlp.up = param(p + "mlp.up_proj.weight");
    l.mlp.down = param(p + "mlp.down_proj.weight");
    layers_.push_back(std::move(l));
  }
}

void CausalLM::init_weights(uint64_t seed) {
  // Drawn in float32 on the CPU so a seed gives the same model on every device and dtype.
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard no_grad;
  for (auto& [name, t] : params_) {
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      t.fill_(1.0);
    } else if (is_bias) {
      t.zero_();
    } else {
      at::Tensor cpu = at::empty(t.sizes(), at::TensorOptions().dtype(at::kFloat));
      cpu.normal_(0.0, config_.initializer_range, gen);
      if (name == "model.embed_tokens.weight" && config_.pad_token_id >= 0) cpu[config_.pad_token_id].zero_();
      t.copy_(cpu);
    }
  }
}

std::shared_ptr<CausalLM> CausalLM::from_config(const CausalConfig& config, at::Device device, at::ScalarType dtype,
                                                uint64_t seed, const LoadOptions& options) {
  check_memory_budget(config, device, dtype, options, "config");
  std::shared_ptr<CausalLM> m(new CausalLM(config, device, dtype));
  m->allocate();
  m->init_weights(seed);
  for (auto& [name, t] : m->params_) t.requires_grad_(true);
  json gen = json::object();
  if (config.bos_token_id >= 0) gen["bos_token_id"] = config.bos_token_id;
  if (!config.eos_token_ids.empty())
    gen["eos_token_id"] = config.eos_token_ids.size() == 1 ? json(config.eos_token_ids[0]) : json(config.eos_token_ids);
  if (config.pad_token_id >= 0) gen["pad_token_id"] = config.pad_token_id;
  m->generation_config_json = gen.dump(2) + "\n";
  return m;
}

std::shared_ptr<CausalLM> CausalLM::load(const std::string& dir, at::Device device, at::ScalarType dtype,
                                         const LoadOptions& options) {
  fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": not a directory (expected a HF model directory)");
  const std::string config_path = (root / "config.json").string();
  CausalConfig config = read_causal_config(config_path);
  std::string generation_json;
  if (fs::exists(root / "generation_config.json")) {
    const fs::path gpath = root / "generation_config.json";
    generation_json = io::read_text_file(gpath);
    apply_generation_config(config, generation_json, gpath.string());
  }

  // Which files hold which tensors (one file, or shards listed by the index).
  io::WeightFiles weights(root);

  // Every header first, every size config.json implies checked against them, before a byte of
  // the model is allocated: a config claiming a million layers over a small file is refused here.
  std::vector<std::unique_ptr<io::SafetensorsFile>> opened;
  std::set<int64_t> layers_present;
  for (const auto& file : weights.files()) {
    opened.push_back(std::make_unique<io::SafetensorsFile>(file));
    for (const auto& e : opened.back()->header().tensors) {
      weights.found(file, e.name);
      collect_layer_index(e.name, layers_present);
    }
  }
  if (static_cast<uint64_t>(config.num_hidden_layers) > layers_present.size())
    throw std::runtime_error(config_path + ": field 'num_hidden_layers' = " + std::to_string(config.num_hidden_layers) +
                             " but the checkpoint holds " + std::to_string(layers_present.size()) +
                             " layers (config.json and weights disagree)");
  const std::vector<std::string> names = expected_parameter_names(config);
  const std::set<std::string> expected(names.begin(), names.end());
  std::set<std::string> present;
  for (const auto& st : opened) {
    for (const auto& e : st->header().tensors) {
      const std::string& file = st->path();
      std::string target = e.name;
      if (!expected.count(e.name)) {
        if (!is_ignorable_extra(e.name, config))
          throw std::runtime_error(file + ": unexpected tensor '" + e.name + "' (not a parameter of a " +
                                   config.model_type + " model with this config.json)");
        if (e.name != "lm_head.weight") continue;  // rotary inv_freq: recomputed, as HF does
        target = "model.embed_tokens.weight";      // a tied head's copy is checked like the embedding
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
  weights.check_all_found();
  check_memory_budget(config, device, dtype, options, config_path);

  std::shared_ptr<CausalLM> m(new CausalLM(config, device, dtype));
  m->source_dir = dir;
  m->generation_config_json = generation_json;
  m->allocate();
  std::set<std::string> loaded;
  at::NoGradGuard no_grad;
  for (const auto& st : opened) {
    for (const auto& e : st->header().tensors) {
      std::string target = e.name;
      const bool known = m->index_.count(e.name) > 0;
      if (!known) {
        if (e.name != "lm_head.weight") continue;
        target = "model.embed_tokens.weight";
      }
      if (!known && loaded.count(target)) continue;  // the embedding itself wins over a tied copy
      at::Tensor& p = m->param(target);
      p.copy_(st->tensor(e));
      if (!options.allow_non_finite) {
        const int64_t bad = p.numel() - at::isfinite(p).sum().item<int64_t>();
        if (bad > 0)
          throw std::runtime_error(st->path() + ": tensor '" + e.name + "' holds " + std::to_string(bad) +
                                   " non-finite value(s) (NaN or Inf, or beyond the range of " +
                                   torch_dtype_name(dtype) + "); load with allowNonFinite: true to accept them");
      }
      loaded.insert(target);
    }
  }
  for (auto& [name, t] : m->params_) t.requires_grad_(true);
  return m;
}

void CausalLM::save(const std::string& dir, int64_t max_shard_bytes) const {
  const fs::path root(dir);
  io::write_weight_files(root, params_, max_shard_bytes);
  io::write_text_file_atomic(root / "config.json", causal_config_to_json(config_, torch_dtype_name(dtype_)));
  if (!generation_config_json.empty())
    io::write_text_file_atomic(root / "generation_config.json", generation_config_json);
}

// ---------------------------------------------------------------------------
// Forward pass

CausalBatch CausalLM::prepare(const CausalBatch& in) const {
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
      const int64_t lo = valid.min().item<int64_t>(), hi = valid.max().item<int64_t>();
      if (lo < 0)
        throw std::invalid_argument(std::string(what) + " contains id " + std::to_string(lo) + " < 0" +
                                    (allow_ignore ? " (only -100 may be negative)" : ""));
      if (hi >= V)
        throw std::invalid_argument(std::string(what) + " contains id " + std::to_string(hi) + " >= vocab_size " +
                                    std::to_string(V));
    }
    return x.to(device_);
  };
  auto same_shape = [](const at::Tensor& t, const char* what, const at::Tensor& like) {
    if (t.defined() && t.sizes() != like.sizes())
      throw std::invalid_argument(std::string(what) + " has shape [" + c10::Join(", ", t.sizes()) +
                                  "] but inputIds has [" + c10::Join(", ", like.sizes()) + "]");
  };
  CausalBatch b;
  if (!in.input_ids.defined()) throw std::invalid_argument("inputIds is required");
  b.input_ids = ids(in.input_ids, "inputIds", false);
  if (b.input_ids.size(0) == 0 || b.input_ids.size(1) == 0) throw std::invalid_argument("inputIds is empty");
  if (in.attention_mask.defined()) {
    same_shape(in.attention_mask, "attentionMask", b.input_ids);
    // Anything but 0/1 would scale the padding bias into NaN or let padding through.
    at::Tensor bad = (in.attention_mask != 0).logical_and(in.attention_mask != 1);
    if (bad.any().item<bool>()) throw std::invalid_argument("attentionMask holds values other than 0 and 1");
    b.attention_mask = in.attention_mask.to(device_, at::kLong);
  } else {
    b.attention_mask = at::ones_like(b.input_ids);
  }
  same_shape(in.labels, "labels", b.input_ids);
  b.labels = ids(in.labels, "labels", true);
  if (in.position_ids.defined()) {
    same_shape(in.position_ids, "positionIds", b.input_ids);
    if (at::isFloatingType(in.position_ids.scalar_type()))
      throw std::invalid_argument("positionIds must hold integers");
    b.position_ids = in.position_ids.to(device_, at::kLong);
    if (b.position_ids.min().item<int64_t>() < 0)
      throw std::invalid_argument("positionIds contains a negative position");
  }
  return b;
}

double CausalLM::mask_min() const {
  // torch.finfo(dtype).min, as HF's additive attention masks use.
  if (dtype_ == at::kBFloat16) return -3.3895313892515355e38;
  if (dtype_ == at::kHalf) return -65504.0;
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

at::Tensor CausalLM::decoder(const at::Tensor& input_ids, const at::Tensor& position_ids, const at::Tensor& mask_bias,
                             int64_t key_len, std::vector<KvCacheLayer>* caches) {
  at::Tensor x = at::embedding(embed_, input_ids);
  const RotaryTables rope = rotary_tables(config_, position_ids, key_len, dtype_);
  const double eps = config_.rms_norm_eps;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& w = layers_[l];
    x = x + self_attention(config_, t5::rms_norm(x, w.input_norm, eps), w.attn, rope, mask_bias,
                           caches ? &(*caches)[l] : nullptr);
    x = x + swiglu_mlp(t5::rms_norm(x, w.post_attention_norm, eps), w.mlp);
  }
  return t5::rms_norm(x, final_norm_, eps);
}

at::Tensor CausalLM::hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& position_ids) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  // Key j is visible to query i when j <= i and j is not padding: [B, 1, T, T].
  at::Tensor causal = at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(device_)).tril();
  at::Tensor allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(attention_mask.to(at::kBool).view({B, 1, 1, T}));
  at::Tensor bias = at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype_).device(device_))
                        .masked_fill(allowed.logical_not(), mask_min());
  return decoder(input_ids, position_ids, bias, T, nullptr);
}

CausalForwardOutput CausalLM::forward(const CausalBatch& batch, const CausalForwardOptions& options) {
  CausalBatch b = prepare(batch);
  const int64_t B = b.input_ids.size(0), T = b.input_ids.size(1);
  at::Tensor pos =
      b.position_ids.defined()
          ? b.position_ids
          : at::arange(T, at::TensorOptions().dtype(at::kLong).device(device_)).unsqueeze(0).expand({B, T});
  CausalForwardOutput out;
  out.hidden = hidden_states(b.input_ids, b.attention_mask, pos);
  at::Tensor logits = at::linear(out.hidden, lm_head_).to(at::kFloat);
  if (b.labels.defined()) {
    const int64_t V = config_.vocab_size;
    at::Tensor shift_logits = logits.narrow(1, 0, T - 1).reshape({-1, V});
    at::Tensor shift_labels = b.labels.narrow(1, 1, T - 1).reshape({-1});
    out.loss = at::cross_entropy_loss(shift_logits, shift_labels, {}, at::Reduction::Mean, -100);
    out.num_loss_tokens = (shift_labels != -100).sum().item<int64_t>();
  }
  if (options.need_logits) out.logits = logits;
  return out;
}

// ---------------------------------------------------------------------------
// Generation

at::Tensor CausalLM::generate(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                              const CausalGenerateOptions& o) {
  if (o.max_new_tokens < 1) throw std::invalid_argument("maxNewTokens must be >= 1");
  if (o.num_return_sequences < 1) throw std::invalid_argument("numReturnSequences must be >= 1");
  if (o.do_sample && !(o.temperature > 0)) throw std::invalid_argument("temperature must be > 0 when sampling");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("topP must be in (0, 1]");
  if (o.top_k < 0) throw std::invalid_argument("topK must be >= 0");
  if (!o.do_sample && o.num_return_sequences > 1)
    throw std::invalid_argument("numReturnSequences > 1 needs doSample (greedy decoding would repeat one sequence)");
  CausalBatch in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  CausalBatch b = prepare(in);
  if ((b.attention_mask.sum(1) == 0).any().item<bool>())
    throw std::invalid_argument("attentionMask: every prompt needs at least one real (mask 1) token");
  const int64_t prompts = b.input_ids.size(0), n = o.num_return_sequences;
  if (!o.seeds.empty() && static_cast<int64_t>(o.seeds.size()) != prompts)
    throw std::invalid_argument("seeds: " + std::to_string(o.seeds.size()) + " given for " + std::to_string(prompts) +
                                " prompts (one per prompt)");
  // Row r = b * n + j: its seed and sample index for the counter-based draws.
  std::vector<mentor_kd::generate::RowSampling> rows(prompts * n);
  if (o.do_sample) {
    uint64_t shared_seed = 0;
    if (o.seed) {
      shared_seed = *o.seed;
    } else if (o.seeds.empty()) {
      std::random_device rd;
      shared_seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    for (int64_t p = 0; p < prompts; ++p)
      for (int64_t j = 0; j < n; ++j) {
        mentor_kd::generate::RowSampling& r = rows[p * n + j];
        r.do_sample = true;
        r.temperature = o.temperature;
        r.top_k = o.top_k;
        r.top_p = o.top_p;
        r.seed = o.seeds.empty() ? shared_seed : o.seeds[p];
        r.sample = static_cast<uint64_t>(o.seeds.empty() ? p * n + j : j);
      }
  }

  c10::InferenceMode inference;
  if (n > 1) {
    b.input_ids = b.input_ids.repeat_interleave(n, 0);
    b.attention_mask = b.attention_mask.repeat_interleave(n, 0);
  }
  const int64_t B = b.input_ids.size(0), P = b.input_ids.size(1);
  auto lopts = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor mask = b.attention_mask;
  // HF 4.33 prepare_inputs_for_generation: positions cumsum(mask) - 1, padding at 1.
  at::Tensor pos = (mask.cumsum(1) - 1).masked_fill(mask == 0, 1);
  auto bias_for = [&](const at::Tensor& allowed) {
    return at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype_).device(device_))
        .masked_fill(allowed.logical_not(), mask_min());
  };
  at::Tensor causal = at::ones({P, P}, lopts.dtype(at::kBool)).tril();
  at::Tensor bias = bias_for(causal.unsqueeze(0).unsqueeze(0).logical_and(mask.to(at::kBool).view({B, 1, 1, P})));
  std::vector<KvCacheLayer> caches(layers_.size());
  at::Tensor hidden = decoder(b.input_ids, pos, bias, P, &caches).narrow(1, P - 1, 1);

  const int64_t pad =
      config_.pad_token_id >= 0 ? config_.pad_token_id : (config_.eos_token_ids.empty() ? 0 : config_.eos_token_ids[0]);
  at::Tensor eos = at::tensor(config_.eos_token_ids.empty() ? std::vector<int64_t>{-1} : config_.eos_token_ids,
                              at::TensorOptions().dtype(at::kLong))
                       .to(device_);
  at::Tensor finished = at::zeros({B}, lopts.dtype(at::kBool));
  std::vector<at::Tensor> columns{b.input_ids};
  for (int64_t t = 0; t < o.max_new_tokens; ++t) {
    at::Tensor logits = at::linear(hidden.select(1, 0), lm_head_).to(at::kFloat);  // [B, V]
    at::Tensor next;
    if (o.do_sample) {
      // The engine's fused sampler works on host float32 rows; B x V floats per step.
      at::Tensor host = logits.to(at::kCPU).contiguous();
      for (auto& r : rows) r.step = static_cast<uint64_t>(t);
      at::Tensor ids = at::empty({B}, at::TensorOptions().dtype(at::kLong));
      mentor_kd::generate::sample_rows(host, rows, ids.data_ptr<int64_t>());
      next = ids.to(device_);
    } else {
      next = logits.argmax(-1);
    }
    next = at::where(finished, at::full_like(next, pad), next);
    columns.push_back(next.unsqueeze(1));
    finished = finished.logical_or(at::isin(next, eos));
    if (t + 1 == o.max_new_tokens || finished.all().item<bool>()) break;
    // The new token is real for every row (HF extends the mask with ones) and sits one past
    // the row's last real position.
    mask = at::cat({mask, at::ones({B, 1}, lopts)}, 1);
    at::Tensor step_pos = (mask.sum(1, /*keepdim=*/true) - 1);
    at::Tensor step_bias = bias_for(mask.to(at::kBool).view({B, 1, 1, mask.size(1)}));
    hidden = decoder(next.unsqueeze(1), step_pos, step_bias, mask.size(1), &caches);
  }
  return at::cat(columns, 1);
}

at::Tensor CausalLM::prefill(const at::Tensor& ids, std::vector<KvCacheLayer>& caches) {
  const int64_t P = ids.size(0);
  auto lopts = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor input = ids.to(lopts).view({1, P});
  at::Tensor pos = at::arange(P, lopts).view({1, P});
  at::Tensor allowed = at::ones({P, P}, lopts.dtype(at::kBool)).tril().view({1, 1, P, P});
  at::Tensor bias = at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype_).device(device_))
                        .masked_fill(allowed.logical_not(), mask_min());
  caches.assign(layers_.size(), KvCacheLayer{});
  at::Tensor hidden = decoder(input, pos, bias, P, &caches).select(1, P - 1);  // [1, D]
  return at::linear(hidden, lm_head_).to(at::kFloat)[0];
}

}  // namespace mentor_kd::causal
