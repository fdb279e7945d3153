#include "causal/config.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "io/config_fields.h"
#include "io/text_file.h"

namespace mentor_kd::causal {
namespace {

using json = nlohmann::json;

// eos_token_id: an integer or a list of integers (Llama 3 lists several).
std::vector<int64_t> get_ids(const json& j, const char* key, std::vector<int64_t> fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& e = j[key];
  std::vector<int64_t> out;
  if (e.is_number_integer()) {
    out.push_back(e.get<int64_t>());
  } else if (e.is_array() && !e.empty()) {
    for (const auto& x : e) {
      if (!x.is_number_integer())
        io::config_fail(source, std::string("field '") + key + "' must be an integer or a list of integers");
      out.push_back(x.get<int64_t>());
    }
  } else {
    io::config_fail(source, std::string("field '") + key + "' must be an integer or a non-empty list of integers");
  }
  return out;
}

void parse_rope_scaling(const json& j, CausalConfig& c, const std::string& source) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const json& r = j["rope_scaling"];
  if (!r.is_object()) io::config_fail(source, "field 'rope_scaling' must be null or an object {type, factor}");
  // HF 4.33 writes "type"; later versions write "rope_type" (and keep "type" as an alias).
  const char* type_key = r.contains("rope_type") ? "rope_type" : "type";
  if (!r.contains(type_key) || !r[type_key].is_string())
    io::config_fail(source, "field 'rope_scaling' needs a string 'type' (or 'rope_type')");
  const std::string type = r[type_key].get<std::string>();
  if (type == "default") return;
  if (type == "linear") {
    c.rope_scaling = RopeScaling::Linear;
  } else if (type == "dynamic") {
    c.rope_scaling = RopeScaling::Dynamic;
  } else {
    io::config_fail(source, "field 'rope_scaling." + std::string(type_key) + "' = '" + type +
                                "' is not supported (linear, dynamic; yarn, llama3, longrope and others are refused)");
  }
  if (!r.contains("factor") || !r["factor"].is_number())
    io::config_fail(source, "field 'rope_scaling.factor' must be a number");
  c.rope_scaling_factor = r["factor"].get<double>();
  // HF's _rope_scaling_validation: a float > 1.
  if (!(c.rope_scaling_factor > 1.0)) io::config_fail(source, "field 'rope_scaling.factor' must be > 1");
}

}  // namespace

CausalSize causal_size(const CausalConfig& c, const std::string& source) {
  auto mul = [&](int64_t a, int64_t b, const std::string& what) { return io::config_checked_mul(a, b, source, what); };
  auto add = [&](int64_t a, int64_t b, const std::string& what) { return io::config_checked_add(a, b, source, what); };
  const int64_t D = c.hidden_size, KV = c.kv_dim(), I = c.intermediate_size;
  const std::string per_layer = "the parameters of one layer (hidden_size, num_key_value_heads, intermediate_size)";
  const int64_t emb = mul(c.vocab_size, D, "vocab_size * hidden_size");
  int64_t layer = mul(2, mul(D, D, "hidden_size * hidden_size"), per_layer);                          // q, o
  layer = add(layer, mul(2, mul(KV, D, "kv heads * head_dim * hidden_size"), per_layer), per_layer);  // k, v
  layer = add(layer, mul(3, mul(I, D, "intermediate_size * hidden_size"), per_layer), per_layer);     // mlp
  layer = add(layer, mul(2, D, per_layer), per_layer);                                                // norms
  if (c.qkv_bias) layer = add(layer, add(D, mul(2, KV, per_layer), per_layer), per_layer);
  if (c.o_bias) layer = add(layer, D, per_layer);
  const std::string total = "the parameter count (num_hidden_layers, vocab_size, hidden_size, ...)";
  int64_t n = add(emb, mul(c.num_hidden_layers, layer, "num_hidden_layers * per-layer parameters"), total);
  n = add(n, D, total);
  if (!c.tie_word_embeddings) n = add(n, emb, total);
  CausalSize out;
  out.parameters = n;
  const int64_t per_layer_tensors = 9 + (c.qkv_bias ? 3 : 0) + (c.o_bias ? 1 : 0);
  out.tensors = add(2 + (c.tie_word_embeddings ? 0 : 1),
                    mul(c.num_hidden_layers, per_layer_tensors, "num_hidden_layers"), "num_hidden_layers");
  return out;
}

std::string config_model_type(const std::string& text, const std::string& source) {
  json j = io::parse_config_object(text, source);
  if (!j.contains("model_type") || j["model_type"].is_null()) return "";
  if (!j["model_type"].is_string()) io::config_fail(source, "field 'model_type' must be a string");
  return j["model_type"].get<std::string>();
}

