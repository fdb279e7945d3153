// Fused soft-label knowledge-distillation loss (Mentor-KD, issues 3 and 14).
//
//   L = w_hard · CE(s, y) + w_soft · c · D(q, p_τ)
//   p_τ = softmax(s/τ)  (student),  q = softmax(m/τ)  (mentor),  c = τ² if tau_squared else 1
//
// D is the divergence chosen by opts.divergence (Divergence below):
//   forward-kl       KL(q ‖ p)                       (the paper's; Hinton)
//   reverse-kl       KL(p ‖ q)
//   jsd(β)           β·KL(q ‖ M) + (1−β)·KL(p ‖ M),  M = β·q + (1−β)·p  (GKD's generalized JSD);
//                    β = 0 is taken as forward-kl and β = 1 as reverse-kl EXACTLY, as TRL's
//                    GKDTrainer.generalized_jsd_loss does (its beta == 0 branch is
//                    kl_div(student_lp, teacher_lp) = KL(q‖p), beta == 1 is KL(p‖q)); the JSD
//                    itself tends to 0 at both ends, so this is a convention, not a limit.
//   skew-kl(α)       KL(q ‖ α·q + (1−α)·p), α ∈ [0,1) (DistiLLM); α = 0 is forward-kl
//   skew-reverse-kl(α) KL(p ‖ α·p + (1−α)·q); α = 0 is reverse-kl
//   tvd              ½ Σ |q − p|
// KdLoss::kl holds D (the name is kept from the forward-KL-only op).
//
// with w_hard = 1-λ and w_soft = λ (the callers pass λ and τ: the library
// defaults live in TypeScript, lib/kd), no τ² unless asked, and the mean over
// target positions unless another reduction is asked. The KL is summed over the
// vocabulary at every row. Rows whose label is ignore_index (-100) take no part
// in CE; whether they take part in KL depends on the reduction:
//
//   Mean      CE and KL averaged over the non-ignored rows (default).
//   Sum       CE and KL summed over the non-ignored rows.
//   BatchMean CE averaged over the non-ignored rows; KL summed over *all* rows
//             and divided by N — F.kl_div(..., reduction="batchmean") on the
//             flattened [N,V] logits, as the official code does.
//   If no row is left (all ignored), that part is 0 (not NaN) and so is its
//   gradient.
//
// Every entry point computes the loss and dL/d(student logits) in one kernel
// (online max/sum over a row, then the gradient written while the row is still
// in cache), so backward is a multiply by the upstream scalar. Accumulation is
// fp32 (fp64 for fp64 inputs). Inputs: student [N,V] and mentor [N,V] in any of
// float32/bfloat16/float16 (they may differ), or both float64 (for gradcheck);
// labels [N] int32/int64. Leading dimensions are flattened ([B,L,V] with
// labels [B,L] is fine). CPU and CUDA kernels are registered for one op
// (TORCH_LIBRARY(mentor_kd_loss)); the functions below are autograd-aware.
//
// Bad input (shapes, V mismatch, labels outside [0,V), τ ≤ 0, NaN/Inf logits,
// malformed top-k) throws c10::Error naming the tensor, e.g.
// "kd_loss: mentor_logits has V=100 but student_logits has V=101".
// Logits must be finite: mask vocabulary entries with a large negative finite
// value (e.g. -1e4), not -inf.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>

namespace mentor_kd {
namespace kd {

enum class Reduction : int64_t { Mean = 0, Sum = 1, BatchMean = 2 };

// The divergence D. Unset is not a valid choice: every caller sets it (check_options asserts;
// the library default, forward-kl, lives in TypeScript).
enum class Divergence : int64_t {
  ForwardKl = 0,
  ReverseKl = 1,
  Jsd = 2,
  SkewKl = 3,
  SkewReverseKl = 4,
  Tvd = 5,
  Unset = -1
};
// forward-kl | reverse-kl | jsd | skew-kl | skew-reverse-kl | tvd (throws naming 'divergence' otherwise)
Divergence divergence_from_name(const std::string& name);
const char* divergence_name(Divergence d);
Reduction reduction_from_name(const std::string& name);  // mean|sum|batchmean
const char* reduction_name(Reduction r);

// No defaults for τ and the weights: every caller sets them (check_options rejects NaN).
struct KdOptions {
  double tau = std::numeric_limits<double>::quiet_NaN();
  double hard_weight = std::numeric_limits<double>::quiet_NaN();  // 1 - λ
  double soft_weight = std::numeric_limits<double>::quiet_NaN();  // λ
  Reduction reduction = Reduction::Mean;
  Divergence divergence = Divergence::Unset;
  // jsd's β ∈ [0,1]; skew-kl's and skew-reverse-kl's α ∈ [0,1). Read only by those divergences
  // (check_options asserts the range there); NaN otherwise is fine.
  double beta = std::numeric_limits<double>::quiet_NaN();
  double alpha = std::numeric_limits<double>::quiet_NaN();
  bool tau_squared = false;  // Hinton's τ² on the KL term; off in the paper's code
  int64_t ignore_index = -100;
  // Write dL/ds over the student logits' storage instead of a new N×V tensor.
  // The logits' contents are gone afterwards (their version counter is bumped,
  // so autograd refuses a graph that still needed them). Use it when the
  // logits come straight from a matmul (lm_head), whose backward does not.
  // After an error the logits' contents are unspecified.
  bool inplace_grad = false;
  // CUDA only: check the per-row status (labels, NaN) after the kernel, which
  // costs one device sync. Always done on CPU, where it is free.
  bool validate = true;

