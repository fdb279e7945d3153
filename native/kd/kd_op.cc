// The KD loss op: schema (TORCH_LIBRARY), input checks, reductions and the
// autograd wrappers. Kernels live in kd_loss_cpu.cc and kd_loss_cuda.cu and are
// reached through the dispatcher, so the same code serves both devices.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>
#include <sstream>

#include "kd/kd_common.h"
#include "kd/kd_internal.h"
#include "kd/kd_loss.h"

namespace mentor_kd {
namespace kd {

TORCH_LIBRARY(mentor_kd_loss, m) {
  m.def(
      "kd_rows(Tensor student, Tensor mentor, Tensor labels, Tensor scales, float tau, bool kl_all_rows, "
      "int ignore_index, int grad_mode, int divergence, float coef) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "kd_topk_rows(Tensor student, Tensor indices, Tensor logprobs, Tensor? rest_mass, Tensor labels, "
      "Tensor scales, float tau, bool kl_all_rows, int ignore_index, int grad_mode, int divergence, float coef) -> "
      "(Tensor, Tensor, Tensor, Tensor)");
}

// Internal helpers (kd/kd_internal.h): the dev addon's reference forms use the same checks.
namespace detail {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Rows = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The kernel's (divergence, coef): jsd at β = 0 / 1 is forward / reverse KL exactly (TRL's
// convention), a skew at α = 0 is its plain KL; so kernels see β, α strictly inside (0,1).
std::pair<int64_t, double> resolve_divergence(const KdOptions& o) {
  switch (o.divergence) {
    case Divergence::Jsd:
      if (o.beta == 0.0) return {kDivFwd, 0.0};
      if (o.beta == 1.0) return {kDivRev, 0.0};
      return {kDivJsd, o.beta};
    case Divergence::SkewKl:
      return o.alpha == 0.0 ? std::pair<int64_t, double>{kDivFwd, 0.0} : std::pair<int64_t, double>{kDivSkew, o.alpha};
    case Divergence::SkewReverseKl:
      return o.alpha == 0.0 ? std::pair<int64_t, double>{kDivRev, 0.0}
                            : std::pair<int64_t, double>{kDivSkewRev, o.alpha};
    default: return {static_cast<int64_t>(o.divergence), 0.0};
  }
}

Rows call_rows(const at::Tensor& s, const at::Tensor& m, const at::Tensor& y, const at::Tensor& scales,
               const KdOptions& o, bool kl_all, int64_t mode) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mentor_kd_loss::kd_rows", "")
                       .typed<Rows(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
                                   bool, int64_t, int64_t, int64_t, double)>();
  const auto dv = resolve_divergence(o);
  return op.call(s, m, y, scales, o.tau, kl_all, o.ignore_index, mode, dv.first, dv.second);
}

Rows call_topk_rows(const at::Tensor& s, const TopK& t, const at::Tensor& y, const at::Tensor& scales,
                    const KdOptions& o, bool kl_all, int64_t mode) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mentor_kd_loss::kd_topk_rows", "")
          .typed<Rows(const at::Tensor&, const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                      const at::Tensor&, const at::Tensor&, double, bool, int64_t, int64_t, int64_t, double)>();
  c10::optional<at::Tensor> rest;
  if (t.rest_mass.defined()) rest = t.rest_mass;
  const auto dv = resolve_divergence(o);
  return op.call(s, t.indices, t.logprobs, rest, y, scales, o.tau, kl_all, o.ignore_index, mode, dv.first, dv.second);
}

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

bool is_logit_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}

void check_options(const char* op, const KdOptions& o) {
  TORCH_CHECK(std::isfinite(o.tau) && o.tau > 0, op, ": tau must be a finite number > 0, got ", o.tau);
  // JS validates these (lib/config/train-settings.ts); here they are invariants.
  TORCH_CHECK(o.divergence >= Divergence::ForwardKl && o.divergence <= Divergence::Tvd, op,
              ": divergence must be set (forward-kl, reverse-kl, jsd, skew-kl, skew-reverse-kl or tvd)");
  if (o.divergence == Divergence::Jsd)
    TORCH_CHECK(o.beta >= 0.0 && o.beta <= 1.0, op, ": beta must be in [0, 1] for jsd, got ", o.beta);
  if (o.divergence == Divergence::SkewKl || o.divergence == Divergence::SkewReverseKl)
    TORCH_CHECK(o.alpha >= 0.0 && o.alpha < 1.0, op, ": alpha must be in [0, 1) for ", divergence_name(o.divergence),
                ", got ", o.alpha);
  TORCH_CHECK(std::isfinite(o.hard_weight) && std::isfinite(o.soft_weight), op,
              ": the CE/KL weights (1-lambda, lambda) must be finite, got ", o.hard_weight, " and ", o.soft_weight);
}

// Student [...,V] → [N,V], labels [...] → [N]; checks everything that can be
// checked without reading the data.
void check_student_labels(const char* op, const at::Tensor& student, const at::Tensor& labels, const char* sname) {
  TORCH_CHECK(student.defined(), op, ": ", sname, " is missing");
  TORCH_CHECK(labels.defined(), op, ": labels is missing");
  TORCH_CHECK(is_logit_dtype(student.scalar_type()), op, ": ", sname,
              " must be float32, bfloat16, float16 or float64, got ", student.scalar_type());
  TORCH_CHECK(student.dim() >= 2, op, ": ", sname, " must be [N,V] (or [...,V]), got shape ", shape_str(student));
  TORCH_CHECK(labels.scalar_type() == at::kLong || labels.scalar_type() == at::kInt, op,
              ": labels must be int32 or int64, got ", labels.scalar_type());
  TORCH_CHECK(
      labels.numel() * student.size(-1) == student.numel() && (labels.dim() == student.dim() - 1 || labels.dim() == 1),
      op, ": labels has shape ", shape_str(labels), " but ", sname, " has shape ", shape_str(student),
      " (labels must be [N] for ", sname, " [N,V])");
  TORCH_CHECK(labels.device() == student.device(), op, ": labels is on ", labels.device(), " but ", sname, " is on ",
              student.device());
}

void check_mentor(const char* op, const at::Tensor& student, const at::Tensor& mentor) {
  TORCH_CHECK(mentor.defined(), op, ": mentor_logits is missing");
  TORCH_CHECK(is_logit_dtype(mentor.scalar_type()), op,
              ": mentor_logits must be float32, bfloat16, float16 or float64, got ", mentor.scalar_type());
  TORCH_CHECK(mentor.dim() >= 1 && mentor.size(-1) == student.size(-1), op,
              ": mentor_logits has V=", mentor.dim() ? mentor.size(-1) : 0,
              " but student_logits has V=", student.size(-1));
  TORCH_CHECK(mentor.numel() == student.numel(), op, ": mentor_logits has shape ", shape_str(mentor),
              " but student_logits has shape ", shape_str(student));
  TORCH_CHECK(mentor.device() == student.device(), op, ": mentor_logits is on ", mentor.device(),
              " but student_logits is on ", student.device());
  TORCH_CHECK((student.scalar_type() == at::kDouble) == (mentor.scalar_type() == at::kDouble), op,
              ": float64 is supported only when student and mentor logits are both float64 (got ",
              student.scalar_type(), " and ", mentor.scalar_type(), ")");
}

void check_topk(const char* op, const at::Tensor& student, const TopK& t, int64_t N) {
  TORCH_CHECK(t.indices.defined() && t.logprobs.defined(), op, ": the top-k mentor needs indices and logprobs");
  TORCH_CHECK(t.indices.scalar_type() == at::kLong || t.indices.scalar_type() == at::kInt, op,
              ": topk indices must be int32 or int64, got ", t.indices.scalar_type());
  TORCH_CHECK(t.logprobs.scalar_type() == at::kFloat || t.logprobs.scalar_type() == at::kDouble ||
                  t.logprobs.scalar_type() == at::kBFloat16 || t.logprobs.scalar_type() == at::kHalf,
              op, ": topk logprobs must be a float tensor, got ", t.logprobs.scalar_type());
  int64_t rows = t.indices.dim() >= 2 ? 1 : -1;
  for (int64_t d = 0; d + 1 < t.indices.dim(); ++d) rows *= t.indices.size(d);
  TORCH_CHECK(rows == N, op, ": topk indices has shape ", shape_str(t.indices), " but student_logits has ", N,
              " rows (expected [N,k])");
  TORCH_CHECK(t.logprobs.sizes() == t.indices.sizes(), op, ": topk logprobs has shape ", shape_str(t.logprobs),
              " but topk indices has shape ", shape_str(t.indices));
  TORCH_CHECK(t.indices.size(-1) <= student.size(-1), op, ": top-k has k=", t.indices.size(-1),
              " but student_logits has V=", student.size(-1));
  if (t.rest_mass.defined())
    TORCH_CHECK(t.rest_mass.numel() == N && is_logit_dtype(t.rest_mass.scalar_type()), op,
                ": topk rest_mass must be a float tensor [N] (N=", N, "), got shape ", shape_str(t.rest_mass));
  for (const at::Tensor* x : {&t.indices, &t.logprobs, &t.rest_mass})
    if (x->defined())
      TORCH_CHECK(x->device() == student.device(), op, ": the top-k tensors must be on ", student.device());
}

Dens denominators(const at::Tensor& labels, const KdOptions& o, at::ScalarType acc) {
  const int64_t N = labels.numel();
  auto opts = labels.options().dtype(acc);
  if (o.reduction == Reduction::Sum) return {at::ones({}, opts), at::ones({}, opts)};
  at::Tensor count = labels.ne(o.ignore_index).sum().to(acc).clamp_min(1);
  if (o.reduction == Reduction::BatchMean)
    return {count, at::full({}, static_cast<double>(std::max<int64_t>(N, 1)), opts)};
  return {count, count};
}

double kl_factor(const KdOptions& o) { return o.soft_weight * (o.tau_squared ? o.tau * o.tau : 1.0); }

at::Tensor make_scales(const Dens& d, const KdOptions& o) {
  return at::stack({d.ce.reciprocal() * o.hard_weight, d.kl.reciprocal() * kl_factor(o)}).contiguous();
}

KdLoss assemble(const at::Tensor& row_ce, const at::Tensor& row_kl, const Dens& d, const KdOptions& o) {
  KdLoss r;
  r.ce = row_ce.sum() / d.ce;
  r.kl = row_kl.sum() / d.kl;
  r.loss = r.ce * o.hard_weight + r.kl * kl_factor(o);
  return r;
}

// Turns the first bad row into an error naming the tensor.
void check_status(const char* op, const at::Tensor& status_in, const at::Tensor& labels, int64_t V) {
  at::Tensor status = status_in.to(at::kCPU);
  at::Tensor bad = status.ne(0).nonzero();
  if (bad.numel() == 0) return;
  const int64_t row = bad[0][0].item<int64_t>();
  const int code = status[row].item<int>();
  std::ostringstream os;
  os << op << ": ";
  switch (code) {
    case kLabelOutOfRange:
      os << "labels[" << row << "] = " << labels.reshape({-1})[row].item<int64_t>() << " is outside [0, V=" << V
         << ") and is not ignore_index";
      break;
    case kStudentNonFinite: os << "student_logits row " << row << " contains NaN or Inf"; break;
    case kMentorNonFinite: os << "mentor_logits row " << row << " contains NaN or Inf"; break;
    case kTopkIndexOutOfRange: os << "topk indices row " << row << " has a token outside [0, V=" << V << ")"; break;
    case kTopkDuplicate: os << "topk indices row " << row << " repeats a token"; break;
    case kTopkBadLogprob:
      os << "topk logprobs row " << row << " has a NaN or positive log-prob, or its probabilities sum to more than 1";
      break;
    case kBadRestMass: os << "topk rest_mass[" << row << "] is NaN or outside [0, 1]"; break;
    default: os << "row " << row << " failed with status " << code;
  }
  // A status code for the one failure training reports instead of raising (non-finite student logits).
  if (code == kStudentNonFinite) throw NonFiniteLogits(os.str());
  TORCH_CHECK(false, os.str());
}

at::ScalarType acc_type(const at::Tensor& student) {
  return student.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

bool should_validate(const KdOptions& o, const at::Tensor& t) { return o.validate || t.device().is_cpu(); }

// ---- forward work shared by the autograd and explicit forms ------------------------
// Everything but the row kernel: flatten to [N, V], pick the gradient mode (in place only when
// the student's own buffer is the flat view), run the rows below autograd, validate, reduce.
template <typename RowKernel>
KdForward forward_rows(const char* op, const at::Tensor& student, const at::Tensor& labels, const KdOptions& o,
                       bool want_grad, RowKernel&& rows) {
  const int64_t V = student.size(-1);
  at::Tensor s = student.reshape({-1, V});
  at::Tensor y = labels.reshape({-1});
  int64_t mode = kGradNone;
  if (want_grad)
    mode = (o.inplace_grad && s.is_contiguous() && s.data_ptr() == student.data_ptr()) ? kGradInplace : kGradNew;
  Dens d = denominators(y, o, acc_type(s));
  at::Tensor row_ce, row_kl, status, grad;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(row_ce, row_kl, status, grad) = rows(s, y, make_scales(d, o), o.reduction == Reduction::BatchMean, mode);
  }
  if (should_validate(o, s)) check_status(op, status, y, V);
  KdForward f;
  f.parts = assemble(row_ce, row_kl, d, o);
  if (want_grad) f.grad = grad.view(student.sizes());
  return f;
}

KdForward forward_full(const at::Tensor& student, const at::Tensor& mentor, const at::Tensor& labels,
                       const KdOptions& o, bool want_grad) {
  const char* op = "kd_loss";
  check_options(op, o);
  check_student_labels(op, student, labels, "student_logits");
  check_mentor(op, student, mentor);
  const at::Tensor m = mentor.reshape({-1, student.size(-1)});
  return forward_rows(op, student, labels, o, want_grad,
                      [&](const at::Tensor& s, const at::Tensor& y, const at::Tensor& scales, bool batchmean,
                          int64_t mode) { return call_rows(s, m, y, scales, o, batchmean, mode); });
}

KdForward forward_topk(const at::Tensor& student, const TopK& t, const at::Tensor& labels, const KdOptions& o,
                       bool want_grad) {
  const char* op = "kd_loss_topk";
  check_options(op, o);
  check_student_labels(op, student, labels, "student_logits");
  const int64_t N = labels.numel();  // rows: checked above to be numel / V
  check_topk(op, student, t, N);
  const int64_t k = t.indices.size(-1);
  const TopK tk{t.indices.reshape({N, k}), t.logprobs.reshape({N, k}),
                t.rest_mass.defined() ? t.rest_mass.reshape({N}) : at::Tensor()};
  return forward_rows(op, student, labels, o, want_grad,
                      [&](const at::Tensor& s, const at::Tensor& y, const at::Tensor& scales, bool batchmean,
                          int64_t mode) { return call_topk_rows(s, tk, y, scales, o, batchmean, mode); });
}

// Hands the gradient computed in forward (for an upstream 1) to autograd,
// scaled by the real upstream scalar. The saved reference is dropped first, so
// the engine may adopt the tensor as a leaf's .grad instead of cloning N×V, and
// the scale (if not exactly 1) is applied in place on a buffer only we hold.
// Hence backward can run once per forward (no retain_graph through this op).
at::Tensor take_grad(AutogradContext* ctx, const std::string& key, const at::Tensor& go) {
  auto it = ctx->saved_data.find(key);
  if (it == ctx->saved_data.end()) {
    TORCH_CHECK(!ctx->saved_data.count(key + ".taken"),
                "kd_loss: backward ran twice through the fused KD loss; its gradient is computed once in forward "
                "and handed over (retain_graph is not supported)");
    return at::Tensor();
  }
  at::Tensor g = it->second.toTensor();
  ctx->saved_data.erase(it);
  ctx->saved_data[key + ".taken"] = true;
  if (!go.defined()) return at::Tensor();
  const double v = go.item<double>();  // a sync on CUDA, cheaper than a pass over N×V
  if (v != 1.0) g.mul_(v);
  return g;
}

// What both autograd functions keep from their forward: the gradient computed in the same pass
// (an in-place one bumps the student's version), and which outputs carry no gradient.
variable_list save_forward(AutogradContext* ctx, const KdForward& f, const at::Tensor& student, const KdOptions& o,
                           bool want_grad) {
  if (want_grad) {
    ctx->saved_data["grad"] = f.grad;
    if (o.inplace_grad && f.grad.data_ptr() == student.data_ptr()) torch::autograd::impl::bump_version(student);
  }
  ctx->mark_non_differentiable({f.parts.ce, f.parts.kl});
  return {f.parts.loss, f.parts.ce, f.parts.kl};
}

struct KdLossFn : public torch::autograd::Function<KdLossFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& student, const at::Tensor& mentor,
                               const at::Tensor& labels, KdOptions o, bool want_grad) {
    KdForward f = forward_full(student, mentor, labels, o, want_grad);
    return save_forward(ctx, f, student, o, want_grad);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {take_grad(ctx, "grad", grads[0]), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct KdTopkFn : public torch::autograd::Function<KdTopkFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& student, const at::Tensor& indices,
                               const at::Tensor& logprobs, const c10::optional<at::Tensor>& rest,
                               const at::Tensor& labels, KdOptions o, bool want_grad) {
    TopK t{indices, logprobs, rest.has_value() ? *rest : at::Tensor()};
    KdForward f = forward_topk(student, t, labels, o, want_grad);
    return save_forward(ctx, f, student, o, want_grad);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {take_grad(ctx, "grad", grads[0]),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

// ---- fused linear + KD ----------------------------------------------------------------
struct LinearOut {
  KdLoss parts;
  at::Tensor grad_hidden, grad_weight;
};

LinearOut forward_linear(const at::Tensor& hidden_in, const at::Tensor& weight, const at::Tensor& mentor_logits,
                         const TopK& topk, const at::Tensor& labels, const KdOptions& o, int64_t chunk_rows,
                         bool want_h, bool want_w) {
  const char* op = "kd_loss_linear";
  check_options(op, o);
  TORCH_CHECK(hidden_in.defined() && weight.defined(), op, ": hidden and weight are required");
  TORCH_CHECK(is_logit_dtype(hidden_in.scalar_type()) && hidden_in.scalar_type() == weight.scalar_type(), op,
              ": hidden and weight must share a float dtype, got ", hidden_in.scalar_type(), " and ",
              weight.scalar_type());
  TORCH_CHECK(hidden_in.dim() >= 2, op, ": hidden must be [N,d], got shape ", shape_str(hidden_in));
  TORCH_CHECK(weight.dim() == 2, op, ": weight (lm_head) must be [V,d], got shape ", shape_str(weight));
  TORCH_CHECK(weight.size(1) == hidden_in.size(-1), op, ": weight has d=", weight.size(1),
              " but hidden has d=", hidden_in.size(-1));
  TORCH_CHECK(weight.device() == hidden_in.device(), op, ": weight is on ", weight.device(), " but hidden is on ",
              hidden_in.device());
  TORCH_CHECK(chunk_rows >= 0, op, ": chunk_rows must be >= 0");
  const int64_t d = weight.size(1), V = weight.size(0);
  at::Tensor hidden = hidden_in.reshape({-1, d}).contiguous();
  const int64_t N = hidden.size(0);
  TORCH_CHECK(labels.defined() && (labels.scalar_type() == at::kLong || labels.scalar_type() == at::kInt), op,
              ": labels must be int32 or int64");
  TORCH_CHECK(labels.numel() == N, op, ": labels has ", labels.numel(), " entries but hidden has ", N, " rows");
  TORCH_CHECK(labels.device() == hidden.device(), op, ": labels is on ", labels.device(), " but hidden is on ",
              hidden.device());
  at::Tensor y = labels.reshape({-1});
  const bool use_topk = !mentor_logits.defined();
  // Shape checks against a [N,V] stand-in for the logits that are never made.
  at::Tensor meta = at::empty({1}, hidden.options()).expand({N, V});
  at::Tensor m;
  TopK tk;
  if (use_topk) {
    check_topk(op, meta, topk, N);
    const int64_t k = topk.indices.size(-1);
    tk = TopK{topk.indices.reshape({N, k}), topk.logprobs.reshape({N, k}),
              topk.rest_mass.defined() ? topk.rest_mass.reshape({N}) : at::Tensor()};
  } else {
    check_mentor(op, meta, mentor_logits);
    m = mentor_logits.reshape({N, V}).contiguous();
  }

  const at::ScalarType acc = acc_type(hidden);
  Dens dens = denominators(y, o, acc);
  at::Tensor scales = make_scales(dens, o);
  const bool want = want_h || want_w;
  if (chunk_rows == 0)
    chunk_rows = std::max<int64_t>(1, (int64_t(32) << 20) / std::max<int64_t>(1, V * hidden.element_size()));
  chunk_rows = std::min(chunk_rows, std::max<int64_t>(N, 1));

  LinearOut out;
  at::Tensor row_ce = at::empty({N}, hidden.options().dtype(acc));
  at::Tensor row_kl = at::empty({N}, hidden.options().dtype(acc));
  at::Tensor status = at::empty({N}, hidden.options().dtype(at::kInt));
  if (want_h) out.grad_hidden = at::empty_like(hidden);
  at::Tensor gw_acc;
  if (want_w) gw_acc = at::zeros({V, d}, weight.options().dtype(acc));
  at::Tensor buf = at::empty({chunk_rows, V}, hidden.options());  // one chunk's logits, then its gradient
  at::Tensor wt = weight.t();
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    for (int64_t start = 0; start < N; start += chunk_rows) {
      const int64_t n = std::min(chunk_rows, N - start);
      at::Tensor h = hidden.narrow(0, start, n);
      at::Tensor logits = buf.narrow(0, 0, n);
      at::mm_out(logits, h, wt);
      at::Tensor yc = y.narrow(0, start, n);
      at::Tensor ce, kl, st, g;
      const int64_t mode = want ? kGradInplace : kGradNone;
      if (use_topk) {
        TopK c{tk.indices.narrow(0, start, n), tk.logprobs.narrow(0, start, n),
               tk.rest_mass.defined() ? tk.rest_mass.narrow(0, start, n) : at::Tensor()};
        std::tie(ce, kl, st, g) = call_topk_rows(logits, c, yc, scales, o, o.reduction == Reduction::BatchMean, mode);
      } else {
        std::tie(ce, kl, st, g) =
            call_rows(logits, m.narrow(0, start, n), yc, scales, o, o.reduction == Reduction::BatchMean, mode);
      }
      row_ce.narrow(0, start, n).copy_(ce);
      row_kl.narrow(0, start, n).copy_(kl);
      status.narrow(0, start, n).copy_(st);
      if (want) {
        if (want_h) {
          at::Tensor gh = out.grad_hidden.narrow(0, start, n);
          at::mm_out(gh, logits, weight);
        }
        if (want_w) {
          if (gw_acc.scalar_type() == logits.scalar_type())
            gw_acc.addmm_(logits.t(), h);
          else
            gw_acc.add_(at::mm(logits.t(), h));
        }
      }
    }
  }
  if (should_validate(o, hidden)) check_status(op, status, y, V);
  out.parts = assemble(row_ce, row_kl, dens, o);
  if (want_h) out.grad_hidden = out.grad_hidden.view(hidden_in.sizes());
  if (want_w) out.grad_weight = gw_acc.scalar_type() == weight.scalar_type() ? gw_acc : gw_acc.to(weight.scalar_type());
  return out;
}

struct KdLinearFn : public torch::autograd::Function<KdLinearFn> {
  // Optional tensors as c10::optional: undefined ones must not become graph inputs.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const c10::optional<at::Tensor>& mentor_logits, const c10::optional<at::Tensor>& indices,
                               const c10::optional<at::Tensor>& logprobs, const c10::optional<at::Tensor>& rest,
                               const at::Tensor& labels, KdOptions o, int64_t chunk_rows, bool want_h, bool want_w) {
    auto get = [](const c10::optional<at::Tensor>& x) { return x.has_value() ? *x : at::Tensor(); };
    LinearOut r = forward_linear(hidden, weight, get(mentor_logits), TopK{get(indices), get(logprobs), get(rest)},
                                 labels, o, chunk_rows, want_h, want_w);
    if (want_h) ctx->saved_data["gh"] = r.grad_hidden;
    if (want_w) ctx->saved_data["gw"] = r.grad_weight;
    ctx->mark_non_differentiable({r.parts.ce, r.parts.kl});
    return {r.parts.loss, r.parts.ce, r.parts.kl};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor gh = take_grad(ctx, "gh", grads[0]), gw = take_grad(ctx, "gw", grads[0]);
    return {gh,           gw,           at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

KdLoss from_outputs(const variable_list& v) { return KdLoss{v[0], v[1], v[2]}; }

bool grad_wanted(const at::Tensor& t) { return t.defined() && t.requires_grad() && at::GradMode::is_enabled(); }

}  // namespace detail
using namespace detail;

Reduction reduction_from_name(const std::string& name) {
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  if (name == "batchmean") return Reduction::BatchMean;
  TORCH_CHECK(false, "kd_loss: unknown reduction '", name, "' (expected mean, sum or batchmean)");
}

Divergence divergence_from_name(const std::string& name) {
  if (name == "forward-kl") return Divergence::ForwardKl;
  if (name == "reverse-kl") return Divergence::ReverseKl;
  if (name == "jsd") return Divergence::Jsd;
  if (name == "skew-kl") return Divergence::SkewKl;
  if (name == "skew-reverse-kl") return Divergence::SkewReverseKl;
  if (name == "tvd") return Divergence::Tvd;
  TORCH_CHECK(false,
              "kd_loss: divergence must be one of forward-kl, reverse-kl, jsd, skew-kl, skew-reverse-kl, tvd; got '",
              name, "'");
}

const char* divergence_name(Divergence d) {
  switch (d) {
    case Divergence::ForwardKl: return "forward-kl";
    case Divergence::ReverseKl: return "reverse-kl";
    case Divergence::Jsd: return "jsd";
    case Divergence::SkewKl: return "skew-kl";
    case Divergence::SkewReverseKl: return "skew-reverse-kl";
    case Divergence::Tvd: return "tvd";
    case Divergence::Unset: break;
  }
  return "unset";
}

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::Mean: return "mean";
    case Reduction::Sum: return "sum";
    case Reduction::BatchMean: return "batchmean";
  }
  return "?";
}

// No mentor: an empty top-k (k = 0). Its rest bucket is r = 1 against P_rest = 1,
// so KL = 0 and its gradient is exactly 0: the op is plain cross-entropy.
TopK no_mentor(const at::Tensor& like, int64_t N) {
  return TopK{at::empty({N, 0}, like.options().dtype(at::kLong)), at::empty({N, 0}, like.options().dtype(at::kFloat)),
              at::Tensor()};
}

KdLoss kd_loss(const at::Tensor& student, const at::Tensor& mentor, const at::Tensor& labels, const KdOptions& o) {
  if (!mentor.defined() && student.defined() && labels.defined())
    return kd_loss_topk(student, no_mentor(student, labels.numel()), labels, o);
  const bool want = grad_wanted(student);
  // The mentor is a constant: detach so no graph reaches it.
  return from_outputs(KdLossFn::apply(student, mentor.defined() ? mentor.detach() : mentor, labels, o, want));
}

KdLoss kd_loss_topk(const at::Tensor& student, const TopK& t, const at::Tensor& labels, const KdOptions& o) {
  const bool want = grad_wanted(student);
  c10::optional<at::Tensor> rest;
  if (t.rest_mass.defined()) rest = t.rest_mass.detach();
  return from_outputs(KdTopkFn::apply(student, t.indices, t.logprobs.defined() ? t.logprobs.detach() : t.logprobs, rest,
                                      labels, o, want));
}

KdLoss kd_loss_linear(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& mentor_logits,
                      const TopK& t, const at::Tensor& labels, const KdOptions& o, int64_t chunk_rows) {
  const bool want_h = grad_wanted(hidden), want_w = grad_wanted(weight);
  TORCH_CHECK(!(mentor_logits.defined() && t.indices.defined()),
              "kd_loss_linear: give the mentor either as logits or as top-k, not both");
  auto det = [](const at::Tensor& x) -> c10::optional<at::Tensor> {
    if (!x.defined()) return c10::nullopt;
    return x.detach();
  };
  TopK tk = t;
  if (!mentor_logits.defined() && !t.indices.defined() && hidden.defined() && labels.defined())
    tk = no_mentor(hidden, labels.numel());
  return from_outputs(KdLinearFn::apply(hidden, weight, det(mentor_logits), det(tk.indices), det(tk.logprobs),
                                        det(tk.rest_mass), labels, o, chunk_rows, want_h, want_w));
}

TopK topk_soft_labels(const at::Tensor& mentor_logits, int64_t k, double tau) {
  TORCH_CHECK(mentor_logits.defined() && mentor_logits.dim() >= 1, "topk_soft_labels: mentor_logits must be [N,V]");
  TORCH_CHECK(std::isfinite(tau) && tau > 0, "topk_soft_labels: tau must be a finite number > 0, got ", tau);
  const int64_t V = mentor_logits.size(-1);
  TORCH_CHECK(k >= 1 && k <= V, "topk_soft_labels: k must be in [1, V=", V, "], got ", k);
  at::NoGradGuard no_grad;
  at::Tensor m = mentor_logits.reshape({-1, V});
  at::Tensor lp = at::log_softmax(m.to(m.scalar_type() == at::kDouble ? at::kDouble : at::kFloat) / tau, 1);
  auto top = lp.topk(k, 1);
  TopK t;
  t.logprobs = std::get<0>(top).contiguous();
  t.indices = std::get<1>(top).contiguous();
  // Rest mass from the tokens themselves (not 1 − Σq, which cancels when the top-k holds nearly everything).
  t.rest_mass = lp.scatter(1, t.indices, -std::numeric_limits<double>::infinity()).logsumexp(1).exp();
  return t;
}

}  // namespace kd
}  // namespace mentor_kd
