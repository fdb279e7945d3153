#include "generate/packed_linear.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>

namespace mentor_kd::generate {

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace isa_avx512 {
#define PL_VBYTES 64
#define PL_ROWS 8
#include "generate/packed_linear_simd.inc"
#undef PL_VBYTES
#undef PL_ROWS
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace isa_avx2 {
#define PL_VBYTES 32
#define PL_ROWS 3
#include "generate/packed_linear_simd.inc"
#undef PL_VBYTES
#undef PL_ROWS
}  // namespace isa_avx2
#pragma GCC pop_options

namespace isa_sse2 {
#define PL_VBYTES 16
#define PL_ROWS 1
#include "generate/packed_linear_simd.inc"
#undef PL_VBYTES
#undef PL_ROWS
}  // namespace isa_sse2

namespace {

using PanelsFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, int64_t, float*,
                          int64_t, bool);

PanelsFn detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return &isa_avx512::panels;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &isa_avx2::panels;
  return &isa_sse2::panels;
}

const PanelsFn kPanels = detect();

}  // namespace

PackedLinear::PackedLinear(const at::Tensor& weight) {
  if (weight.dim() != 2 || weight.scalar_type() != at::kFloat || !weight.device().is_cpu())
    throw std::invalid_argument("PackedLinear: the weight must be a 2-D float32 CPU tensor");
  N_ = weight.size(0), K_ = weight.size(1);
  const int64_t P = (N_ + kPanel - 1) / kPanel;
  // [N, K] -> zero-pad to [P * 32, K] -> [P, 32, K] -> [P, K, 32]
  at::Tensor padded = at::zeros({P * kPanel, K_}, weight.options());
  padded.narrow(0, 0, N_).copy_(weight);
  panels_ = padded.view({P, kPanel, K_}).transpose(1, 2).contiguous();
}

void PackedLinear::apply(const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy, bool accumulate) const {
  if (!panels_.defined()) throw std::logic_error("PackedLinear::apply on an empty layer");
  if (n <= 0) return;
  const int64_t P = panels_.size(0);
  const float* packed = panels_.data_ptr<float>();
  // Panels split across threads: each thread streams its own share of the weight once.
  at::parallel_for(0, P, 1,
                   [&](int64_t p0, int64_t p1) { kPanels(x, ldx, n, packed, K_, N_, p0, p1, y, ldy, accumulate); });
}

}  // namespace mentor_kd::generate
