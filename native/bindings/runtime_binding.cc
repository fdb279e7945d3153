// Process-level functions: libtorch version, CUDA availability, thread count.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <napi.h>
#include <torch/csrc/api/include/torch/version.h>

#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/runtime.h"

namespace mentor_kd {
namespace {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", TORCH_VERSION);
  o.Set("cudaAvailable", at::hasCUDA());
  o.Set("cudaCompiled",
#ifdef MENTOR_KD_WITH_CUDA
        true
#else
        false
#endif
  );
  o.Set("threads", intra_op_threads());
  o.Set("parallelInfo", at::get_parallel_info());
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw std::invalid_argument("setNumThreads(n): n must be a positive integer");
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1) throw std::invalid_argument("setNumThreads(n): n must be >= 1, got " + std::to_string(n));
    set_intra_op_threads(n);
    return env.Undefined();
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New(env, RuntimeInfo, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetThreads, "setNumThreads"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(runtime, mentor_kd::Init);
