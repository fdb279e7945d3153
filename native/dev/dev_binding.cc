// dev: the dev addon's extra namespace (tests and benchmarks; built with
// -DMENTOR_KD_DEV=ON into build/Release/mentor_kd_dev.node, never shipped):
//   kdLoss / kdTopk / kdLinear   kd.loss/topk/linear plus the test options `impl`
//                                (explicit, reference, kd) and `upstream`
//   kdBench, setKdIsa            the KD benchmark and forcing a CPU kernel set
//   denormalProbe, dropoutForTest
//   sgdStep, ddpForwardBackward  the minimal CE + SGD data-parallel step (dev/ddp_step.h)
//   gradientStorage              where a data-parallel model's gradients live (distinct storages)
//   ownerReduce, reducerBuffers  zero2's owner-mode reduce without its optimizer; the reducer's buffers
#include <napi.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "bindings/kd_binding.h"
#include "bindings/parallel_wrap.h"
#include "bindings/t5_model_wrap.h"
#include "dev/kd_bench.h"
#include "dev/kd_reference.h"
#include "kd/kd_loss.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"
#include "t5/dropout.h"
#ifdef MENTOR_KD_WITH_C10D
#include "dev/ddp_step.h"
#include "parallel/flat_layout.h"
#include "parallel/group.h"
#endif

namespace mentor_kd {
namespace {

kd::KdLoss loss_reference(const at::Tensor& s, const at::Tensor& m, const at::Tensor& y, const kd::KdOptions& o) {
  return kd::kd_loss_reference(s, m, y, o);
}
kd::KdLoss topk_reference(const at::Tensor& s, const kd::TopK& t, const at::Tensor& y, const kd::KdOptions& o) {
  return kd::kd_loss_topk_reference(s, t, y, o);
}
const KdDevImpls kDevImpls{loss_reference, topk_reference, kd::kd_loss_forward, kd::kd_loss_topk_forward};

Napi::Value KdLoss(const Napi::CallbackInfo& info) { return KdLossCall(info, &kDevImpls); }
Napi::Value KdTopk(const Napi::CallbackInfo& info) { return KdTopkCall(info, &kDevImpls); }
Napi::Value KdLinear(const Napi::CallbackInfo& info) { return KdLinearCall(info, &kDevImpls); }

Napi::Value KdBench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (!info[0].IsObject()) throw std::invalid_argument("dev.kdBench: options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    kd::BenchOptions b;
    b.rows = static_cast<int64_t>(get_number(o, "rows", 8192));
    b.vocab = static_cast<int64_t>(get_number(o, "vocab", 32128));
    b.variant = get_string(o, "variant", "fused");
    b.dtype = dtype_from_name(get_string(o, "dtype", "float32"));
    b.mentor_dtype = dtype_from_name(get_string(o, "mentorDtype", get_string(o, "dtype", "float32")));
    b.device = get_string(o, "device", "cpu");
    device_from_name(b.device);  // validates
    b.iters = static_cast<int>(get_number(o, "iters", 3));
    b.warmup = static_cast<int>(get_number(o, "warmup", 1));
    if (!o.Get("tau").IsNumber() || !o.Get("lambda").IsNumber())
      throw std::invalid_argument("dev.kdBench: options tau and lambda are required (numbers)");
    b.tau = get_number(o, "tau", 0);
    b.lambda = get_number(o, "lambda", 0);
    if (!o.Get("divergence").IsString() || !o.Get("beta").IsNumber() || !o.Get("alpha").IsNumber())
      throw std::invalid_argument("dev.kdBench: options divergence, beta and alpha are required");
    b.divergence = get_string(o, "divergence", "");
    b.beta = get_number(o, "beta", 0);
    b.alpha = get_number(o, "alpha", 0);
    b.hidden = static_cast<int64_t>(get_number(o, "hidden", 512));
    b.k = static_cast<int64_t>(get_number(o, "k", 64));
    b.chunk_rows = static_cast<int64_t>(get_number(o, "chunkRows", 0));
    b.seed = static_cast<uint64_t>(get_number(o, "seed", 1234));
    auto r = std::make_shared<kd::BenchResult>();
    auto work = [b, r] { *r = kd::run_bench(b); };
    return PromiseWorker::Queue(env, Napi::Object(), work, [r, b](Napi::Env e) -> Napi::Value {
      Napi::Object out = Napi::Object::New(e);
      out.Set("variant", b.variant);
      out.Set("divergence", b.divergence);
      out.Set("rows", static_cast<double>(b.rows));
      out.Set("vocab", static_cast<double>(b.vocab));
      out.Set("dtype", dtype_name(b.dtype));
      out.Set("mentorDtype", dtype_name(b.mentor_dtype));
      out.Set("device", r->device_name);
      Napi::Array times = Napi::Array::New(e, r->times_ms.size());
      for (size_t i = 0; i < r->times_ms.size(); ++i) times.Set(static_cast<uint32_t>(i), r->times_ms[i]);
      out.Set("timesMs", times);
      out.Set("medianMs", r->median_ms);
      out.Set("peakExtraBytes", static_cast<double>(r->peak_extra_bytes));
      out.Set("inputBytes", static_cast<double>(r->input_bytes));
      out.Set("rssPeakExtraBytes", static_cast<double>(r->rss_peak_extra_bytes));
      out.Set("memoryMethod", r->memory_method);
      out.Set("minTrafficBytes", static_cast<double>(r->min_traffic_bytes));
      out.Set("loss", r->loss);
      out.Set("threads", r->threads);
      out.Set("isa", r->isa);
      return out;
    });
  });
}

