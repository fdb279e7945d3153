// kd: the fused KD loss for TypeScript (lib/kd/). The dev addon's dev.kd* calls
// (native/dev/dev_binding.cc) go through the same code with their test options.
// λ and τ come from JS on every call (lib/kd supplies the library defaults).
// Every call is asynchronous (PromiseWorker): inputs are copied from JS on the
// main thread, the loss (and backward) runs on a pool thread, results are
// converted back on the main thread.
#include <napi.h>

#include <memory>
#include <string>

#include "bindings/kd_binding.h"
#include "kd/kd_loss.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {
namespace {

using kd::KdOptions;

struct CallOpts {
  KdOptions ko;
  bool return_grad = true;
  std::string impl = "fused";  // dev: fused | explicit | reference (| kd for the linear variant)
  at::ScalarType student_dtype = at::kFloat, mentor_dtype = at::kFloat;
  bool student_dtype_set = false, mentor_dtype_set = false;
  at::Device device = at::Device(at::kCPU);
  int64_t chunk_rows = 0;
  double upstream = 1.0;  // dL_total/dL fed to backward (tests the scaling of the saved gradient)
};

double required_number(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber())
    throw std::invalid_argument(std::string("kd: option '") + key +
                                "' is required (a number; lib/kd supplies the default)");
  return v.As<Napi::Number>().DoubleValue();
}

CallOpts parse_opts(const Napi::Value& v, bool dev) {
  CallOpts c;
  if (!v.IsObject()) throw std::invalid_argument("kd: options must be an object with lambda and tau");
  Napi::Object o = v.As<Napi::Object>();
  if (!dev)
    for (const char* k : {"impl", "upstream"})
      if (!o.Get(k).IsUndefined())
        throw std::invalid_argument(std::string("kd: option '") + k + "' is test-only (the dev addon's dev.kd* calls)");
  const double lambda = required_number(o, "lambda");
  c.ko.tau = required_number(o, "tau");
  // divergence (and β, α) are required too: lib/kd fills in KD_DEFAULTS; JS validates, the op asserts.
  Napi::Value div = o.Get("divergence");
  if (!div.IsString())
    throw std::invalid_argument("kd: option 'divergence' is required (a string; lib/kd supplies the default)");
  try {
    c.ko.divergence = kd::divergence_from_name(div.As<Napi::String>().Utf8Value());
  } catch (const c10::Error&) {
    throw std::invalid_argument(
        "kd: option 'divergence' must be one of forward-kl, reverse-kl, jsd, skew-kl, "
        "skew-reverse-kl, tvd, got '" +
        div.As<Napi::String>().Utf8Value() + "'");
  }
  c.ko.beta = required_number(o, "beta");
  c.ko.alpha = required_number(o, "alpha");
  c.ko.hard_weight = get_number(o, "hardWeight", 1.0 - lambda);
  c.ko.soft_weight = get_number(o, "softWeight", lambda);
  c.ko.reduction = kd::reduction_from_name(get_string(o, "reduction", "mean"));
  c.ko.tau_squared = get_bool(o, "tauSquared", false);
  const double ignore = get_number(o, "ignoreIndex", -100);
  if (ignore != static_cast<double>(static_cast<int64_t>(ignore)))
    throw std::invalid_argument("kd: option 'ignoreIndex' must be an integer");
  c.ko.ignore_index = static_cast<int64_t>(ignore);
  c.ko.inplace_grad = get_bool(o, "inplaceGrad", false);
  c.ko.validate = get_bool(o, "validate", true);
  c.return_grad = get_bool(o, "returnGrad", true);
  if (dev) c.impl = get_string(o, "impl", "fused");
  std::string sd = get_string(o, "studentDtype", get_string(o, "dtype", ""));
  if (!sd.empty()) {
    c.student_dtype = dtype_from_name(sd);
    c.student_dtype_set = true;
  }
  std::string md = get_string(o, "mentorDtype", "");
  if (!md.empty()) {
    c.mentor_dtype = dtype_from_name(md);
    c.mentor_dtype_set = true;
  }
  c.device = device_from_name(get_string(o, "device", "cpu"));
  const double chunk = get_number(o, "chunkRows", 0);
  if (chunk < 0 || chunk != static_cast<double>(static_cast<int64_t>(chunk)))
    throw std::invalid_argument("kd: option 'chunkRows' must be a non-negative integer");
  c.chunk_rows = static_cast<int64_t>(chunk);
  if (dev) c.upstream = get_number(o, "upstream", 1.0);
  return c;
}