  // (1-λ)·CE + λ·D, as in the paper (which uses forward-kl).
  static KdOptions with_lambda(double lambda, double tau, Divergence divergence) {
    KdOptions o;
    o.divergence = divergence;
    o.tau = tau;
    o.hard_weight = 1.0 - lambda;
    o.soft_weight = lambda;
    return o;
  }
};

// loss = hard_weight·ce + soft_weight·(τ² if tau_squared)·kl. All three are
// 0-dim float32 tensors (float64 for float64 inputs); ce and kl are for
// logging and carry no gradient.
struct KdLoss {
  at::Tensor loss, ce, kl;
};

// Thrown (a c10::Error, with the usual message naming the row) when the
// student's logits hold NaN/Inf, so a trainer can tell a diverged student
// from bad input by type rather than by message text.
class NonFiniteLogits : public c10::Error {
 public:
  explicit NonFiniteLogits(std::string msg)
      : c10::Error(c10::SourceLocation{"kd_loss", __FILE__, static_cast<uint32_t>(__LINE__)}, std::move(msg)) {}
};

// Mentor soft labels as top-k per row, e.g. cached on disk instead of keeping
// the mentor in memory:
//   indices   [N,k] int32/int64, distinct tokens per row (entries whose
//             log-prob is -inf are padding and skipped);
//   logprobs  [N,k] float32/float64, log q at those tokens, where
//             q = softmax(mentor_logits / τ) AT THE SAME τ as the loss;
//   rest_mass [N] (optional, undefined = 1 - Σ exp(logprobs), clamped at 0):
//             the mentor's probability outside the top-k.
// Tail: the rest mass is one "rest" bucket compared with the student's rest
// mass P_rest = Σ_{j∉K} p_τ,j, i.e. the KL over the k+1 events
//   KL = Σ_{j∈K} q_j (log q_j − log p_τ,j) + r (log r − log P_rest)
// (nothing is assumed about the shape of the tail). Its gradient w.r.t. s_j is
// (M·p_τ,j − q_j)/τ for j∈K and p_τ,j·(M − r/P_rest)/τ for j∉K, M = Σ_K q + r
// (1 for a normalised mentor; the exact derivative is kept when a cache's
// rounding makes it differ). With k = V there is no tail (r is taken as 0) and
// this is the full op.
struct TopK {
  at::Tensor indices, logprobs, rest_mass;
};

// Builds top-k soft labels at temperature τ from full mentor logits (the
// cache's writer side): indices int64, logprobs float32, rest_mass float32.
TopK topk_soft_labels(const at::Tensor& mentor_logits, int64_t k, double tau);

// ---- autograd-aware losses ------------------------------------------------
// The gradient is computed in the forward pass only when the student (or, for
// the linear variant, hidden/weight) requires grad and grad mode is on, and
// handed to autograd in backward (so backward runs once per forward: no
// retain_graph through these). Without a mentor (undefined mentor_logits and,
// for the linear variant, no top-k either) the loss is plain cross-entropy
// (weighted by hard_weight; kl = 0, no mentor work).
KdLoss kd_loss(const at::Tensor& student_logits, const at::Tensor& mentor_logits, const at::Tensor& labels,
               const KdOptions& opts);
KdLoss kd_loss_topk(const at::Tensor& student_logits, const TopK& mentor, const at::Tensor& labels,
                    const KdOptions& opts);

// Fused linear + KD: student logits = hidden [N,d] @ weight[V,d]ᵀ are never
// materialised whole; rows are processed in chunks of `chunk_rows` (0 = pick
// so one chunk's logits are ~32 MiB), each chunk's logits turned into its loss
// and gradient in place, and grad_hidden / grad_weight accumulated (grad_weight
// in fp32). The mentor side is either full logits [N,V] (mentor_logits
// defined) or top-k (mentor_topk.indices defined). opts.inplace_grad is
// irrelevant here (the chunk buffer is always reused).
KdLoss kd_loss_linear(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& mentor_logits,
                      const TopK& mentor_topk, const at::Tensor& labels, const KdOptions& opts, int64_t chunk_rows = 0);

// The loss parts and, when wanted, dL/d(student logits) for an upstream gradient of 1 (the
// explicit-gradient forms of the dev addon, native/dev/kd_reference.h, return this).
struct KdForward {
  KdLoss parts;
  at::Tensor grad;
};

// Which CPU kernel set runs: "avx512", "avx2", "sse2" (chosen at load from the
// CPU; set_cpu_isa overrides it: runtime.configure({kdIsa}) from
// MENTOR_KD_KD_ISA, and the dev addon's setKdIsa for tests).
std::string cpu_isa();
void set_cpu_isa(const std::string& name);  // "auto" re-detects

}  // namespace kd
}  // namespace mentor_kd
