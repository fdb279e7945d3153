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

// D per row from log p and log q (the last dimension), straight from the definitions in
// kd_loss.h; `valid` (optional, bool like lp) marks the events that exist: the others
// contribute 0 (top-k padding, no rest bucket when k = V). log q may be -inf (a zero mentor
// probability) where marked valid.
at::Tensor reference_div(const at::Tensor& lp_in, const at::Tensor& lq_in, const at::Tensor& valid_in,
                         const KdOptions& o) {
  at::Tensor valid = valid_in.defined() ? valid_in : at::ones_like(lp_in, lp_in.options().dtype(at::kBool));
  const at::Tensor zero = at::zeros_like(lp_in);
  at::Tensor lp = at::where(valid, lp_in, zero);
  at::Tensor qpos = valid.logical_and(lq_in.gt(-std::numeric_limits<double>::infinity()));
  at::Tensor lq = at::where(qpos, lq_in, zero);
  at::Tensor p = lp.exp() * valid.to(lp.scalar_type());
  at::Tensor q = lq.exp() * qpos.to(lp.scalar_type());
  auto sum_where = [&](const at::Tensor& mask, const at::Tensor& x) { return at::where(mask, x, zero).sum(-1); };
  auto kl = [&](const at::Tensor& a, const at::Tensor& la, const at::Tensor& amask, const at::Tensor& lb) {
    return sum_where(amask, a * (la - lb));  // KL(a ‖ b) = Σ a (log a − log b)
  };
  Divergence d = o.divergence;
  if (d == Divergence::Jsd && o.beta == 0.0) d = Divergence::ForwardKl;  // TRL's convention
  if (d == Divergence::Jsd && o.beta == 1.0) d = Divergence::ReverseKl;
  // log(wa·a + wb·b) from log a, log b (a logsumexp, so a mixture stays exact where a or b
  // underflows, e.g. a −1e4 mask); log 0 = −inf for a zero weight or a zero q.
  const double ninf = -std::numeric_limits<double>::infinity();
  const at::Tensor lq_mix = at::where(qpos, lq, at::full_like(lq, ninf));
  auto lmix = [&](const at::Tensor& la, double wa, const at::Tensor& lb, double wb) {
    return at::stack({la + (wa > 0 ? std::log(wa) : ninf), lb + (wb > 0 ? std::log(wb) : ninf)}).logsumexp(0);
  };
  switch (d) {
    case Divergence::ForwardKl: return kl(q, lq, qpos, lp);
    case Divergence::ReverseKl: return kl(p, lp, valid, lq);
    case Divergence::Jsd: {
      at::Tensor lM = lmix(lq_mix, o.beta, lp, 1 - o.beta);  // M = β·q + (1−β)·p
      return kl(q, lq, qpos, lM) * o.beta + kl(p, lp, valid, lM) * (1 - o.beta);
    }
    case Divergence::SkewKl: return kl(q, lq, qpos, lmix(lq_mix, o.alpha, lp, 1 - o.alpha));
    case Divergence::SkewReverseKl: return kl(p, lp, valid, lmix(lp, o.alpha, lq_mix, 1 - o.alpha));
    case Divergence::Tvd: return sum_where(valid, (q - p).abs()) * 0.5;
    default: TORCH_CHECK(false, "kd reference: divergence not set");
  }
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
  at::Tensor kl_rows =
      o.divergence == Divergence::ForwardKl
          ? at::kl_div(at::log_softmax(s / o.tau, 1), at::softmax(m / o.tau, 1), at::Reduction::None).sum(1)
          : reference_div(at::log_softmax(s / o.tau, 1), at::log_softmax(m / o.tau, 1), at::Tensor(), o);
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
  if (o.divergence == Divergence::ForwardKl) {
    r.kl = reference_kl(kl_k + rest_term, y, o, d);
  } else {
    // The k+1 events: the top-k tokens (padding invalid) and the rest bucket (present when k < V).
    at::Tensor lp_all = at::cat({lpt_k, log_p_rest.unsqueeze(1)}, 1);
    at::Tensor lq_rest = at::where(rest.gt(0), at::where(rest.gt(0), rest, at::ones_like(rest)).log(),
                                   at::full_like(rest, -std::numeric_limits<double>::infinity()));
    at::Tensor lq_all = at::cat({at::where(valid, lp, at::zeros_like(lp)), lq_rest.unsqueeze(1)}, 1);
    at::Tensor valid_all = at::cat({valid, has_tail.unsqueeze(1)}, 1);
    r.kl = reference_kl(reference_div(lp_all, lq_all, valid_all, o), y, o, d);
  }
  r.loss = r.ce * o.hard_weight + r.kl * kl_factor(o);
  r.ce = r.ce.detach();
  r.kl = r.kl.detach();
  return r;
}

}  // namespace mentor_kd::kd
