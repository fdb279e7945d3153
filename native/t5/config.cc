#include "t5/config.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "io/config_fields.h"
#include "io/text_file.h"

namespace mentor_kd::t5 {
namespace {

using json = nlohmann::json;

Activation parse_activation(const std::string& name, const std::string& source) {
  if (name == "relu") return Activation::Relu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluNew;
  if (name == "gelu") return Activation::Gelu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  io::config_fail(source, "activation '" + name + "' is not supported (relu, gelu, gelu_new, silu)");
}

}  // namespace

T5Size t5_size(const T5Config& c, const std::string& source) {
  auto mul = [&](int64_t a, int64_t b, const std::string& what) { return io::config_checked_mul(a, b, source, what); };
  auto add = [&](int64_t a, int64_t b, const std::string& what) { return io::config_checked_add(a, b, source, what); };
  const int64_t D = c.d_model;
  const int64_t I = mul(c.num_heads, c.d_kv, "num_heads * d_kv");
  const int64_t emb = mul(c.vocab_size, D, "vocab_size * d_model");
  const int64_t attn = mul(4, mul(I, D, "num_heads * d_kv * d_model"), "4 * num_heads * d_kv * d_model");
  const int64_t ff = mul(c.is_gated_act ? 3 : 2, mul(c.d_ff, D, "d_ff * d_model"), "d_ff * d_model");
  const int64_t bias = mul(c.relative_attention_num_buckets, c.num_heads, "relative_attention_num_buckets * num_heads");
  const std::string per_layer = "the parameters of one layer (d_model, d_kv, num_heads, d_ff)";
  const int64_t enc_layer = add(add(attn, ff, per_layer), mul(2, D, per_layer), per_layer);
  const int64_t dec_layer = add(add(mul(2, attn, per_layer), ff, per_layer), mul(3, D, per_layer), per_layer);
  const std::string total = "the parameter count (num_layers, num_decoder_layers, vocab_size, d_model, ...)";
  int64_t n = emb;
  n = add(n, mul(c.num_layers, enc_layer, "num_layers * per-layer parameters"), total);
  n = add(n, mul(c.num_decoder_layers, dec_layer, "num_decoder_layers * per-layer parameters"), total);
  n = add(n, mul(2, bias, total), total);
  n = add(n, mul(2, D, total), total);
  if (!c.tie_word_embeddings) n = add(n, emb, total);
  T5Size out;
  out.parameters = n;
  // shared, 2 final norms, lm_head; per encoder layer: q k v o, 2 norms, 2 or 3 ff; per decoder
  // layer: 8 attention, 3 norms, 2 or 3 ff; one relative bias per stack.
  const int64_t ff_tensors = c.is_gated_act ? 3 : 2;
  int64_t t = 3 + (c.tie_word_embeddings ? 0 : 1) + 2;
  t = add(t, mul(c.num_layers, 6 + ff_tensors, "num_layers"), "num_layers");
  t = add(t, mul(c.num_decoder_layers, 11 + ff_tensors, "num_decoder_layers"), "num_decoder_layers");
  out.tensors = t;
  return out;
}

T5Config parse_t5_config(const std::string& text, const std::string& source) {
  json j = io::parse_config_object(text, source);
  if (j.contains("model_type") && j["model_type"].is_string()) {
    std::string mt = j["model_type"].get<std::string>();
    if (mt != "t5") io::config_fail(source, "model_type is '" + mt + "', expected 't5' (T5 / FlanT5)");
  }
  T5Config c;
  c.raw_json = text;
  c.vocab_size = io::config_int(j, "vocab_size", c.vocab_size, source, 1);
  c.d_model = io::config_int(j, "d_model", c.d_model, source, 1);
  c.d_kv = io::config_int(j, "d_kv", c.d_kv, source, 1);
  c.d_ff = io::config_int(j, "d_ff", c.d_ff, source, 1);
  c.num_layers = io::config_int(j, "num_layers", c.num_layers, source, 1);
  c.num_decoder_layers = io::config_int(j, "num_decoder_layers", c.num_layers, source, 1);
  c.num_heads = io::config_int(j, "num_heads", c.num_heads, source, 1);
  c.relative_attention_num_buckets =
      io::config_int(j, "relative_attention_num_buckets", c.relative_attention_num_buckets, source, 2);
  c.relative_attention_max_distance =
      io::config_int(j, "relative_attention_max_distance", c.relative_attention_max_distance, source, 1);
  c.dropout_rate = io::config_double(j, "dropout_rate", c.dropout_rate, source);
  if (c.dropout_rate < 0 || c.dropout_rate >= 1) io::config_fail(source, "field 'dropout_rate' must be in [0, 1)");
  c.layer_norm_epsilon = io::config_double(j, "layer_norm_epsilon", c.layer_norm_epsilon, source);
  if (!(c.layer_norm_epsilon > 0)) io::config_fail(source, "field 'layer_norm_epsilon' must be > 0");
  c.initializer_factor = io::config_double(j, "initializer_factor", c.initializer_factor, source);
  if (j.contains("feed_forward_proj")) {
    if (!j["feed_forward_proj"].is_string()) io::config_fail(source, "field 'feed_forward_proj' must be a string");
    c.feed_forward_proj = j["feed_forward_proj"].get<std::string>();
  }
  // HF: "gated-gelu" -> gated, act "gelu"; "gated-gelu" is special-cased to gelu_new.
  std::string act = c.feed_forward_proj;
  auto dash = act.find('-');
  if (dash != std::string::npos) {
    if (act.substr(0, dash) != "gated" || act.find('-', dash + 1) != std::string::npos)
      io::config_fail(source,
                      "field 'feed_forward_proj' = '" + c.feed_forward_proj + "' is not '{ACT}' or 'gated-{ACT}'");
    c.is_gated_act = true;
    act = act.substr(dash + 1);
  }
  if (c.feed_forward_proj == "gated-gelu") act = "gelu_new";
  c.act = parse_activation(act, source);
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean())
      io::config_fail(source, "field 'tie_word_embeddings' must be a boolean");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  c.pad_token_id = io::config_int(j, "pad_token_id", c.pad_token_id, source, 0);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const json& e = j["eos_token_id"];
    c.eos_token_ids.clear();
    if (e.is_number_integer()) {
      c.eos_token_ids.push_back(e.get<int64_t>());
    } else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer())
          io::config_fail(source, "field 'eos_token_id' must be an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      io::config_fail(source, "field 'eos_token_id' must be an integer or a list of integers");
    }
  }
  c.decoder_start_token_id = io::config_int(j, "decoder_start_token_id", c.pad_token_id, source, 0);
  auto check_id = [&](const char* what, int64_t id) {
    if (id < 0 || id >= c.vocab_size)
      io::config_fail(source, std::string("field '") + what + "' = " + std::to_string(id) +
                                  " is outside the vocabulary (vocab_size " + std::to_string(c.vocab_size) + ")");
  };
  check_id("pad_token_id", c.pad_token_id);
  check_id("decoder_start_token_id", c.decoder_start_token_id);
  for (int64_t e : c.eos_token_ids) check_id("eos_token_id", e);
  // HF divides by log(max_distance / max_exact) with max_exact = num_buckets/2 in the
  // decoder: a max_distance not above it would give inf/NaN buckets.
  if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 2)
    io::config_fail(source, "field 'relative_attention_max_distance' must exceed relative_attention_num_buckets/2");
  (void)t5_size(c, source);  // every size the config implies fits in int64 (names the fields otherwise)
  return c;
}

T5Config read_t5_config(const std::string& path) {
  std::string text;
  try {
    text = io::read_text_file(path);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (is this a HF model directory with a config.json?)");
  }
  return parse_t5_config(text, path);
}

std::string t5_config_to_json(const T5Config& c, const std::string& torch_dtype) {
  json j = json::parse(c.raw_json);
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

}  // namespace mentor_kd::t5
