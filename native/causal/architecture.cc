#include "causal/architecture.h"

#include <sstream>

namespace mentor_kd::causal {

namespace {
const char* rope_scaling_name(RopeScaling s) {
  switch (s) {
    case RopeScaling::Linear: return "linear";
    case RopeScaling::Dynamic: return "dynamic";
    default: return "none";
  }
}
}  // namespace

std::string architecture_mismatch(const CausalConfig& ck, const CausalConfig& cur) {
  std::ostringstream os;
  auto cmp = [&](const char* field, auto a, auto b) {
    if (a != b)
      os << (os.tellp() > 0 ? "; " : "") << field << " is " << a << " in the checkpoint but " << b
         << " in the model being trained";
  };
  cmp("model_type", ck.model_type, cur.model_type);
  cmp("vocab_size", ck.vocab_size, cur.vocab_size);
  cmp("hidden_size", ck.hidden_size, cur.hidden_size);
  cmp("intermediate_size", ck.intermediate_size, cur.intermediate_size);
  cmp("num_hidden_layers", ck.num_hidden_layers, cur.num_hidden_layers);
  cmp("num_attention_heads", ck.num_attention_heads, cur.num_attention_heads);
  cmp("num_key_value_heads", ck.num_key_value_heads, cur.num_key_value_heads);
  cmp("tie_word_embeddings", ck.tie_word_embeddings, cur.tie_word_embeddings);
  cmp("attention_bias (q/k/v)", ck.qkv_bias, cur.qkv_bias);
  cmp("attention_bias (o)", ck.o_bias, cur.o_bias);
  cmp("rope_theta", ck.rope_theta, cur.rope_theta);
  cmp("rope_scaling", std::string(rope_scaling_name(ck.rope_scaling)),
      std::string(rope_scaling_name(cur.rope_scaling)));
  cmp("rope_scaling.factor", ck.rope_scaling_factor, cur.rope_scaling_factor);
  cmp("rms_norm_eps", ck.rms_norm_eps, cur.rms_norm_eps);
  return os.str();
}

}  // namespace mentor_kd::causal
