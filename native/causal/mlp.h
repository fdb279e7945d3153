// SwiGLU feed-forward as HF's LlamaMLP: down(silu(gate(x)) * up(x)), no biases.
#pragma once
#include <ATen/ATen.h>

namespace mentor_kd::causal {

struct MlpWeights {
  at::Tensor gate, up, down;  // [I, D], [I, D], [D, I]
};

// x [..., D] -> [..., D]
at::Tensor swiglu_mlp(const at::Tensor& x, const MlpWeights& w);

}  // namespace mentor_kd::causal