// A float tensor from JS in the requested dtype (float64 data stays float64 unless a dtype is given).
at::Tensor float_input(const Napi::Value& v, const std::string& what, bool set, at::ScalarType dt) {
  at::Tensor t = tensor_from_js(v, what);
  if (!at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument(what + ".data must be a Float32Array or Float64Array");
  return set ? t.to(dt) : t;
}

at::Tensor index_input(const Napi::Value& v, const std::string& what) {
  at::Tensor t = tensor_from_js(v, what);
  if (t.scalar_type() != at::kInt && t.scalar_type() != at::kLong)
    throw std::invalid_argument(what + ".data must be an Int32Array or BigInt64Array");
  return t;
}

struct LossResult {
  kd::KdLoss parts;
  at::Tensor grad, grad_hidden, grad_weight;
};

Napi::Object loss_to_js(Napi::Env env, const LossResult& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", r.parts.loss.item<double>());
  out.Set("ce", r.parts.ce.item<double>());
  out.Set("kl", r.parts.kl.item<double>());
  if (r.grad.defined()) out.Set("grad", tensor_to_js(env, r.grad));
  if (r.grad_hidden.defined()) out.Set("gradHidden", tensor_to_js(env, r.grad_hidden));
  if (r.grad_weight.defined()) out.Set("gradWeight", tensor_to_js(env, r.grad_weight));
  return out;
}

// Runs `loss_fn(student)` through autograd (or, dev only, the explicit form) and collects dL/ds.
template <class AutogradFn, class ExplicitFn>
void run_student_loss(const CallOpts& c, at::Tensor s, LossResult& r, AutogradFn&& autograd_fn,
                      ExplicitFn&& explicit_fn) {
  if (c.impl == "explicit") {
    kd::KdForward f = explicit_fn(s, c.return_grad);
    r.parts = f.parts;
    if (c.return_grad) r.grad = f.grad.to(at::kCPU);
    return;
  }
  if (c.impl != "fused" && c.impl != "reference")
    throw std::invalid_argument("kd: option 'impl' must be fused, explicit or reference, got '" + c.impl + "'");
  at::AutoGradMode grad_on(true);
  if (c.return_grad) s.requires_grad_(true);
  r.parts = autograd_fn(s);
  if (c.return_grad) {
    r.parts.loss.backward(at::full({}, c.upstream, r.parts.loss.options()));
    r.grad = s.grad().to(at::kCPU);
  }
  r.parts.loss = r.parts.loss.detach();
}

}  // namespace

Napi::Value KdLossCall(const Napi::CallbackInfo& info, const KdDevImpls* dev) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    CallOpts c = parse_opts(info[3], dev != nullptr);
    at::Tensor s = float_input(info[0], "studentLogits", c.student_dtype_set, c.student_dtype);
    at::Tensor m = float_input(info[1], "mentorLogits", c.mentor_dtype_set || c.student_dtype_set,
                               c.mentor_dtype_set ? c.mentor_dtype : c.student_dtype);
    at::Tensor y = index_input(info[2], "labels");
    auto r = std::make_shared<LossResult>();
    auto work = [c, s, m, y, r, dev]() mutable {
      s = s.to(c.device);
      m = m.to(c.device);
      y = y.to(c.device);
      run_student_loss(
          c, s, *r,
          [&](const at::Tensor& x) {
            return c.impl == "reference" ? dev->loss_reference(x, m, y, c.ko) : kd::kd_loss(x, m, y, c.ko);
          },
          [&](const at::Tensor& x, bool want) { return dev->loss_explicit(x, m, y, c.ko, want); });
    };
    return PromiseWorker::Queue(env, Napi::Object(), work,
                                [r](Napi::Env e) -> Napi::Value { return loss_to_js(e, *r); });
  });
}

