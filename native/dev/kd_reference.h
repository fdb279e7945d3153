// Dev addon only (tests and benchmarks): the KD loss's unfused references and
// its explicit-gradient forms.
#pragma once
#include <ATen/ATen.h>

#include "kd/kd_loss.h"

namespace mentor_kd::kd {

// ---- explicit-gradient forms (no autograd graph) --------------------------
// Return the parts and, when want_grad, dL/d(student logits) for an upstream
// gradient of 1 (student's dtype and shape; aliases the logits when opts.inplace_grad).
KdForward kd_loss_forward(const at::Tensor& student_logits, const at::Tensor& mentor_logits, const at::Tensor& labels,
                          const KdOptions& opts, bool want_grad);
KdForward kd_loss_topk_forward(const at::Tensor& student_logits, const TopK& mentor, const at::Tensor& labels,
                               const KdOptions& opts, bool want_grad);

// ---- unfused references ------------------------------------------------------
// The plain libtorch composition: cross_entropy + kl_div(log_softmax(s/τ),
// softmax(m/τ)), autograd-aware, computed in the inputs' dtype (float32 for
// bf16/f16 when upcast=true, which the tests use to compare).
KdLoss kd_loss_reference(const at::Tensor& student_logits, const at::Tensor& mentor_logits, const at::Tensor& labels,
                         const KdOptions& opts, bool upcast = true);
KdLoss kd_loss_topk_reference(const at::Tensor& student_logits, const TopK& mentor, const at::Tensor& labels,
                              const KdOptions& opts, bool upcast = true);

}  // namespace mentor_kd::kd
