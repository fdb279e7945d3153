// Grouped-query self-attention as HF's LlamaAttention (v4.33; Qwen2 is the same with q/k/v bias):
//   q = x Wqᵀ (+bq) -> [B, H, T, d];  k, v = x Wkᵀ, x Wvᵀ (+b) -> [B, Hkv, T, d]
//   q, k rotated (RoPE); k, v appended to the cache if one is given
//   each KV head serves H / Hkv query heads (HF's repeat_kv; Hkv = 1 is multi-query)
//   softmax(q kᵀ / √d + mask) in float32, cast back, times v, then Wo (+bo).
#pragma once
#include <ATen/ATen.h>

#include "causal/config.h"
#include "causal/rotary_embedding.h"

namespace mentor_kd::causal {

struct AttentionWeights {
  at::Tensor q, k, v, o;                      // [H*d, D], [Hkv*d, D] x2, [D, H*d]
  at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined when the config has none
};

// Keys and values of the positions seen so far, for incremental decoding. Storage grows by
// doubling, so a generation that stops early never pays for its whole budget.
struct KvCacheLayer {
  at::Tensor k, v;     // [B, Hkv, capacity, d]
  int64_t length = 0;  // positions filled
};

// x [B, T, D]; mask_bias [B, 1, T, keys] additive (0 or finfo.min), keys = cached + T.
at::Tensor self_attention(const CausalConfig& config, const at::Tensor& x, const AttentionWeights& w,
                          const RotaryTables& rope, const at::Tensor& mask_bias, KvCacheLayer* cache);

}  // namespace mentor_kd::causal
