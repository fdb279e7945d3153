// T5 / FlanT5 configuration, read from HF's config.json with HF's defaults
// (transformers T5Config): save_pretrained omits keys equal to defaults, so a
// missing key must mean exactly what it means to HF.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mentor_kd::t5 {

enum class Activation { Relu, GeluNew, Gelu, Silu };

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_decoder_layers = 6;
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  double initializer_factor = 1.0;
  std::string feed_forward_proj = "relu";
  bool is_gated_act = false;
  Activation act = Activation::Relu;
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 0;
  std::vector<int64_t> eos_token_ids{1};
  int64_t decoder_start_token_id = 0;

  // The config.json text as read, so save() writes back every key HF wrote.
  std::string raw_json;

  int64_t inner_dim() const { return num_heads * d_kv; }
};

// How big a model this config describes: the parameter count (elements) and the number of
// parameter tensors, computed with overflow checks and without building anything.
struct T5Size {
  int64_t parameters = 0;
  int64_t tensors = 0;
};
// Throws a std::runtime_error naming `source` and the fields whose product overflows int64.
T5Size t5_size(const T5Config& c, const std::string& source);

// Parses config.json text; `source` names the file in errors.
T5Config parse_t5_config(const std::string& text, const std::string& source);
// Reads config.json (a regular file only: a FIFO or device is refused, never waited on).
T5Config read_t5_config(const std::string& path);
// The config as JSON text for save(): the original keys, with torch_dtype updated.
std::string t5_config_to_json(const T5Config& c, const std::string& torch_dtype);

}  // namespace mentor_kd::t5
