// dev.answerConsistency(hidden [N,d], weight [V,d], {a, b, weight}): MCC-KD's consistency
// term (train/consistency.h) with its gradients for an upstream gradient of 1, so tests check
// it on hand-computed cases without a model.
#include <napi.h>

#include "bindings/consistency_args.h"
#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"
#include "train/consistency.h"

namespace mentor_kd {
namespace {

Napi::Value AnswerConsistency(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 3) throw std::invalid_argument("answerConsistency(hidden, weight, pairs): 3 arguments");
    at::Tensor h = tensor_from_js(info[0], "hidden").to(at::kDouble).requires_grad_(true);
    at::Tensor w = tensor_from_js(info[1], "weight").to(at::kDouble).requires_grad_(true);
    if (h.dim() != 2 || w.dim() != 2 || h.size(1) != w.size(1))
      throw std::invalid_argument("answerConsistency: hidden must be [N,d] and weight [V,d]");
    train::ConsistencyPairs pairs = consistency_pairs_from_js(info[2], "pairs");
    train::check_consistency_pairs(pairs, h.size(0), "pairs");
    at::Tensor loss;
    {
      at::AutoGradMode grad(true);
      loss = train::answer_consistency(h, w, pairs);
      if (loss.requires_grad()) loss.backward();
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", loss.item<double>());
    o.Set("gradHidden", tensor_to_js(env, h.grad().defined() ? h.grad() : at::zeros_like(h)));
    o.Set("gradWeight", tensor_to_js(env, w.grad().defined() ? w.grad() : at::zeros_like(w)));
    return o;
  });
}

void Init(Napi::Env env, Napi::Object dev) {
  dev.Set("answerConsistency", Napi::Function::New(env, AnswerConsistency, "answerConsistency"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(dev, mentor_kd::Init);