Napi::Value SetKdIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw std::invalid_argument("dev.setKdIsa(name): name must be a string");
    kd::set_cpu_isa(info[0].As<Napi::String>().Utf8Value());
    return Napi::String::New(env, kd::cpu_isa());
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

// Test hook: largeBlockProbe(bytes) allocates a CPU tensor of `bytes` through libtorch's CPU
// allocator, writes every element, and frees it. Returns whether its data began on a 2 MiB
// boundary, the sum it read back, and this process's VmRSS (kB) while it lived and after it was freed.
Napi::Value LargeBlockProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    const int64_t bytes = info[0].As<Napi::Number>().Int64Value();
    if (bytes < 4) throw std::invalid_argument("largeBlockProbe(bytes): bytes must be >= 4");
    auto rss_kb = []() -> int64_t {
      std::ifstream status("/proc/self/status");
      std::string line;
      while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
      return -1;
    };
    Napi::Object o = Napi::Object::New(env);
    {
      at::Tensor t = at::empty({bytes / 4}, at::kFloat);
      t.fill_(1.0f);
      o.Set("aligned2MiB", reinterpret_cast<std::uintptr_t>(t.data_ptr()) % (std::uintptr_t{2} << 20) == 0);
      o.Set("sum", t.sum(at::kDouble).item<double>());
      o.Set("rssWhileLiveKb", static_cast<double>(rss_kb()));
    }
    o.Set("rssAfterFreeKb", static_cast<double>(rss_kb()));
    return o;
  });
}

#ifdef MENTOR_KD_WITH_C10D
// sgdStep(model, lr): p -= lr * grad, then clears gradients (the minimal optimizer of tests and benchmarks).
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = T5ModelWrap::ModelFrom(info.Length() > 0 ? info[0] : env.Undefined(), "model");
    if (info.Length() < 2 || !info[1].IsNumber())
      throw std::invalid_argument("sgdStep(model, lr): lr must be a number");
    const double lr = info[1].As<Napi::Number>().DoubleValue();
    if (!std::isfinite(lr)) throw std::invalid_argument("sgdStep(model, lr): lr must be finite");
    return PromiseWorker::Queue(
        env, info[0].As<Napi::Object>(), [m, lr] { dist::sgd_step(*m, lr); }, nullptr);
  });
}

