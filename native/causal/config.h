// Decoder-only (Llama / Qwen2 family) configuration, read from HF's config.json with the
// defaults of HF's LlamaConfig / Qwen2Config for the file's model_type: a missing key means
// what it means to HF.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mentor_kd::causal {

enum class Family { Llama, Qwen2 };

// rope_scaling: none, "linear" (positions divided by factor) or "dynamic" (NTK-aware base
// growth beyond max_position_embeddings). Others (yarn, llama3, longrope, su, ...) are refused.
enum class RopeScaling { None, Linear, Dynamic };

struct CausalConfig {
  Family family = Family::Llama;
  std::string model_type = "llama";
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double initializer_range = 0.02;  // std of the random initialisation (from_config)
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::None;
  double rope_scaling_factor = 1.0;
  bool tie_word_embeddings = false;
  // Llama's attention_bias puts a bias on q, k, v and o; Qwen2 always has q/k/v bias, never o.
  bool qkv_bias = false;
  bool o_bias = false;
  int64_t bos_token_id = 1;
  std::vector<int64_t> eos_token_ids{2};
  int64_t pad_token_id = -1;  // -1: none (generation pads finished rows with the first EOS)

  // The config.json text as read, so save() writes back every key HF wrote.
  std::string raw_json;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim(); }
};

// Parameter elements and tensors this config implies, overflow-checked (throws naming `source`).
struct CausalSize {
  int64_t parameters = 0;
  int64_t tensors = 0;
};
CausalSize causal_size(const CausalConfig& c, const std::string& source);

// The model_type of a config.json text ("" when absent); throws naming `source` on bad JSON.
std::string config_model_type(const std::string& text, const std::string& source);
// Parses config.json text; `source` names the file in errors.
CausalConfig parse_causal_config(const std::string& text, const std::string& source);
// Reads config.json (a regular file only).
CausalConfig read_causal_config(const std::string& path);
// Applies generation_config.json's eos_token_id / pad_token_id / bos_token_id (HF's generate
// reads them there first); `source` names the file in errors.
void apply_generation_config(CausalConfig& c, const std::string& text, const std::string& source);
// The config as JSON text for save(): the original keys, with torch_dtype updated.
std::string causal_config_to_json(const CausalConfig& c, const std::string& torch_dtype);

}  // namespace mentor_kd::causal
