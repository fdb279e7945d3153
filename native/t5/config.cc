#include "t5/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace mentor_kd::t5 {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw std::runtime_error(source + ": " + msg);
}

int64_t get_int(const json& j, const char* key, int64_t fallback, const std::string& source, int64_t min_value) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (!v.is_number_integer()) fail(source, std::string("field '") + key + "' must be an integer");
  int64_t x = v.get<int64_t>();
  if (x < min_value) fail(source, std::string("field '") + key + "' must be >= " + std::to_string(min_value) + ", got " + std::to_string(x));
  return x;
}

double get_double(const json& j, const char* key, double fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail(source, std::string("field '") + key + "' must be a number");
  return j[key].get<double>();
}

Activation parse_activation(const std::string& name, const std::string& source) {
  if (name == "relu") return Activation::Relu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluNew;
  if (name == "gelu") return Activation::Gelu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  fail(source, "activation '" + name + "' is not supported (relu, gelu, gelu_new, silu)");
}

}  // namespace

T5Config parse_t5_config(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(source, "must be a JSON object");
  if (j.contains("model_type") && j["model_type"].is_string()) {
    std::string mt = j["model_type"].get<std::string>();
    if (mt != "t5") fail(source, "model_type is '" + mt + "', expected 't5' (T5 / FlanT5)");
  }
  T5Config c;
  c.raw_json = text;
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size, source, 1);
  c.d_model = get_int(j, "d_model", c.d_model, source, 1);
  c.d_kv = get_int(j, "d_kv", c.d_kv, source, 1);
  c.d_ff = get_int(j, "d_ff", c.d_ff, source, 1);
  c.num_layers = get_int(j, "num_layers", c.num_layers, source, 1);
  c.num_decoder_layers = get_int(j, "num_decoder_layers", c.num_layers, source, 1);
  c.num_heads = get_int(j, "num_heads", c.num_heads, source, 1);
  c.relative_attention_num_buckets = get_int(j, "relative_attention_num_buckets", c.relative_attention_num_buckets, source, 2);
  c.relative_attention_max_distance = get_int(j, "relative_attention_max_distance", c.relative_attention_max_distance, source, 1);
  c.dropout_rate = get_double(j, "dropout_rate", c.dropout_rate, source);
  if (c.dropout_rate < 0 || c.dropout_rate >= 1) fail(source, "field 'dropout_rate' must be in [0, 1)");
  c.layer_norm_epsilon = get_double(j, "layer_norm_epsilon", c.layer_norm_epsilon, source);
  if (!(c.layer_norm_epsilon > 0)) fail(source, "field 'layer_norm_epsilon' must be > 0");
  c.initializer_factor = get_double(j, "initializer_factor", c.initializer_factor, source);
  if (j.contains("feed_forward_proj")) {
    if (!j["feed_forward_proj"].is_string()) fail(source, "field 'feed_forward_proj' must be a string");
    c.feed_forward_proj = j["feed_forward_proj"].get<std::string>();
  }
  // HF: "gated-gelu" -> gated, act "gelu"; "gated-gelu" is special-cased to gelu_new.
  std::string act = c.feed_forward_proj;
  auto dash = act.find('-');
  if (dash != std::string::npos) {
    if (act.substr(0, dash) != "gated" || act.find('-', dash + 1) != std::string::npos)
      fail(source, "field 'feed_forward_proj' = '" + c.feed_forward_proj + "' is not '{ACT}' or 'gated-{ACT}'");
    c.is_gated_act = true;
    act = act.substr(dash + 1);
  }
  if (c.feed_forward_proj == "gated-gelu") act = "gelu_new";
  c.act = parse_activation(act, source);
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) fail(source, "field 'tie_word_embeddings' must be a boolean");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  c.pad_token_id = get_int(j, "pad_token_id", c.pad_token_id, source, 0);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const json& e = j["eos_token_id"];
    c.eos_token_ids.clear();
    if (e.is_number_integer()) {
      c.eos_token_ids.push_back(e.get<int64_t>());
    } else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) fail(source, "field 'eos_token_id' must be an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      fail(source, "field 'eos_token_id' must be an integer or a list of integers");
    }
  }
  c.decoder_start_token_id = get_int(j, "decoder_start_token_id", c.pad_token_id, source, 0);
  auto check_id = [&](const char* what, int64_t id) {
    if (id < 0 || id >= c.vocab_size)
      fail(source, std::string("field '") + what + "' = " + std::to_string(id) + " is outside the vocabulary (vocab_size " + std::to_string(c.vocab_size) + ")");
  };
  check_id("pad_token_id", c.pad_token_id);
  check_id("decoder_start_token_id", c.decoder_start_token_id);
  for (int64_t e : c.eos_token_ids) check_id("eos_token_id", e);
  // HF divides by log(max_distance / max_exact) with max_exact = num_buckets/2 in the
  // decoder: a max_distance not above it would give inf/NaN buckets.
  if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 2)
    fail(source, "field 'relative_attention_max_distance' must exceed relative_attention_num_buckets/2");
  return c;
}

T5Config read_t5_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open (is this a HF model directory with a config.json?)");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_t5_config(ss.str(), path);
}

std::string t5_config_to_json(const T5Config& c, const std::string& torch_dtype) {
  json j = json::parse(c.raw_json);
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

}  // namespace mentor_kd::t5
