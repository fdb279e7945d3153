#include "generate/request.h"

#include <cmath>
#include <stdexcept>

namespace mentor_kd::generate {

void validate_request(const GenerationRequest& r, int64_t vocab_size, const std::string& where) {
  auto fail = [&](const std::string& field, const std::string& what) {
    throw std::invalid_argument(where + "." + field + " " + what);
  };
  if (r.input_ids.empty()) fail("inputIds", "must hold at least one token id");
  for (size_t i = 0; i < r.input_ids.size(); ++i) {
    const int64_t id = r.input_ids[i];
    if (id < 0 || id >= vocab_size)
      fail("inputIds[" + std::to_string(i) + "]",
           "= " + std::to_string(id) + " is outside [0, vocab_size " + std::to_string(vocab_size) + ")");
  }
  if (r.max_new_tokens < 1) fail("maxNewTokens", "must be >= 1, got " + std::to_string(r.max_new_tokens));
  if (r.samples < 1) fail("samples", "must be >= 1, got " + std::to_string(r.samples));
  if (!r.sample_max_new_tokens.empty()) {
    if (static_cast<int64_t>(r.sample_max_new_tokens.size()) != r.samples)
      fail("maxNewTokens", "has " + std::to_string(r.sample_max_new_tokens.size()) + " entries for " +
                               std::to_string(r.samples) + " samples");
    for (size_t i = 0; i < r.sample_max_new_tokens.size(); ++i)
      if (r.sample_max_new_tokens[i] < 1)
        fail("maxNewTokens[" + std::to_string(i) + "]",
             "must be >= 1, got " + std::to_string(r.sample_max_new_tokens[i]));
  }
  if (!r.do_sample && r.samples > 1) fail("samples", "> 1 needs doSample (greedy decoding would repeat one sequence)");
  if (r.do_sample && !(r.temperature > 0)) fail("temperature", "must be > 0 when sampling");
  if (!std::isfinite(r.temperature)) fail("temperature", "must be finite");
  if (r.top_k < 0) fail("topK", "must be >= 0, got " + std::to_string(r.top_k));
  if (!(r.top_p > 0 && r.top_p <= 1)) fail("topP", "must be in (0, 1]");
}

}  // namespace mentor_kd::generate
