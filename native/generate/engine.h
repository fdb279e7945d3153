// The generation engine: continuous batching of generation requests over S preallocated decoder slots.
//
// - A queue of requests (request.h); each (request, sample) takes a slot when one is free. A request's
//   encoder runs once, when its first sample is admitted, and its cross-attention K/V are computed once
//   and shared (by pointer) by all its samples; they are freed when its last sample ends.
// - The self-attention cache is [slots, heads, capacity, d_kv] per layer, allocated up front (it only
//   grows, outside the step, when a request needs more steps than the capacity). Active rows are kept
//   in slots 0..n-1 (a finished row's slot is refilled at once; at the tail the last row moves into
//   it), so each step runs dense GEMMs over n rows and never allocates cache.
// - One step = the whole decoder for all active rows in one native call: embedding, per layer fused
//   QKV GEMM, cache write + attention over each row's own length (decode_attention.h; the relative
//   position bias is one [heads, capacity] table shared by all layers and steps), cross-attention,
//   fused gated FF, the LM head, and the fused sampler (sampler.h) on the float32 logits. Activations
//   live in [slots, *] workspace rows allocated with the engine; in float32 every decoder GEMM reads a
//   weight packed once for few-row products (packed_linear.h), residual adds fused into the GEMM.
// - Determinism: a row's tokens depend only on its request (seed, sample index, step) and the weights.
// - Weights: packed float32 copies of the model's decoder weights, or an opt-in copy in bfloat16 made
//   when the engine is created (T5Model::converted), used only here; training keeps its float32 weights.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "generate/cuda_decode_step.h"
#include "generate/packed_linear.h"
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
  int64_t encoder_passes = 0;
  double encode_seconds = 0, decode_seconds = 0;
};

class GenerationEngine {
 public:
  GenerationEngine(std::shared_ptr<t5::T5Model> model, const EngineOptions& options);

  // Validates (throws naming where + field) and queues; thread-safe, cheap.
  void submit(std::vector<GenerationRequest> requests, const std::string& where = "requests");
  // Runs steps until at least one request has finished, or nothing is left; returns those finished.
  std::vector<GenerationResult> run_until_finished();
  // Runs everything queued; results in completion order.
  std::vector<GenerationResult> run_all();
  bool idle();
  EngineStats stats() const { return stats_; }
  int64_t slots() const { return slots_; }
  at::ScalarType dtype() const { return dtype_; }

 private:
  struct Pending {
    GenerationRequest request;
    at::Tensor cross_kv;  // [L, 2, H, S, d_kv], once encoded
    int64_t next_sample = 0, samples_done = 0;
    GenerationResult result;
  };
  struct Row {
    std::shared_ptr<Pending> req;
    int64_t sample = 0;
    int64_t pos = 0;   // decoder position of the next input token
    int64_t last = 0;  // next input token
    std::vector<int64_t> tokens;
    bool cross_pending = true;  // CUDA: its request's cross K/V not yet copied into its slot
  };

  void admit();
  // Moves submitted requests into the pending queue; the caller holds queue_mutex_.
  void take_incoming_locked();
  void encode(Pending& p);
  void ensure_capacity(int64_t steps);
  void step(std::vector<GenerationResult>& finished);
  // The next token of each active row: the decoder on the CPU (packed or bf16 weights, attention over
  // each row's own lengths), or the captured CUDA graph (cuda_decode_step.h).
  void next_tokens_cpu(int64_t* next);
  // Appends each row's token; finished rows hand in their sequences and their slots are refilled.
  void finish_rows(const std::vector<int64_t>& next, std::vector<GenerationResult>& finished);
#ifdef MENTOR_KD_WITH_CUDA
  void next_tokens_cuda(int64_t* next);
  std::unique_ptr<CudaDecodeStep> cuda_;
#endif
  void move_row(int64_t from, int64_t to);
  bool is_eos(int64_t id) const;

  // One decoder weight: the packed float32 copy (packed_linear.h) when the engine runs in float32, the
  // tensor itself for bfloat16 (at::linear, oneDNN's bf16 GEMM).
  struct Linear {
    at::Tensor weight;
    PackedLinear packed;
  };
  Linear make_linear(const at::Tensor& weight) const;
  // out[:n] (+)= in[:n] · Wᵀ; in and out are [slots, *] workspace rows.
  void linear(const Linear& w, const at::Tensor& in, int64_t n, const at::Tensor& out, bool accumulate) const;

  std::shared_ptr<t5::T5Model> model_;  // what the encoder and weights come from (converted for bf16)
  t5::T5Config config_;
  at::ScalarType dtype_;
  int64_t slots_, H_, dk_, I_, D_, F_, L_;
  // Decoder weights, fused where one GEMM can do two or three.
  std::vector<Linear> self_qkv_, self_o_, cross_q_, cross_o_, ff_wi_, ff_wo_;
  std::vector<at::Tensor> self_norm_, cross_norm_, ff_norm_;
  std::vector<at::Tensor> cross_kv_w_;
  Linear lm_head_;
  at::Tensor shared_, final_norm_, bias_table_;  // bias_table_: [H, capacity] float32
  // Step workspace, [slots, *] rows in the engine's dtype (logits float32), allocated once: a step
  // uses the first n rows.
  at::Tensor ws_x_, ws_h_, ws_qkv_, ws_attn_, ws_q_, ws_ff_, ws_logits_;
  std::vector<at::Tensor> cache_k_, cache_v_;  // [slots, H, capacity, d_kv]
  int64_t capacity_ = 0;
  std::vector<Row> rows_;  // active rows, slot i = rows_[i]
  std::deque<std::shared_ptr<Pending>> queue_;
  std::mutex queue_mutex_;
  std::vector<GenerationRequest> incoming_;
  EngineStats stats_;
};

}  // namespace mentor_kd::generate
