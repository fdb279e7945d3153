#include "bindings/generator_wrap.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "bindings/causal_model_wrap.h"
#include "bindings/t5_model_wrap.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/instance_data.h"
#include "napi/js_args.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {
namespace {

constexpr const char* kClassName = "Generator";

bool present(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

double number_field(const Napi::Object& o, const char* key, double fallback, const std::string& where) {
  if (!present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw std::invalid_argument(where + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t int_field(const Napi::Object& o, const char* key, int64_t fallback, const std::string& where) {
  const double d = number_field(o, key, static_cast<double>(fallback), where);
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
    throw std::invalid_argument(where + "." + key + " must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

std::vector<int64_t> ids_field(const Napi::Object& o, const std::string& where) {
  const std::string what = where + ".inputIds";
  if (!present(o, "inputIds")) throw std::invalid_argument(what + " is required");
  Napi::Value v = o.Get("inputIds");
  std::vector<int64_t> out;
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_int32_array)
      throw std::invalid_argument(what + " must be an Int32Array or an array of integers");
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
    return out;
  }
  if (!v.IsArray()) throw std::invalid_argument(what + " must be an Int32Array or an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d))
      throw std::invalid_argument(what + "[" + std::to_string(i) + "] must be an integer");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

generate::GenerationRequest request_from(const Napi::Value& v, const std::string& where) {
  if (!v.IsObject()) throw std::invalid_argument(where + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  generate::GenerationRequest r;
  r.input_ids = ids_field(o, where);
  r.samples = int_field(o, "samples", 1, where);
  if (present(o, "maxNewTokens") && o.Get("maxNewTokens").IsArray()) {
    Napi::Array a = o.Get("maxNewTokens").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value x = a.Get(i);
      const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : NAN;
      if (!std::isfinite(d) || d != std::floor(d))
        throw std::invalid_argument(where + ".maxNewTokens[" + std::to_string(i) + "] must be an integer");
      r.sample_max_new_tokens.push_back(static_cast<int64_t>(d));
    }
    r.max_new_tokens = 1;
    for (int64_t m : r.sample_max_new_tokens) r.max_new_tokens = std::max(r.max_new_tokens, m);
  } else {
    r.max_new_tokens = int_field(o, "maxNewTokens", 64, where);
  }
  if (present(o, "doSample")) {
    Napi::Value d = o.Get("doSample");
    if (!d.IsBoolean()) throw std::invalid_argument(where + ".doSample must be a boolean");
    r.do_sample = d.As<Napi::Boolean>().Value();
  }
  r.temperature = number_field(o, "temperature", 1.0, where);
  r.top_k = int_field(o, "topK", 50, where);
  r.top_p = number_field(o, "topP", 1.0, where);
  r.tag = int_field(o, "tag", 0, where);
  if (present(o, "seed")) {
    const int64_t s = int_field(o, "seed", 0, where);
    if (s < 0) throw std::invalid_argument(where + ".seed must be >= 0");
    r.seed = static_cast<uint64_t>(s);
  } else {
    static std::random_device rd;
    r.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  return r;
}

}  // namespace

Napi::Function GeneratorWrap::Define(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         StaticMethod<&GeneratorWrap::Create>("create"),
                         StaticMethod<&GeneratorWrap::MeasureGemm>("measureGemm"),
                         InstanceMethod<&GeneratorWrap::Submit>("submit"),
                         InstanceMethod<&GeneratorWrap::Run>("run"),
                         InstanceMethod<&GeneratorWrap::Stats>("stats"),
                         InstanceMethod<&GeneratorWrap::Dispose>("dispose"),
                     });
}

GeneratorWrap::GeneratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "Generator cannot be constructed directly: use Generator.create(model)");
  holder_ = *info[0].As<Napi::External<Holder>>().Data();
}

GeneratorWrap::Holder GeneratorWrap::holder(Napi::Env) const {
  if (!holder_.engine) throw std::runtime_error("this Generator was disposed");
  return holder_;
}

Napi::Value GeneratorWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    const Napi::Value arg = info.Length() > 0 ? info[0] : env.Undefined();
    const char* what = "Generator.create(model): model";
    std::shared_ptr<causal::CausalLM> causal_model;
    std::shared_ptr<t5::T5Model> t5_model;
    std::shared_ptr<model::LanguageModel> model;
    if (CausalModelWrap::IsInstance(arg))
      model = causal_model = CausalModelWrap::ModelFrom(arg, what);
    else
      model = t5_model = T5ModelWrap::ModelFrom(arg, what);
    Napi::Object opts = options_arg(info, 1);
    generate::EngineOptions eo;
    eo.slots = int_field(opts, "slots", 64, "options");
    const std::string dtype = get_string(opts, "dtype", dtype_name(model->dtype()));
    if (dtype != "float32" && dtype != "bfloat16")
      throw std::invalid_argument("options.dtype must be 'float32' or 'bfloat16', got '" + dtype + "'");
    eo.dtype = dtype_from_name(dtype);
    if (eo.slots < 1 || eo.slots > 4096) throw std::invalid_argument("options.slots must be in [1, 4096]");
    auto result = std::make_shared<Holder>();
    return PromiseWorker::Queue(
        env, Napi::Object(),
        [=] {
          std::lock_guard<std::mutex> lock(model->mutex());
          result->model = model;
          result->engine = causal_model ? std::make_shared<generate::GenerationEngine>(causal_model, eo)
                                        : std::make_shared<generate::GenerationEngine>(t5_model, eo);
          result->run_mutex = std::make_shared<std::mutex>();
        },
        [=](Napi::Env e) -> Napi::Value {
          Holder h = *result;
          auto ext = Napi::External<Holder>::New(e, &h);
          return addon_data(e).constructors.at(kClassName).New({ext});
        });
  });
}