namespace {
kd::TopK topk_input(const Napi::Value& v) {
  if (!v.IsObject()) throw std::invalid_argument("kd: topk must be an object {indices, logprobs, restMass?}");
  Napi::Object o = v.As<Napi::Object>();
  kd::TopK t;
  t.indices = index_input(o.Get("indices"), "topk.indices");
  t.logprobs = float_input(o.Get("logprobs"), "topk.logprobs", false, at::kFloat);
  Napi::Value rest = o.Get("restMass");
  if (!rest.IsUndefined() && !rest.IsNull()) t.rest_mass = float_input(rest, "topk.restMass", false, at::kFloat);
  return t;
}

kd::TopK topk_to(const kd::TopK& t, at::Device d) {
  return kd::TopK{t.indices.to(d), t.logprobs.to(d), t.rest_mass.defined() ? t.rest_mass.to(d) : at::Tensor()};
}
}  // namespace

Napi::Value KdTopkCall(const Napi::CallbackInfo& info, const KdDevImpls* dev) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    CallOpts c = parse_opts(info[3], dev != nullptr);
    at::Tensor s = float_input(info[0], "studentLogits", c.student_dtype_set, c.student_dtype);
    kd::TopK t = topk_input(info[1]);
    at::Tensor y = index_input(info[2], "labels");
    auto r = std::make_shared<LossResult>();
    auto work = [c, s, t, y, r, dev]() mutable {
      s = s.to(c.device);
      t = topk_to(t, c.device);
      y = y.to(c.device);
      run_student_loss(
          c, s, *r,
          [&](const at::Tensor& x) {
            return c.impl == "reference" ? dev->topk_reference(x, t, y, c.ko) : kd::kd_loss_topk(x, t, y, c.ko);
          },
          [&](const at::Tensor& x, bool want) { return dev->topk_explicit(x, t, y, c.ko, want); });
    };
    return PromiseWorker::Queue(env, Napi::Object(), work,
                                [r](Napi::Env e) -> Napi::Value { return loss_to_js(e, *r); });
  });
}

