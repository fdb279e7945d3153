// Rotary position embedding (RoPE) as HF's LlamaRotaryEmbedding (v4.33) computes it:
//   inv_freq_j = 1 / theta^(2j/d)            (float32, theta = rope_theta)
//   angle(p, j) = (p / factor) * inv_freq_j  (linear scaling divides the position)
//   cos/sin over cat(angle, angle)           (the "rotate_half" layout, not interleaved pairs)
// Dynamic (NTK) scaling grows theta once the sequence is longer than max_position_embeddings:
//   theta' = theta * (factor * L / max_pos - (factor - 1))^(d / (d - 2)),  L = keys so far.
// HF keeps the grown table for later, shorter calls; here each call uses its own length (the
// same numbers within one forward or one generation).
#pragma once
#include <ATen/ATen.h>

#include "causal/config.h"

namespace mentor_kd::causal {

struct RotaryTables {
  at::Tensor cos, sin;  // [B, 1, T, head_dim] in the model dtype, broadcast over heads
};

// Tables for `position_ids` [B, T] (int64); `seq_len` is the number of keys the attention sees
// (for dynamic scaling).
RotaryTables rotary_tables(const CausalConfig& config, const at::Tensor& position_ids, int64_t seq_len,
                           at::ScalarType dtype);

// x [B, H, T, head_dim] -> x·cos + rotate_half(x)·sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]).
at::Tensor apply_rotary(const at::Tensor& x, const RotaryTables& tables);

}  // namespace mentor_kd::causal