Napi::Value GeneratorWrap::MeasureGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    Napi::Object opts = options_arg(info, 0);
    const int64_t m = int_field(opts, "m", 256, "options"), n = int_field(opts, "n", 2048, "options"),
                  k = int_field(opts, "k", 512, "options"), iters = int_field(opts, "iters", 20, "options");
    if (m < 1 || n < 1 || k < 1 || iters < 1 || m * n > (1LL << 28) || n * k > (1LL << 28) || m * k > (1LL << 28))
      throw std::invalid_argument("measureGemm: m, n, k, iters must be >= 1 and the matrices under 2^28 elements");
    const at::ScalarType dtype = dtype_from_name(get_string(opts, "dtype", "float32"));
    auto gflops = std::make_shared<double>(0);
    return PromiseWorker::Queue(
        env, Napi::Object(),
        [=] {
          c10::InferenceMode inference;
          at::Tensor a = at::randn({m, k}).to(dtype), w = at::randn({n, k}).to(dtype);
          at::Tensor out = at::linear(a, w);  // warm-up
          const auto t0 = std::chrono::steady_clock::now();
          for (int64_t i = 0; i < iters; ++i) out = at::linear(a, w);
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          *gflops = 2.0 * m * n * k * iters / s / 1e9;
        },
        [=](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *gflops); });
  });
}

Napi::Value GeneratorWrap::Submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    Holder h = holder(env);
    if (info.Length() < 1 || !info[0].IsArray())
      throw std::invalid_argument("submit(requests): requests must be an array");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<generate::GenerationRequest> reqs;
    reqs.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i)
      reqs.push_back(request_from(a.Get(i), "requests[" + std::to_string(i) + "]"));
    h.engine->submit(std::move(reqs));
    return env.Undefined();
  });
}

Napi::Value GeneratorWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    Holder h = holder(env);
    auto out = std::make_shared<std::vector<generate::GenerationResult>>();
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> run_lock(*h.run_mutex);
          std::lock_guard<std::mutex> lock(h.model->mutex());
          *out = h.engine->run_until_finished();
        },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(e, out->size());
          for (size_t i = 0; i < out->size(); ++i) {
            const auto& r = (*out)[i];
            Napi::Object o = Napi::Object::New(e);
            o.Set("tag", static_cast<double>(r.tag));
            o.Set("newTokens", static_cast<double>(r.new_tokens));
            Napi::Array seqs = Napi::Array::New(e, r.sequences.size());
            for (size_t j = 0; j < r.sequences.size(); ++j) {
              Napi::Int32Array ids = Napi::Int32Array::New(e, r.sequences[j].size());
              for (size_t k = 0; k < r.sequences[j].size(); ++k) ids[k] = static_cast<int32_t>(r.sequences[j][k]);
              seqs.Set(static_cast<uint32_t>(j), ids);
            }
            o.Set("sequences", seqs);
            arr.Set(static_cast<uint32_t>(i), o);
          }
          return arr;
        });
  });
}

Napi::Value GeneratorWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    Holder h = holder(env);
    // Read under the run lock would block the JS thread during a run: the counters are plain
    // integers/doubles written by one worker thread, read here as a snapshot.
    const generate::EngineStats s = h.engine->stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("slots", static_cast<double>(h.engine->slots()));
    o.Set("dtype", dtype_name(h.engine->dtype()));
    o.Set("requestsDone", static_cast<double>(s.requests_done));
    o.Set("steps", static_cast<double>(s.steps));
    o.Set("rowSteps", static_cast<double>(s.row_steps));
    o.Set("newTokens", static_cast<double>(s.new_tokens));
    o.Set("encoderPasses", static_cast<double>(s.encoder_passes));
    o.Set("encodeSeconds", s.encode_seconds);
    o.Set("decodeSeconds", s.decode_seconds);
    return o;
  });
}

Napi::Value GeneratorWrap::Dispose(const Napi::CallbackInfo& info) {
  holder_ = Holder();  // a run in flight holds its own references
  return info.Env().Undefined();
}

namespace {
void Init(Napi::Env env, Napi::Object model) {
  Napi::Function ctor = GeneratorWrap::Define(env);
  addon_data(env).constructors[kClassName] = Napi::Persistent(ctor);
  model.Set(kClassName, ctor);
}
}  // namespace

}  // namespace mentor_kd

MENTOR_KD_BINDING(model, mentor_kd::Init);