// kd.linear(hidden, weight, {logits} | {topk} | {}, labels, opts). Dev impl: fused (default),
// kd (logits = hidden·Wᵀ then the fused loss, in place), reference (matmul + unfused).
Napi::Value KdLinearCall(const Napi::CallbackInfo& info, const KdDevImpls* dev) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    CallOpts c = parse_opts(info[4], dev != nullptr);
    at::Tensor h = float_input(info[0], "hidden", c.student_dtype_set, c.student_dtype);
    at::Tensor w = float_input(info[1], "weight", c.student_dtype_set, c.student_dtype);
    if (!info[2].IsObject()) throw std::invalid_argument("kd.linear: mentor must be {logits} or {topk}");
    Napi::Object mo = info[2].As<Napi::Object>();
    at::Tensor ml;
    kd::TopK t;
    if (!mo.Get("logits").IsUndefined())
      ml = float_input(mo.Get("logits"), "mentor.logits", c.mentor_dtype_set || c.student_dtype_set,
                       c.mentor_dtype_set ? c.mentor_dtype : c.student_dtype);
    if (!mo.Get("topk").IsUndefined()) t = topk_input(mo.Get("topk"));
    at::Tensor y = index_input(info[3], "labels");
    auto r = std::make_shared<LossResult>();
    auto work = [c, h, w, ml, t, y, r, dev]() mutable {
      h = h.to(c.device);
      w = w.to(c.device);
      if (ml.defined()) ml = ml.to(c.device);
      if (t.indices.defined()) t = topk_to(t, c.device);
      y = y.to(c.device);
      at::AutoGradMode grad_on(true);
      if (c.return_grad) {
        h.requires_grad_(true);
        w.requires_grad_(true);
      }
      if (c.impl == "fused") {
        r->parts = kd::kd_loss_linear(h, w, ml, t, y, c.ko, c.chunk_rows);
      } else if (c.impl == "kd" || c.impl == "reference") {
        at::Tensor logits = at::matmul(h, w.t());
        KdOptions ko = c.ko;
        if (c.impl == "kd") ko.inplace_grad = true;
        if (ml.defined())
          r->parts = c.impl == "kd" ? kd::kd_loss(logits, ml, y, ko) : dev->loss_reference(logits, ml, y, ko);
        else
          r->parts = c.impl == "kd" ? kd::kd_loss_topk(logits, t, y, ko) : dev->topk_reference(logits, t, y, ko);
      } else {
        throw std::invalid_argument("kd.linear: option 'impl' must be fused, kd or reference, got '" + c.impl + "'");
      }
      if (c.return_grad) {
        r->parts.loss.backward(at::full({}, c.upstream, r->parts.loss.options()));
        r->grad_hidden = h.grad().to(at::kCPU);
        r->grad_weight = w.grad().to(at::kCPU);
      }
      r->parts.loss = r->parts.loss.detach();
    };
    return PromiseWorker::Queue(env, Napi::Object(), work,
                                [r](Napi::Env e) -> Napi::Value { return loss_to_js(e, *r); });
  });
}

namespace {

Napi::Value Loss(const Napi::CallbackInfo& info) { return KdLossCall(info, nullptr); }
Napi::Value LossTopk(const Napi::CallbackInfo& info) { return KdTopkCall(info, nullptr); }
Napi::Value LossLinear(const Napi::CallbackInfo& info) { return KdLinearCall(info, nullptr); }

Napi::Value TopkSoftLabels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    at::Tensor m = float_input(info[0], "mentorLogits", false, at::kFloat);
    if (!info[1].IsNumber()) throw std::invalid_argument("kd.topkSoftLabels: k must be a number");
    const int64_t k = info[1].As<Napi::Number>().Int64Value();
    if (!info[2].IsNumber()) throw std::invalid_argument("kd.topkSoftLabels: tau must be a number");
    const double tau = info[2].As<Napi::Number>().DoubleValue();
    auto out = std::make_shared<kd::TopK>();
    auto work = [m, k, tau, out] { *out = kd::topk_soft_labels(m, k, tau); };
    return PromiseWorker::Queue(env, Napi::Object(), work, [out](Napi::Env e) -> Napi::Value {
      Napi::Object o = Napi::Object::New(e);
      o.Set("indices", tensor_to_js(e, out->indices));
      o.Set("logprobs", tensor_to_js(e, out->logprobs));
      o.Set("restMass", tensor_to_js(e, out->rest_mass));
      return o;
    });
  });
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    o.Set("isa", kd::cpu_isa());
#ifdef MENTOR_KD_WITH_CUDA
    o.Set("cudaKernels", true);
#else
    o.Set("cudaKernels", false);
#endif
    o.Set("cudaAvailable", at::hasCUDA());
    return o;
  });
}

void Init(Napi::Env env, Napi::Object kd) {
  kd.Set("loss", Napi::Function::New(env, Loss, "loss"));
  kd.Set("topk", Napi::Function::New(env, LossTopk, "topk"));
  kd.Set("linear", Napi::Function::New(env, LossLinear, "linear"));
  kd.Set("topkSoftLabels", Napi::Function::New(env, TopkSoftLabels, "topkSoftLabels"));
  kd.Set("info", Napi::Function::New(env, Info, "info"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(kd, mentor_kd::Init);