// ddpForwardBackward(dataParallel, microBatches, {train, zeroGrad, overlap})
//   -> {loss, localLoss, localTokens, globalTokens, reduce, seconds}
Napi::Value DdpForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto reducer = ReducerFrom(info.Length() > 0 ? info[0] : env.Undefined(), "dataParallel");
    if (info.Length() < 2 || !info[1].IsArray())
      throw std::invalid_argument("microBatches must be an array of batches");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<t5::Seq2SeqBatch> mbs;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const std::string where = "microBatches[" + std::to_string(i) + "]";
      Napi::Value v = arr.Get(i);
      if (!v.IsObject()) throw std::invalid_argument(where + " must be an object {inputIds, attentionMask?, labels}");
      Napi::Object b = v.As<Napi::Object>();
      t5::Seq2SeqBatch sb;
      auto opt = [&](const char* k) {
        Napi::Value x = b.Get(k);
        return x.IsUndefined() || x.IsNull() ? at::Tensor() : tensor_from_js(x, where + "." + k);
      };
      sb.input_ids = opt("inputIds");
      sb.attention_mask = opt("attentionMask");
      sb.labels = opt("labels");
      sb.decoder_input_ids = opt("decoderInputIds");
      sb.decoder_attention_mask = opt("decoderAttentionMask");
      if (!sb.input_ids.defined()) throw std::invalid_argument(where + ".inputIds is required");
      if (!sb.labels.defined()) throw std::invalid_argument(where + ".labels is required");
      mbs.push_back(std::move(sb));
    }
    if (mbs.empty()) throw std::invalid_argument("microBatches is empty");
    Napi::Object o = options_arg(info, 2, "options");
    const bool train = get_bool(o, "train", true);
    const bool zero = get_bool(o, "zeroGrad", true);
    const bool overlap = get_bool(o, "overlap", true);
    auto out = std::make_shared<dist::DdpStepResult>();
    // Collectives run in JS call order on every rank: take the ticket now, wait for the turn on the worker.
    const uint64_t ticket = reducer->group()->take_ticket();
    return PromiseWorker::Queue(
        env, info[0].As<Napi::Object>(),
        [reducer, ticket, mbs, train, zero, overlap, out] {
          dist::Group::Turn turn(*reducer->group(), ticket);
          *out = dist::forward_backward(*reducer, mbs, train, zero, overlap);
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object res = Napi::Object::New(e);
          res.Set("loss", out->loss);
          res.Set("localLoss", out->local_loss);
          res.Set("localTokens", static_cast<double>(out->local_tokens));
          res.Set("globalTokens", static_cast<double>(out->global_tokens));
          res.Set("reduce", ReduceStatsToJs(e, out->reduce));
          res.Set("seconds", out->seconds);
          return res;
        });
  });
}

// gradientStorage(dataParallel) -> {gradients, gradientBytes, storages, storageBytes, reducerBufferBytes}:
// the trainable parameters' defined gradients, the distinct storages behind them and the bucket
// buffers the reducer itself holds. One copy of every gradient: storageBytes == gradientBytes.
Napi::Value GradientStorage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto reducer = ReducerFrom(info.Length() > 0 ? info[0] : env.Undefined(), "dataParallel");
    int64_t gradients = 0, gradient_bytes = 0, storage_bytes = 0;
    std::set<const void*> storages;
    {
      std::lock_guard<std::mutex> lock(reducer->model()->mutex());
      for (const auto& [name, p] : reducer->model()->parameters()) {
        const at::Tensor& g = p.grad();
        if (!p.requires_grad() || !g.defined()) continue;
        ++gradients;
        gradient_bytes += static_cast<int64_t>(g.nbytes());
        if (storages.insert(g.storage().unsafeGetStorageImpl()).second)
          storage_bytes += static_cast<int64_t>(g.storage().nbytes());
      }
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("gradients", static_cast<double>(gradients));
    o.Set("gradientBytes", static_cast<double>(gradient_bytes));
    o.Set("storages", static_cast<double>(storages.size()));
    o.Set("storageBytes", static_cast<double>(storage_bytes));
    o.Set("reducerBufferBytes", static_cast<double>(reducer->buffer_bytes()));
    return o;
  });
}

