// The T5 decoder as a generation-engine backend (decoder_backend.h).
//
// - prepare(): the request's encoder pass once, and its cross-attention K/V [L, 2, H, S, d_kv], shared
//   by all its samples (by pointer; freed with the request).
// - The self-attention cache is [slots, heads, capacity, d_kv] per layer (slot_kv_cache.h), grown
//   (outside the step) when a row needs more positions.
// - One step = the whole decoder for all active rows in one call: embedding, per layer fused QKV GEMM,
//   cache write + attention over each row's own length (decode_attention.h; the relative position
//   bias is one [heads, capacity] table shared by all layers and steps), cross-attention, fused gated
//   FF, the LM head, and the fused sampler (sampler.h) on the float32 logits. Activations live in
//   [slots, *] workspace rows allocated once; in float32 every decoder GEMM reads a weight packed once
//   for few-row products (packed_linear.h), residual adds fused into the GEMM. On CUDA the step is
//   replayed from a captured graph (cuda_decode_step.h).
// - Weights: packed float32 copies of the model's decoder weights, or an opt-in copy in bfloat16 made
//   when the backend is created (T5Model::converted), used only here; training keeps its float32 weights.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "generate/cuda_decode_step.h"
#include "generate/decoder_backend.h"
#include "generate/decode_linear.h"
#include "generate/slot_kv_cache.h"
#include "t5/model.h"

namespace mentor_kd::generate {

class T5Decoder : public DecoderBackend {
 public:
  T5Decoder(std::shared_ptr<t5::T5Model> model, int64_t slots, at::ScalarType dtype);

  int64_t vocab_size() const override { return config_.vocab_size; }
  const std::vector<int64_t>& eos_token_ids() const override { return config_.eos_token_ids; }
  int64_t start_token() const override { return config_.decoder_start_token_id; }
  std::vector<int64_t> sequence_prefix() const override { return {config_.decoder_start_token_id}; }
  at::ScalarType dtype() const override { return dtype_; }

  std::shared_ptr<PreparedRequest> prepare(const GenerationRequest& request) override;
  void next_tokens(const std::vector<DecodeRow>& rows, int64_t* next) override;
  void move_slot(int64_t from, int64_t to, const DecodeRow& row) override;

 private:
  void ensure_capacity(const std::vector<DecodeRow>& rows);
  void next_tokens_cpu(const std::vector<DecodeRow>& rows, int64_t* next);
#ifdef MENTOR_KD_WITH_CUDA
  void next_tokens_cuda(const std::vector<DecodeRow>& rows, int64_t* next);
  std::unique_ptr<CudaDecodeStep> cuda_;
#endif

  using Linear = DecodeLinear;
  Linear make_linear(const at::Tensor& weight) const { return DecodeLinear(weight, dtype_); }
  void linear(const Linear& w, const at::Tensor& in, int64_t n, const at::Tensor& out, bool accumulate) const {
    w.apply(in, n, out, accumulate);
  }

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
  SlotKvCache cache_;  // self-attention [slots, H, capacity, d_kv] per layer (on CUDA only its capacity)
};

}  // namespace mentor_kd::generate
