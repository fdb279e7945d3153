// One decode-step weight of a generation backend: the packed float32 copy (packed_linear.h) when the
// engine runs in float32, or the bfloat16 tensor itself (at::linear, oneDNN's bf16 GEMM).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "generate/packed_linear.h"

namespace mentor_kd::generate {

class DecodeLinear {
 public:
  DecodeLinear() = default;
  // weight [N, K]; dtype: the engine's (float32 packs a copy; bfloat16 keeps weight, which must be bf16).
  DecodeLinear(const at::Tensor& weight, at::ScalarType dtype);

  // out[:n] (+)= in[:n, :K] · Wᵀ; in and out are [slots, *] workspace rows of the engine's dtype.
  void apply(const at::Tensor& in, int64_t n, const at::Tensor& out, bool accumulate) const;

 private:
  at::Tensor weight_;
  PackedLinear packed_;
};

}  // namespace mentor_kd::generate