// ownerReduce(dataParallel): from the next reduce on, each rank's slice of the flat gradient is reduced to
// that rank alone (zero2's owner mode, what train.sharding zero2 sets up), without the sharded optimizer.
Napi::Value OwnerReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto reducer = ReducerFrom(info.Length() > 0 ? info[0] : env.Undefined(), "dataParallel");
    std::vector<int64_t> numels;
    {
      std::lock_guard<std::mutex> lock(reducer->model()->mutex());
      for (const auto& [name, p] : reducer->model()->parameters())
        if (p.requires_grad()) numels.push_back(p.numel());
    }
    reducer->set_owner_reduce(dist::FlatLayout(numels, reducer->group()->size()));
    return env.Undefined();
  });
}

// reducerBuffers(dataParallel) -> {bytes, peakBytes, peakReducing, ownedGradient}: the bucket buffers the
// reducer holds now, the most it held at once during the last reduce, the most buckets reducing at once
// then, and (owner mode) a copy of this rank's slice of the summed gradient (null otherwise).
Napi::Value ReducerBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto reducer = ReducerFrom(info.Length() > 0 ? info[0] : env.Undefined(), "dataParallel");
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", static_cast<double>(reducer->buffer_bytes()));
    o.Set("peakBytes", static_cast<double>(reducer->peak_buffer_bytes()));
    o.Set("peakReducing", static_cast<double>(reducer->peak_reducing()));
    o.Set("ownedGradient", reducer->owner_mode() ? tensor_to_js(env, reducer->owned_grad().clone()) : env.Null());
    return o;
  });
}
#else
Napi::Value Unavailable(const Napi::CallbackInfo& info) {
  throw Napi::Error::New(info.Env(), "mentor-kd was built without distributed support (no c10d with Gloo)");
}
Napi::Value SgdStep(const Napi::CallbackInfo& info) { return Unavailable(info); }
Napi::Value DdpForwardBackward(const Napi::CallbackInfo& info) { return Unavailable(info); }
Napi::Value GradientStorage(const Napi::CallbackInfo& info) { return Unavailable(info); }
Napi::Value OwnerReduce(const Napi::CallbackInfo& info) { return Unavailable(info); }
Napi::Value ReducerBuffers(const Napi::CallbackInfo& info) { return Unavailable(info); }
#endif

void Init(Napi::Env env, Napi::Object dev) {
  dev.Set("kdLoss", Napi::Function::New(env, KdLoss, "kdLoss"));
  dev.Set("kdTopk", Napi::Function::New(env, KdTopk, "kdTopk"));
  dev.Set("kdLinear", Napi::Function::New(env, KdLinear, "kdLinear"));
  dev.Set("kdBench", Napi::Function::New(env, KdBench, "kdBench"));
  dev.Set("setKdIsa", Napi::Function::New(env, SetKdIsa, "setKdIsa"));
  dev.Set("denormalProbe", Napi::Function::New(env, DenormalProbe, "denormalProbe"));
  dev.Set("dropoutForTest", Napi::Function::New(env, DropoutForTest, "dropoutForTest"));
  dev.Set("largeBlockProbe", Napi::Function::New(env, LargeBlockProbe, "largeBlockProbe"));
  dev.Set("sgdStep", Napi::Function::New(env, SgdStep, "sgdStep"));
  dev.Set("ddpForwardBackward", Napi::Function::New(env, DdpForwardBackward, "ddpForwardBackward"));
  dev.Set("gradientStorage", Napi::Function::New(env, GradientStorage, "gradientStorage"));
  dev.Set("ownerReduce", Napi::Function::New(env, OwnerReduce, "ownerReduce"));
  dev.Set("reducerBuffers", Napi::Function::New(env, ReducerBuffers, "reducerBuffers"));
}

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(dev, mentor_kd::Init);
