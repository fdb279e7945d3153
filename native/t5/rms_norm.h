// T5's RMSNorm, y = w · x · rsqrt(mean(x²) + eps), as one kernel per row with
// a hand-written backward.
//
// Fuses what HF computes as five tensor ops (pow, mean, add+rsqrt, mul, mul)
// and their autograd graph, which saves those intermediates; here only the
// per-row rsqrt (N floats) is kept, and backward is one pass per row:
//   x̂ = x·r,  g' = g·w,  dx = r·(g' − x̂·mean(g'·x̂)),  dw = Σ_rows g·x̂.
// Accumulation is in fp32 (fp64 for fp64), like HF's fp32 variance. CPU
// float32/float64 use the kernel; other dtypes/devices take HF's composition.
#pragma once
#include <ATen/ATen.h>

namespace mentor_kd::t5 {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace mentor_kd::t5
