#include "causal/parameters.h"

#include <stdexcept>

namespace mentor_kd::causal {
namespace {

bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

std::vector<std::string> expected_parameter_names(const CausalConfig& c) {
  std::vector<std::string> out{"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = layer_prefix(i);
    for (const char* m : {"q_proj", "k_proj", "v_proj"}) {
      out.push_back(p + "self_attn." + m + ".weight");
      if (c.qkv_bias) out.push_back(p + "self_attn." + m + ".bias");
    }
    out.push_back(p + "self_attn.o_proj.weight");
    if (c.o_bias) out.push_back(p + "self_attn.o_proj.bias");
    for (const char* m : {"gate_proj", "up_proj", "down_proj"}) out.push_back(p + "mlp." + m + ".weight");
    out.push_back(p + "input_layernorm.weight");
    out.push_back(p + "post_attention_layernorm.weight");
  }
  out.push_back("model.norm.weight");
  if (!c.tie_word_embeddings) out.push_back("lm_head.weight");
  return out;
}

std::vector<int64_t> expected_shape(const std::string& name, const CausalConfig& c) {
  const int64_t D = c.hidden_size, KV = c.kv_dim(), I = c.intermediate_size, V = c.vocab_size;
  if (name == "model.embed_tokens.weight" || name == "lm_head.weight") return {V, D};
  if (ends_with(name, "layernorm.weight") || name == "model.norm.weight") return {D};
  if (ends_with(name, "q_proj.weight") || ends_with(name, "o_proj.weight")) return {D, D};
  if (ends_with(name, "q_proj.bias") || ends_with(name, "o_proj.bias")) return {D};
  if (ends_with(name, "k_proj.weight") || ends_with(name, "v_proj.weight")) return {KV, D};
  if (ends_with(name, "k_proj.bias") || ends_with(name, "v_proj.bias")) return {KV};
  if (ends_with(name, "gate_proj.weight") || ends_with(name, "up_proj.weight")) return {I, D};
  if (ends_with(name, "down_proj.weight")) return {D, I};
  throw std::logic_error("no shape rule for " + name);
}

std::string shape_fields(const std::string& name, const CausalConfig& c) {
  auto f = [](const char* k, int64_t v) { return std::string(k) + " = " + std::to_string(v); };
  if (name == "model.embed_tokens.weight" || name == "lm_head.weight")
    return f("vocab_size", c.vocab_size) + ", " + f("hidden_size", c.hidden_size);
  if (ends_with(name, "k_proj.weight") || ends_with(name, "v_proj.weight") || ends_with(name, "k_proj.bias") ||
      ends_with(name, "v_proj.bias"))
    return f("num_key_value_heads", c.num_key_value_heads) +
           ", head_dim = hidden_size / num_attention_heads = " + std::to_string(c.head_dim()) + ", " +
           f("hidden_size", c.hidden_size);
  if (ends_with(name, "gate_proj.weight") || ends_with(name, "up_proj.weight") || ends_with(name, "down_proj.weight"))
    return f("intermediate_size", c.intermediate_size) + ", " + f("hidden_size", c.hidden_size);
  return f("hidden_size", c.hidden_size);
}

bool is_ignorable_extra(const std::string& name, const CausalConfig& c) {
  if (name.rfind("model.layers.", 0) == 0 && ends_with(name, ".self_attn.rotary_emb.inv_freq")) return true;
  return c.tie_word_embeddings && name == "lm_head.weight";
}

void collect_layer_index(const std::string& name, std::set<int64_t>& out) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && j - i < 18 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return;
  out.insert(std::stoll(name.substr(i, j - i)));
}

}  // namespace mentor_kd::causal
