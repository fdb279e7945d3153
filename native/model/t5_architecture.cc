#include "model/t5_architecture.h"

#include <sstream>

namespace mentor_kd::model {

std::string t5_architecture_mismatch(const t5::T5Config& ck, const t5::T5Config& cur) {
  std::ostringstream os;
  auto cmp = [&](const char* field, auto a, auto b) {
    if (a != b)
      os << (os.tellp() > 0 ? "; " : "") << field << " is " << a << " in the checkpoint but " << b
         << " in the model being trained";
  };
  cmp("vocab_size", ck.vocab_size, cur.vocab_size);
  cmp("d_model", ck.d_model, cur.d_model);
  cmp("d_kv", ck.d_kv, cur.d_kv);
  cmp("d_ff", ck.d_ff, cur.d_ff);
  cmp("num_layers", ck.num_layers, cur.num_layers);
  cmp("num_decoder_layers", ck.num_decoder_layers, cur.num_decoder_layers);
  cmp("num_heads", ck.num_heads, cur.num_heads);
  cmp("relative_attention_num_buckets", ck.relative_attention_num_buckets, cur.relative_attention_num_buckets);
  cmp("relative_attention_max_distance", ck.relative_attention_max_distance, cur.relative_attention_max_distance);
  cmp("feed_forward_proj", ck.feed_forward_proj, cur.feed_forward_proj);
  cmp("tie_word_embeddings", ck.tie_word_embeddings, cur.tie_word_embeddings);
  return os.str();
}

}  // namespace mentor_kd::model
