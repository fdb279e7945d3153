// What a model family does for the generation engine (engine.h), which owns everything else: the
// queue, admission, slots, row moves, finishing, stats. A backend holds the per-slot caches and the
// decode weights; the engine asks it to
//   - prepare a request once (T5: the encoder pass and cross-attention K/V; causal: the prompt's
//     prefill, its per-layer K/V and last logits), shared by the request's samples;
//   - give the next token of active rows 0..n-1 (a row's first step after taking a slot is `fresh`:
//     the backend starts it there, e.g. copies the prompt's K/V into the slot);
//   - move a row's cache from one slot to another (the active rows stay in slots 0..n-1).
// A row's tokens depend only on (seed, sample index, step) and the weights: backends sample with
// sampler.h's counter-based draws (step = tokens the row has generated so far).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "generate/request.h"
#include "generate/sampler.h"

namespace mentor_kd::generate {

// A backend's per-request state (encoder output, prompt K/V, ...), shared by the request's samples.
class PreparedRequest {
 public:
  virtual ~PreparedRequest() = default;
};

// One active row as the engine hands it to a backend.
struct DecodeRow {
  const PreparedRequest* prepared = nullptr;
  int64_t token = 0;           // the input token: the row's last output (the start token on its first step)
  int64_t step = 0;            // tokens the row has generated so far
  int64_t max_new_tokens = 1;  // the row's request's limit (a bound for cache growth)
  bool fresh = false;          // the row's first step in this slot
  RowSampling sampling;        // step = `step`
};

class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;

  virtual int64_t vocab_size() const = 0;
  virtual const std::vector<int64_t>& eos_token_ids() const = 0;
  // The token fed on a row's first step (T5: decoder_start_token_id; causal: unused).
  virtual int64_t start_token() const = 0;
  // Ids a result sequence starts with before the generated ones (T5: the decoder start token).
  virtual std::vector<int64_t> sequence_prefix() const = 0;
  virtual at::ScalarType dtype() const = 0;

  virtual std::shared_ptr<PreparedRequest> prepare(const GenerationRequest& request) = 0;
  // Writes rows.size() next ids into `next`; rows are slots 0..n-1.
  virtual void next_tokens(const std::vector<DecodeRow>& rows, int64_t* next) = 0;
  // Copies the cache of `row` (held in slot `from`, after its last step) into slot `to`.
  virtual void move_slot(int64_t from, int64_t to, const DecodeRow& row) = 0;
};

}  // namespace mentor_kd::generate
