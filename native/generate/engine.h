// The generation engine: continuous batching of generation requests over S decoder slots, for any
// model family with a DecoderBackend (decoder_backend.h: T5Decoder, CausalDecoder).
//
// - A queue of requests (request.h); each (request, sample) takes a slot when one is free. A request is
//   prepared once by the backend (T5: encoder + cross-attention K/V; causal: the prompt's prefill),
//   when its first sample is admitted, shared by all its samples and freed when its last sample ends.
// - Active rows are kept in slots 0..n-1 (a finished row's slot is refilled at once; at the tail the
//   last row moves into it), so each step runs dense GEMMs over n rows; the backend's per-slot caches
//   are allocated up front and only grow.
// - One step = the backend's next token for every active row in one native call (its decoder and the
//   fused sampler, sampler.h).
// - Determinism: a row's tokens depend only on its request (seed, sample index, step) and the weights.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "causal/model.h"
#include "generate/decoder_backend.h"
#include "generate/request.h"
#include "t5/model.h"

namespace mentor_kd::generate {

struct EngineOptions {
  int64_t slots = 64;
  at::ScalarType dtype = at::kFloat;  // float32 or bfloat16 (a converted copy of the weights)
};

struct EngineStats {
  int64_t requests_done = 0;
  int64_t steps = 0;
  int64_t row_steps = 0;  // rows computed over all steps (= tokens generated)
  int64_t new_tokens = 0;
  int64_t encoder_passes = 0;  // requests prepared: T5 encoder passes, causal prompt prefills
  double encode_seconds = 0, decode_seconds = 0;
};

class GenerationEngine {
 public:
  GenerationEngine(std::shared_ptr<t5::T5Model> model, const EngineOptions& options);
  GenerationEngine(std::shared_ptr<causal::CausalLM> model, const EngineOptions& options);

  // Validates (throws naming where + field) and queues; thread-safe, cheap.
  void submit(std::vector<GenerationRequest> requests, const std::string& where = "requests");
  // Runs steps until at least one request has finished, or nothing is left; returns those finished.
  std::vector<GenerationResult> run_until_finished();
  // Runs everything queued; results in completion order.
  std::vector<GenerationResult> run_all();
  bool idle();
  EngineStats stats() const { return stats_; }
  int64_t slots() const { return slots_; }
  at::ScalarType dtype() const { return backend_->dtype(); }

 private:
  struct Pending {
    GenerationRequest request;
    std::shared_ptr<PreparedRequest> prepared;  // once prepared
    int64_t next_sample = 0, samples_done = 0;
    GenerationResult result;
  };
  struct Row {
    std::shared_ptr<Pending> req;
    int64_t sample = 0;
    int64_t step = 0;  // tokens generated so far
    int64_t last = 0;  // next input token
    std::vector<int64_t> tokens;
    bool fresh = true;  // not yet stepped in its slot
  };

  // The one constructor; the public ones make the backend for their model family.
  GenerationEngine(std::unique_ptr<DecoderBackend> backend, int64_t slots);
  void admit();
  // Moves submitted requests into the pending queue; the caller holds queue_mutex_.
  void take_incoming_locked();
  // The next pending (request, sample) as a fresh row (preparing its request if needed); false if none.
  bool next_row(Row& row);
  void step(std::vector<GenerationResult>& finished);
  DecodeRow decode_row(const Row& r) const;
  // Appends each row's token; finished rows hand in their sequences and their slots are refilled.
  void finish_rows(const std::vector<int64_t>& next, std::vector<GenerationResult>& finished);
  void move_row(int64_t from, int64_t to);
  bool is_eos(int64_t id) const;

  std::unique_ptr<DecoderBackend> backend_;
  int64_t slots_;
  std::vector<int64_t> eos_;
  std::vector<Row> rows_;  // active rows, slot i = rows_[i]
  std::deque<std::shared_ptr<Pending>> queue_;
  std::mutex queue_mutex_;
  std::vector<GenerationRequest> incoming_;
  EngineStats stats_;
};

}  // namespace mentor_kd::generate
