#include "causal/mlp.h"

namespace mentor_kd::causal {

at::Tensor swiglu_mlp(const at::Tensor& x, const MlpWeights& w) {
  return at::linear(at::silu(at::linear(x, w.gate)) * at::linear(x, w.up), w.down);
}

}  // namespace mentor_kd::causal
