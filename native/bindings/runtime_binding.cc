// runtime: libtorch version, CUDA availability, threads, seeding and the process-wide settings.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <napi.h>
#include <torch/csrc/api/include/torch/version.h>

#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/registry.h"
#include "napi/js_args.h"
#include "napi/tensor_convert.h"
#include "kd/kd_loss.h"
#include "runtime/large_block_allocator.h"
#include "runtime/settings.h"

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
  o.Set("threads", runtime::intra_op_threads());
  o.Set("flushDenormal", runtime::flush_denormal());
  o.Set("largeBlocks", runtime::large_block_allocator_installed());
  o.Set("parallelInfo", at::get_parallel_info());
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber())
      throw std::invalid_argument("setNumThreads(n): n must be a positive integer");
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1) throw std::invalid_argument("setNumThreads(n): n must be >= 1, got " + std::to_string(n));
    runtime::set_intra_op_threads(n);
    return env.Undefined();
  });
}

// Seeds libtorch's default CPU generator (dropout masks, unseeded sampling).
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber())
      throw std::invalid_argument("manualSeed(seed): seed must be a non-negative integer");
    double s = info[0].As<Napi::Number>().DoubleValue();
    if (s < 0 || s != static_cast<double>(static_cast<uint64_t>(s)))
      throw std::invalid_argument("manualSeed(seed): seed must be a non-negative integer");
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(static_cast<uint64_t>(s));
    return env.Undefined();
  });
}

// configure({flushDenormal?, kdIsa?, trainProfile?, modelProfile?, cudaRowCache?, largeBlocks?}): the
// process-wide settings lib/runtime/env.ts reads from the environment (native code reads
// none). Keys left out keep their current value; unknown keys are an error. Returns info().
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    Napi::Object o = options_arg(info, 0, "configure(settings): settings");
    Napi::Array keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
      if (k != "flushDenormal" && k != "kdIsa" && k != "trainProfile" && k != "modelProfile" && k != "cudaRowCache" &&
          k != "largeBlocks")
        throw std::invalid_argument("configure(settings): unknown setting '" + k + "'");
    }
    auto has = [&](const char* k) { return !o.Get(k).IsUndefined() && !o.Get(k).IsNull(); };
    if (has("flushDenormal")) runtime::set_flush_denormal(get_bool(o, "flushDenormal", true));
    if (has("kdIsa")) {
      // A bad or unsupported name keeps the detected kernels (the variable is a tuning knob, not a contract).
      try {
        kd::set_cpu_isa(get_string(o, "kdIsa", "auto"));
      } catch (const std::exception&) {
        kd::set_cpu_isa("auto");
      }
    }
    if (has("trainProfile")) runtime::set_train_profile_path(get_string(o, "trainProfile", ""));
    if (has("modelProfile")) runtime::set_model_profile_path(get_string(o, "modelProfile", ""));
    if (has("cudaRowCache")) runtime::set_cuda_row_cache(get_bool(o, "cudaRowCache", true));
    // Once tensors live in its blocks the allocator cannot be taken out again: false only keeps it out.
    if (has("largeBlocks") && get_bool(o, "largeBlocks", true)) runtime::install_large_block_allocator();
    return RuntimeInfo(info);
  });
}

void Init(Napi::Env env, Napi::Object ns) {
  ns.Set("info", Napi::Function::New(env, RuntimeInfo, "info"));
  ns.Set("setNumThreads", Napi::Function::New(env, SetThreads, "setNumThreads"));
  ns.Set("manualSeed", Napi::Function::New(env, ManualSeed, "manualSeed"));
  ns.Set("configure", Napi::Function::New(env, Configure, "configure"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(runtime, mentor_kd::Init);
