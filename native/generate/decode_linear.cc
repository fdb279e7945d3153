#include "generate/decode_linear.h"

namespace mentor_kd::generate {

DecodeLinear::DecodeLinear(const at::Tensor& weight, at::ScalarType dtype) {
  if (dtype == at::kFloat)
    packed_ = PackedLinear(weight.contiguous());
  else
    weight_ = weight;
}

void DecodeLinear::apply(const at::Tensor& in, int64_t n, const at::Tensor& out, bool accumulate) const {
  if (packed_.defined()) {
    packed_.apply(in.data_ptr<float>(), in.size(1), n, out.data_ptr<float>(), out.size(1), accumulate);
    return;
  }
  at::Tensor o = out.narrow(0, 0, n), y = at::linear(in.narrow(0, 0, n).narrow(1, 0, weight_.size(1)), weight_);
  if (accumulate)
    o.add_(y);
  else
    o.copy_(y);
}

}  // namespace mentor_kd::generate
