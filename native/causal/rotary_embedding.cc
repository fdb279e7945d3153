#include "causal/rotary_embedding.h"

#include <cmath>

namespace mentor_kd::causal {

RotaryTables rotary_tables(const CausalConfig& c, const at::Tensor& position_ids, int64_t seq_len,
                           at::ScalarType dtype) {
  const int64_t d = c.head_dim();
  double base = c.rope_theta;
  if (c.rope_scaling == RopeScaling::Dynamic && seq_len > c.max_position_embeddings) {
    const double f = c.rope_scaling_factor;
    base = base * std::pow(f * static_cast<double>(seq_len) / static_cast<double>(c.max_position_embeddings) - (f - 1),
                           static_cast<double>(d) / static_cast<double>(d - 2));
  }
  // Float32 throughout, op for op as HF: base ** (arange(0, d, 2).float() / d), then 1 / that.
  auto fopts = at::TensorOptions().dtype(at::kFloat).device(position_ids.device());
  at::Tensor inv_freq = 1.0 / at::pow(base, at::arange(0, d, 2, fopts.dtype(at::kLong)).to(at::kFloat) / d);
  at::Tensor t = position_ids.to(at::kFloat);
  if (c.rope_scaling == RopeScaling::Linear) t = t / c.rope_scaling_factor;
  at::Tensor freqs = t.unsqueeze(-1) * inv_freq;  // [B, T, d/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);   // [B, T, d]
  RotaryTables out;
  out.cos = emb.cos().to(dtype).unsqueeze(1);
  out.sin = emb.sin().to(dtype).unsqueeze(1);
  return out;
}

at::Tensor apply_rotary(const at::Tensor& x, const RotaryTables& tables) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * tables.cos + rotated * tables.sin;
}

}  // namespace mentor_kd::causal
