// Process-level functions: libtorch version, CUDA availability, thread count.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <napi.h>
#include <torch/csrc/api/include/torch/version.h>

#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/runtime.h"
#include "napi/tensor_convert.h"
#include "t5/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

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
  o.Set("flushDenormal", flush_denormal());
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

// Seeds libtorch's default CPU generator (dropout masks, unseeded sampling).
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw std::invalid_argument("manualSeed(seed): seed must be a non-negative integer");
    double s = info[0].As<Napi::Number>().DoubleValue();
    if (s < 0 || s != static_cast<double>(static_cast<uint64_t>(s))) throw std::invalid_argument("manualSeed(seed): seed must be a non-negative integer");
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(static_cast<uint64_t>(s));
    return env.Undefined();
  });
}

// Test hook: where denormals survive. On a worker thread (as every long call runs) and on each
// thread of the intra-op team it starts, multiplies 1e-30f by 1e-10f: a denormal (~1e-40)
// unless the thread flushes. Resolves to the count of threads that kept one, and how many looked.
Napi::Value DenormalProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto result = std::make_shared<std::pair<int, int>>(0, 0);
  return PromiseWorker::Queue(
      env, Napi::Object(),
      [result] {
        auto kept = [] {
          volatile float a = 1e-30f, b = 1e-10f;
          volatile float c = a * b;
          return c != 0.0f ? 1 : 0;
        };
        const int n = at::get_num_threads();
        std::vector<int> team(static_cast<size_t>(n), -1);
        at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) team[static_cast<size_t>(i)] = kept();
        });
        int survived = kept(), looked = 1;
        for (int t : team) {
          if (t < 0) continue;
          survived += t;
          ++looked;
        }
        *result = {survived, looked};
      },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("threadsKeepingDenormals", result->first);
        o.Set("threadsLooked", result->second);
        return o;
      });
}

// Test hook: dropout of x and its gradient for an upstream gradient of ones.
Napi::Value DropoutForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    at::Tensor x = tensor_from_js(info[0], "x").to(at::kFloat).requires_grad_(true);
    double p = info[1].As<Napi::Number>().DoubleValue();
    at::Tensor y;
    {
      at::AutoGradMode grad(true);
      y = t5::fast_dropout(x, p, true);
      y.sum().backward();
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("out", tensor_to_js(env, y.detach()));
    o.Set("grad", tensor_to_js(env, x.grad()));
    return o;
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed, "manualSeed"));
  exports.Set("_denormalProbe", Napi::Function::New(env, DenormalProbe, "_denormalProbe"));
  exports.Set("_dropoutForTest", Napi::Function::New(env, DropoutForTest, "_dropoutForTest"));
  exports.Set("runtimeInfo", Napi::Function::New(env, RuntimeInfo, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetThreads, "setNumThreads"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(runtime, mentor_kd::Init);
