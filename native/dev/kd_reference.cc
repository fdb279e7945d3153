// Dev addon only: the KD loss's explicit-gradient forms and unfused references
// (moved out of kd_op.cc so the shipped addon carries none of them).
#include "dev/kd_reference.h"

#include <limits>

#include "kd/kd_internal.h"

namespace mentor_kd::kd {
using namespace detail;

KdForward kd_loss_forward(const at::Tensor& student, const at::Tensor& mentor, const at::Tensor& labels,
                          const KdOptions& o, bool want_grad) {
  at::NoGradGuard no_grad;
  return forward_full(student.detach(), mentor.detach(), labels, o, want_grad);
}

KdForward kd_loss_topk_forward(const at::Tensor& student, const TopK& t, const at::Tensor& labels, const KdOptions& o,
                               bool want_grad) {
  at::NoGradGuard no_grad;
  return forward_topk(student.detach(), t, labels, o, want_grad);
}

// ---- references ---------------------------------------------------------------------
namespace {
at::Tensor maybe_upcast(const at::Tensor& t, bool upcast) {
  return upcast && (t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf) ? t.to(at::kFloat) : t;
}

// CE part shared by both references: cross_entropy with the chosen reduction.
at::Tensor reference_ce(const at::Tensor& s, const at::Tensor& y, const KdOptions& o, const Dens& d) {
  at::Tensor ce_sum = at::nll_loss(at::log_softmax(s, 1), y, {}, at::Reduction::Sum, o.ignore_index);
  return ce_sum / d.ce.to(s.scalar_type());
}

at::Tensor reference_kl(const at::Tensor& kl_rows, const at::Tensor& y, const KdOptions& o, const Dens& d) {
  at::Tensor rows = kl_rows;
  if (o.reduction != Reduction::BatchMean) rows = rows * y.ne(o.ignore_index).to(rows.scalar_type());
  return rows.sum() / d.kl.to(rows.scalar_type());
}
}  // namespace

KdLoss kd_loss_reference(const at::Tensor& student, const at::Tensor& mentor, const at::Tensor& labels,
                         const KdOptions& o, bool upcast) {
  const char* op = "kd_loss_reference";
  check_options(op, o);
  check_student_labels(op, student, labels, "student_logits");
  check_mentor(op, student, mentor);
  const int64_t V = student.size(-1);
  at::Tensor s = maybe_upcast(student.reshape({-1, V}), upcast);
  at::Tensor m = maybe_upcast(mentor.reshape({-1, V}), upcast).detach();
  at::Tensor y = labels.reshape({-1}).to(at::kLong);
  Dens d = denominators(y, o, s.scalar_type());
  KdLoss r;
  r.ce = reference_ce(s, y, o, d);
  at::Tensor kl_rows = at::kl_div(at::log_softmax(s / o.tau, 1), at::softmax(m / o.tau, 1), at::Reduction::None).sum(1);
  r.kl = reference_kl(kl_rows, y, o, d);
  r.loss = r.ce * o.hard_weight + r.kl * kl_factor(o);
  r.ce = r.ce.detach();
  r.kl = r.kl.detach();
  return r;
}

KdLoss kd_loss_topk_reference(const at::Tensor& student, const TopK& t, const at::Tensor& labels, const KdOptions& o,
                              bool upcast) {
  const char* op = "kd_loss_topk_reference";
  check_options(op, o);
  check_student_labels(op, student, labels, "student_logits");
  const int64_t V = student.size(-1);
  at::Tensor s = maybe_upcast(student.reshape({-1, V}), upcast);
  const int64_t N = s.size(0);
  check_topk(op, student, t, N);
  at::Tensor y = labels.reshape({-1}).to(at::kLong);
  at::Tensor idx = t.indices.reshape({N, -1}).to(at::kLong);
  at::Tensor lp = t.logprobs.reshape({N, -1}).to(s.scalar_type()).detach();
  Dens d = denominators(y, o, s.scalar_type());
  KdLoss r;
  r.ce = reference_ce(s, y, o, d);
  at::Tensor lpt = at::log_softmax(s / o.tau, 1);
  at::Tensor valid = lp.ne(-std::numeric_limits<double>::infinity());
  at::Tensor safe_idx = idx.masked_fill(valid.logical_not(), 0);
  at::Tensor q = lp.exp();  // 0 for padding
  at::Tensor lpt_k = lpt.gather(1, safe_idx);
  at::Tensor kl_k = at::where(valid, q * (lp - lpt_k), at::zeros_like(lp)).sum(1);
  at::Tensor in_k =
      at::zeros({N, V}, s.options().requires_grad(false)).scatter_add(1, safe_idx, valid.to(s.scalar_type())).gt(0);
  at::Tensor has_tail = in_k.sum(1).lt(V);
  at::Tensor log_p_rest = lpt.masked_fill(in_k, -std::numeric_limits<double>::infinity()).logsumexp(1);
  at::Tensor rest =
      t.rest_mass.defined() ? t.rest_mass.reshape({N}).to(s.scalar_type()).detach() : (1 - q.sum(1)).clamp_min(0);
  rest = at::where(has_tail, rest, at::zeros_like(rest));
  at::Tensor pos = rest.gt(0);
  at::Tensor safe_rest = at::where(pos, rest, at::ones_like(rest));
  at::Tensor safe_lpr = at::where(pos, log_p_rest, at::zeros_like(log_p_rest));
  at::Tensor rest_term = at::where(pos, rest * (safe_rest.log() - safe_lpr), at::zeros_like(rest));
  r.kl = reference_kl(kl_k + rest_term, y, o, d);
  r.loss = r.ce * o.hard_weight + r.kl * kl_factor(o);
  r.ce = r.ce.detach();
  r.kl = r.kl.detach();
  return r;
}

}  // namespace mentor_kd::kd
