// One generation request for the engine (native/generate/engine.h): a question's source ids (T5) or
// prompt ids (causal) and how to decode it. A request with samples n gives n sequences that share its
// preparation (T5: encoder pass and cross-attention K/V; causal: the prompt's prefill); sample j draws
// its tokens from (seed, j, step) alone (counter_rng.h), so what shares the batch never changes them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mentor_kd::generate {

struct GenerationRequest {
  std::vector<int64_t> input_ids;  // the source (T5) or prompt (causal), no padding
  int64_t max_new_tokens = 64;
  // Optional per-sample limits (size = samples); max_new_tokens is then their maximum.
  std::vector<int64_t> sample_max_new_tokens;
  int64_t samples = 1;
  bool do_sample = false;    // greedy when false
  double temperature = 1.0;  // > 0 when sampling
  int64_t top_k = 50;        // HF's default; 0 disables
  double top_p = 1.0;        // (0, 1]
  uint64_t seed = 0;
  // Caller's tag, returned with the result (the request's index in generateStream's list).
  int64_t tag = 0;
};

struct GenerationResult {
  int64_t tag = 0;
  // One per sample: the generated ids (EOS included when reached), after decoder_start_token_id for T5.
  std::vector<std::vector<int64_t>> sequences;
  int64_t new_tokens = 0;  // generated ids over all samples
};

// Throws std::invalid_argument naming `where` and the field (e.g. "requests[3].maxNewTokens must be >= 1").
void validate_request(const GenerationRequest& r, int64_t vocab_size, const std::string& where);

}  // namespace mentor_kd::generate
