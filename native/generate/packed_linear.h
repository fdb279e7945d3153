// A float32 linear layer for the few rows of a decode step, y[n, N] (+)= x[n, K] · Wᵀ, over a copy of
// W packed once into column panels [ceil(N / 32), K, 32].
//
// Why: a decode step multiplies 1..64 rows by every weight matrix. OpenBLAS's sgemm packs (copies) the
// whole weight on every call, which at so few rows costs more than the multiply (perf on greedy 8 rows:
// sgemm_incopy 26% of the time, the kernel 17%). Packed once, each step streams every weight exactly
// once; the kernel (packed_linear_simd.inc) keeps a tile of rows × 32 outputs in registers, broadcasting
// x[i, k] against one 32-wide panel row per k, so no horizontal sums are needed.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace mentor_kd::generate {

class PackedLinear {
 public:
  static constexpr int64_t kPanel = 32;  // outputs per panel

  PackedLinear() = default;
  // weight: [N, K] float32 (any device-less CPU tensor; copied).
  explicit PackedLinear(const at::Tensor& weight);

  // y[i, j] = (accumulate ? y[i, j] : 0) + Σ_k x[i, k] · W[j, k] for i < n, j < N.
  // x rows are ldx floats apart, y rows ldy floats apart; x and y must not overlap.
  void apply(const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy, bool accumulate) const;

  int64_t out_features() const { return N_; }
  int64_t in_features() const { return K_; }
  bool defined() const { return panels_.defined(); }

 private:
  int64_t N_ = 0, K_ = 0;
  at::Tensor panels_;  // [ceil(N / kPanel), K, kPanel] float32, the last panel zero-padded
};

}  // namespace mentor_kd::generate
