// Internals of the KD op (kd_op.cc) shared with the dev addon's reference and
// explicit-gradient forms (native/dev/kd_reference.cc): the same input checks,
// reductions and forward work. Not an API.
#pragma once
#include <ATen/ATen.h>

#include "kd/kd_loss.h"

namespace mentor_kd::kd::detail {

void check_options(const char* op, const KdOptions& o);
// Student [...,V] → [N,V], labels [...] → [N]; checks everything that can be
// checked without reading the data.
void check_student_labels(const char* op, const at::Tensor& student, const at::Tensor& labels, const char* sname);
void check_mentor(const char* op, const at::Tensor& student, const at::Tensor& mentor);
void check_topk(const char* op, const at::Tensor& student, const TopK& t, int64_t N);

// Denominators of the reductions as device tensors (no host sync on CUDA).
struct Dens {
  at::Tensor ce, kl;  // 0-dim, accumulation dtype
};
Dens denominators(const at::Tensor& labels, const KdOptions& o, at::ScalarType acc);
double kl_factor(const KdOptions& o);

// The fused forward (loss parts and, when want_grad, dL/ds for an upstream 1) without autograd.
KdForward forward_full(const at::Tensor& student, const at::Tensor& mentor, const at::Tensor& labels,
                       const KdOptions& o, bool want_grad);
KdForward forward_topk(const at::Tensor& student, const TopK& t, const at::Tensor& labels, const KdOptions& o,
                       bool want_grad);

}  // namespace mentor_kd::kd::detail
