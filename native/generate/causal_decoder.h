// A decoder-only causal LM (Llama / Qwen2, causal/model.h) as a generation-engine backend
// (decoder_backend.h), on the CPU.
//
// - prepare(): the prompt's prefill once (CausalLM::prefill, positions 0..P-1: for one unpadded
//   prompt these are exactly HF's mask-derived positions of a left-padded batch), keeping its
//   per-layer K/V [Hkv, P, d] and last logits, shared by the request's samples.
// - A fresh row copies its prompt's K/V into its slot of the cache [slots, Hkv, capacity, d] per
//   layer (slot_kv_cache.h) and takes its first token from the prefill logits (its row in that step's GEMMs is
//   computed and discarded: the slots stay dense). Later steps feed the row's last token at position
//   P + step - 1.
// - One step for n rows: embedding, per layer RMSNorm, fused q|k|v GEMM (+ Qwen2's bias), RoPE at each
//   row's own position, cache write, grouped-query attention over each row's own length
//   (decode_attention.h, q·k / √d as HF), o-proj + residual, fused gate|up GEMM, SiLU(gate)·up, down +
//   residual; final norm, the (tied) LM head, and the fused sampler (sampler.h). Float32 GEMMs read
//   weights packed once (packed_linear.h); bfloat16 reads a converted copy.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "causal/model.h"
#include "generate/decode_linear.h"
#include "generate/decoder_backend.h"
#include "generate/slot_kv_cache.h"

namespace mentor_kd::generate {

class CausalDecoder : public DecoderBackend {
 public:
  CausalDecoder(std::shared_ptr<causal::CausalLM> model, int64_t slots, at::ScalarType dtype);

  int64_t vocab_size() const override { return config_.vocab_size; }
  const std::vector<int64_t>& eos_token_ids() const override { return config_.eos_token_ids; }
  int64_t start_token() const override { return 0; }  // a fresh row's first token comes from its prefill
  std::vector<int64_t> sequence_prefix() const override { return {}; }
  at::ScalarType dtype() const override { return dtype_; }

  std::shared_ptr<PreparedRequest> prepare(const GenerationRequest& request) override;
  void next_tokens(const std::vector<DecodeRow>& rows, int64_t* next) override;
  void move_slot(int64_t from, int64_t to, const DecodeRow& row) override;

 private:
  struct Layer {
    at::Tensor input_norm, post_norm, qkv_bias, o_bias;  // biases undefined when the config has none
    DecodeLinear qkv, o, gate_up, down;
  };
  void ensure_capacity(const std::vector<DecodeRow>& rows);
  // RoPE cos / sin [n, 1, d] for the rows' positions (each row's own key count for dynamic scaling).
  void rotary(const std::vector<int64_t>& positions, at::Tensor& cos, at::Tensor& sin) const;

  std::shared_ptr<causal::CausalLM> model_;  // the prefill runs on it
  causal::CausalConfig config_;
  at::ScalarType dtype_;
  int64_t slots_, H_, Hkv_, d_, D_, I_, L_, qkv_width_;
  std::vector<Layer> layers_;
  at::Tensor embed_, final_norm_;
  DecodeLinear lm_head_;
  // Step workspace, [slots, *] rows in the engine's dtype (logits float32), allocated once.
  at::Tensor ws_x_, ws_h_, ws_qkv_, ws_attn_, ws_ff_, ws_logits_;
  SlotKvCache cache_;  // [slots, Hkv, capacity, d] per layer
};

}  // namespace mentor_kd::generate
