// The kd binding's calls, shared by the shipped `kd` namespace and the dev
// addon's `dev.kd*` functions. The shipped calls run the fused op only; the dev
// ones also take the test options `impl` (explicit/reference forms) and
// `upstream`, whose implementations the dev addon passes in (KdDevImpls), so
// the shipped addon links none of them.
#pragma once
#include <napi.h>

#include "kd/kd_loss.h"

namespace mentor_kd {

struct KdDevImpls {
  kd::KdLoss (*loss_reference)(const at::Tensor& s, const at::Tensor& m, const at::Tensor& y, const kd::KdOptions& o);
  kd::KdLoss (*topk_reference)(const at::Tensor& s, const kd::TopK& t, const at::Tensor& y, const kd::KdOptions& o);
  kd::KdForward (*loss_explicit)(const at::Tensor& s, const at::Tensor& m, const at::Tensor& y, const kd::KdOptions& o,
                                 bool want_grad);
  kd::KdForward (*topk_explicit)(const at::Tensor& s, const kd::TopK& t, const at::Tensor& y, const kd::KdOptions& o,
                                 bool want_grad);
};

// loss(student, mentor, labels, options), topk(student, topk, labels, options),
// linear(hidden, weight, mentor, labels, options); dev == nullptr: the shipped calls.
Napi::Value KdLossCall(const Napi::CallbackInfo& info, const KdDevImpls* dev);
Napi::Value KdTopkCall(const Napi::CallbackInfo& info, const KdDevImpls* dev);
Napi::Value KdLinearCall(const Napi::CallbackInfo& info, const KdDevImpls* dev);

}  // namespace mentor_kd
