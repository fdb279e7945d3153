// Internal to native/kd: what the op registration, the CPU kernel and the CUDA
// kernel share. Callers use kd_loss.h.
//
// The backend ops (schemas in kd_op.cc, kernels in kd_loss_cpu.cc and
// kd_loss_cuda.cu) work on rows and know nothing of reductions or autograd:
//
//   kd_rows(student[N,V], mentor[N,V], labels[N], scales[2], tau, kl_all_rows,
//           ignore_index, grad_mode, divergence, coef) -> (row_ce[N], row_kl[N], status[N], grad)
//   kd_topk_rows(student[N,V], indices[N,k], logprobs[N,k], rest_mass[N]?,
//                labels[N], scales[2], tau, kl_all_rows, ignore_index,
//                grad_mode, divergence, coef) -> (row_ce, row_kl, status, grad)
//
// divergence is a KernelDiv (below) and coef its β or α, already resolved by
// the host (resolve_divergence in kd_op.cc): jsd with β ∈ {0,1} and the skews
// with α = 0 arrive as forward/reverse KL, so a kernel sees β ∈ (0,1) and
// α ∈ (0,1) only, where every log below is finite. row_kl holds D.
//
// scales = [ce_scale, kl_scale] lives on the op's device (so a CUDA caller
// needs no sync to compute 1/count): the gradient written is
//   ce_scale·(p − onehot(y)) + kl_scale·dD/ds      (forward KL: dD/ds = (p_τ − q)/τ)
// i.e. dL/ds for an upstream gradient of 1. row_ce/row_kl are the unweighted
// per-row CE and KL (0 for rows that do not count) in the accumulation dtype
// (float32; float64 for float64 inputs). grad_mode: 0 none (grad is an empty
// tensor), 1 a new tensor, 2 written over student (returned aliasing it).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace mentor_kd {
namespace kd {

enum GradMode : int64_t { kGradNone = 0, kGradNew = 1, kGradInplace = 2 };

// Kernel-side divergence ids (the values of kd::Divergence, minus Unset).
enum KernelDiv : int64_t { kDivFwd = 0, kDivRev = 1, kDivJsd = 2, kDivSkew = 3, kDivSkewRev = 4, kDivTvd = 5 };

// Per-row status codes written by the kernels; the host turns the first
// non-zero one into an error message (kd_op.cc).
enum RowStatus : int32_t {
  kOk = 0,
  kLabelOutOfRange = 1,
  kStudentNonFinite = 2,
  kMentorNonFinite = 3,
  kTopkIndexOutOfRange = 4,
  kTopkDuplicate = 5,
  kTopkBadLogprob = 6,  // NaN/+Inf, > 0, or Σ exp(logprobs) > 1 + 1e-3
  kBadRestMass = 7,     // rest_mass NaN or outside [0, 1]
};

// Tolerance for a top-k row's Σq above 1 (rounding of cached log-probs).
constexpr double kTopkMassTolerance = 1e-3;

}  // namespace kd
}  // namespace mentor_kd