CausalConfig parse_causal_config(const std::string& text, const std::string& source) {
  json j = io::parse_config_object(text, source);
  CausalConfig c;
  c.raw_json = text;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    io::config_fail(source, "field 'model_type' is missing (a decoder-only model needs 'llama' or 'qwen2')");
  c.model_type = j["model_type"].get<std::string>();
  if (c.model_type == "llama") {
    c.family = Family::Llama;
  } else if (c.model_type == "qwen2") {
    // Qwen2Config's defaults where they differ from LlamaConfig's.
    c.family = Family::Qwen2;
    c.vocab_size = 151936;
    c.intermediate_size = 22016;
    c.max_position_embeddings = 32768;
    c.bos_token_id = -1;
    c.eos_token_ids = {};
  } else {
    io::config_fail(source, "field 'model_type' = '" + c.model_type +
                                "' is not a supported decoder-only family (llama, qwen2; t5 loads as a T5Model)");
  }
  c.vocab_size = io::config_int(j, "vocab_size", c.vocab_size, source, 1);
  c.hidden_size = io::config_int(j, "hidden_size", c.hidden_size, source, 1);
  c.intermediate_size = io::config_int(j, "intermediate_size", c.intermediate_size, source, 1);
  c.num_hidden_layers = io::config_int(j, "num_hidden_layers", c.num_hidden_layers, source, 1);
  c.num_attention_heads = io::config_int(j, "num_attention_heads", c.num_attention_heads, source, 1);
  c.num_key_value_heads =
      io::config_int(j, "num_key_value_heads", c.family == Family::Llama ? c.num_attention_heads : 32, source, 1);
  c.max_position_embeddings = io::config_int(j, "max_position_embeddings", c.max_position_embeddings, source, 1);
  c.rms_norm_eps = io::config_double(j, "rms_norm_eps", c.rms_norm_eps, source);
  if (!(c.rms_norm_eps > 0)) io::config_fail(source, "field 'rms_norm_eps' must be > 0");
  c.initializer_range = io::config_double(j, "initializer_range", c.initializer_range, source);
  if (!(c.initializer_range >= 0)) io::config_fail(source, "field 'initializer_range' must be >= 0");
  c.rope_theta = io::config_double(j, "rope_theta", c.rope_theta, source);
  if (!(c.rope_theta > 1)) io::config_fail(source, "field 'rope_theta' must be > 1");
  parse_rope_scaling(j, c, source);
  c.tie_word_embeddings = io::config_bool(j, "tie_word_embeddings", false, source);
  if (c.family == Family::Llama) {
    c.qkv_bias = c.o_bias = io::config_bool(j, "attention_bias", false, source);
  } else {
    c.qkv_bias = true;
    if (io::config_bool(j, "use_sliding_window", false, source))
      io::config_fail(source, "field 'use_sliding_window' = true is not supported (full attention only)");
  }
  if (j.contains("hidden_act")) {
    if (!j["hidden_act"].is_string()) io::config_fail(source, "field 'hidden_act' must be a string");
    const std::string act = j["hidden_act"].get<std::string>();
    if (act != "silu" && act != "swish")
      io::config_fail(source, "field 'hidden_act' = '" + act + "' is not supported (silu)");
  }
  if (io::config_double(j, "attention_dropout", 0.0, source) != 0.0)
    io::config_fail(source, "field 'attention_dropout' must be 0 (attention dropout is not implemented)");
  if (c.hidden_size % c.num_attention_heads != 0)
    io::config_fail(source,
                    "field 'hidden_size' = " + std::to_string(c.hidden_size) +
                        " is not divisible by 'num_attention_heads' = " + std::to_string(c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    io::config_fail(source,
                    "field 'num_attention_heads' = " + std::to_string(c.num_attention_heads) +
                        " is not divisible by 'num_key_value_heads' = " + std::to_string(c.num_key_value_heads));
  if (c.head_dim() % 2 != 0)
    io::config_fail(source, "hidden_size / num_attention_heads = " + std::to_string(c.head_dim()) +
                                " must be even (RoPE rotates pairs)");
  if (j.contains("head_dim") && !j["head_dim"].is_null() &&
      io::config_int(j, "head_dim", c.head_dim(), source, 1) != c.head_dim())
    io::config_fail(source,
                    "field 'head_dim' must equal hidden_size / num_attention_heads = " + std::to_string(c.head_dim()));
  c.bos_token_id = io::config_int(j, "bos_token_id", c.bos_token_id, source, -1);
  c.eos_token_ids = get_ids(j, "eos_token_id", c.eos_token_ids, source);
  c.pad_token_id = io::config_int(j, "pad_token_id", c.pad_token_id, source, -1);
  auto check_id = [&](const char* what, int64_t id) {
    if (id < -1 || id >= c.vocab_size)
      io::config_fail(source, std::string("field '") + what + "' = " + std::to_string(id) +
                                  " is outside the vocabulary (vocab_size " + std::to_string(c.vocab_size) + ")");
  };
  check_id("bos_token_id", c.bos_token_id);
  check_id("pad_token_id", c.pad_token_id);
  for (int64_t e : c.eos_token_ids) check_id("eos_token_id", e);
  (void)causal_size(c, source);  // every size the config implies fits in int64 (names the fields otherwise)
  return c;
}

CausalConfig read_causal_config(const std::string& path) {
  std::string text;
  try {
    text = io::read_text_file(path);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (is this a HF model directory with a config.json?)");
  }
  return parse_causal_config(text, path);
}

void apply_generation_config(CausalConfig& c, const std::string& text, const std::string& source) {
  json j = io::parse_config_object(text, source);
  c.eos_token_ids = get_ids(j, "eos_token_id", c.eos_token_ids, source);
  c.pad_token_id = io::config_int(j, "pad_token_id", c.pad_token_id, source, -1);
  c.bos_token_id = io::config_int(j, "bos_token_id", c.bos_token_id, source, -1);
  auto check_id = [&](const char* what, int64_t id) {
    if (id < -1 || id >= c.vocab_size)
      io::config_fail(source, std::string("field '") + what + "' = " + std::to_string(id) +
                                  " is outside the vocabulary (vocab_size " + std::to_string(c.vocab_size) + ")");
  };
  check_id("pad_token_id", c.pad_token_id);
  check_id("bos_token_id", c.bos_token_id);
  for (int64_t e : c.eos_token_ids) check_id("eos_token_id", e);
}

std::string causal_config_to_json(const CausalConfig& c, const std::string& torch_dtype) {
  json j = json::parse(c.raw_json);
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

}  // namespace mentor_kd::causal
