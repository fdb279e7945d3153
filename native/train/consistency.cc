#include "train/consistency.h"

#include <stdexcept>
#include <tuple>

namespace mentor_kd::train {

void check_consistency_pairs(const ConsistencyPairs& pairs, int64_t rows, const std::string& where) {
  if (!pairs.a.defined() || !pairs.b.defined() || !pairs.weight.defined())
    throw std::invalid_argument(where + ": consistency needs the tensors a, b and weight");
  const std::pair<const char*, const at::Tensor*> index[] = {{"a", &pairs.a}, {"b", &pairs.b}};
  for (const auto& [name, t] : index) {
    if (t->dim() != 1) throw std::invalid_argument(where + ".consistency." + name + " must be 1-D [pairs]");
    if (t->scalar_type() != at::kLong)
      throw std::invalid_argument(where + ".consistency." + name + " must be int64 positions");
  }
  const int64_t P = pairs.a.size(0);
  if (pairs.b.size(0) != P || pairs.weight.dim() != 1 || pairs.weight.size(0) != P)
    throw std::invalid_argument(where + ".consistency: a, b and weight must have one entry per pair (a has " +
                                std::to_string(P) + ", b " + std::to_string(pairs.b.numel()) + ", weight " +
                                std::to_string(pairs.weight.numel()) + ")");
  if (!at::isFloatingType(pairs.weight.scalar_type()))
    throw std::invalid_argument(where + ".consistency.weight must be floating point");
  if (P == 0) return;
  for (const auto& [name, t] : index) {
    const int64_t lo = t->min().item<int64_t>(), hi = t->max().item<int64_t>();
    if (lo < 0 || hi >= rows)
      throw std::invalid_argument(where + ".consistency." + name + " holds position " +
                                  std::to_string(lo < 0 ? lo : hi) + " outside the micro-batch's " +
                                  std::to_string(rows) + " decoder positions");
  }
  if (!pairs.weight.isfinite().all().item<bool>() || pairs.weight.min().item<double>() < 0)
    throw std::invalid_argument(where + ".consistency.weight must be finite and >= 0");
}

at::Tensor answer_consistency(const at::Tensor& hidden, const at::Tensor& W, const ConsistencyPairs& pairs) {
  // fp32 accumulation for fp32/bf16/fp16 heads (fp64 stays fp64, for gradcheck).
  const at::ScalarType acc = W.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t P = pairs.size();
  if (P == 0) return at::zeros({}, hidden.options().dtype(acc));
  const at::Device dev = hidden.device();
  const at::Tensor a = pairs.a.to(dev), b = pairs.b.to(dev);
  // Each distinct position is projected once ([U,d] → [U,V]), however many pairs it is in.
  at::Tensor uniq, inverse;
  std::tie(uniq, inverse, std::ignore) = at::_unique2(at::cat({a, b}), /*sorted=*/true, /*return_inverse=*/true);
  const at::Tensor logp = at::log_softmax(at::matmul(hidden.index_select(0, uniq), W.t()).to(acc), -1);  // [U,V]
  const at::Tensor la = logp.index_select(0, inverse.slice(0, 0, P));                                    // [P,V]
  const at::Tensor lb = logp.index_select(0, inverse.slice(0, P, 2 * P));                                // [P,V]
  // KL(p‖q) + KL(q‖p) = Σ_v (p − q)·(log p − log q): one pass, no 0·log 0 cases.
  const at::Tensor sym = 0.5 * ((la.exp() - lb.exp()) * (la - lb)).sum(-1);  // [P]
  return (sym * pairs.weight.to(dev, acc)).sum();
}

}  // namespace mentor_kd::train
