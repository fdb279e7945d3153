// libFuzzer target: the config.json parser must turn any text into either a
// valid T5Config or a std::runtime_error naming the field. Built by scripts/fuzz/run.sh.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "t5/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto c = mentor_kd::t5::parse_t5_config(text, "fuzz");
    // What the model relies on once a config is accepted.
    if (c.vocab_size < 1 || c.d_model < 1 || c.num_heads < 1 || c.d_kv < 1 || c.num_layers < 1) std::abort();
    if (c.pad_token_id >= c.vocab_size || c.decoder_start_token_id >= c.vocab_size) std::abort();
    if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 2) std::abort();
    // Every size it implies fits in int64 (parse_t5_config checked; must not throw now).
    auto size = mentor_kd::t5::t5_size(c, "fuzz");
    if (size.parameters < 1 || size.tensors < 1) std::abort();
    (void)mentor_kd::t5::t5_config_to_json(c, "float32");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
