#include "bindings/soft_label_cache_wrap.h"

#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/instance_data.h"
#include "napi/js_args.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {

Napi::Object cache_info_to_js(Napi::Env env, const train::SoftLabelCacheInfo& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dir", i.dir);
  o.Set("vocabSize", static_cast<double>(i.vocab_size));
  o.Set("k", static_cast<double>(i.k));
  o.Set("tau", i.tau);
  o.Set("numExamples", static_cast<double>(i.num_examples));
  o.Set("numTokens", static_cast<double>(i.num_tokens));
  o.Set("indexDtype", i.index_dtype);
  o.Set("logprobDtype", i.logprob_dtype);
  o.Set("dataBytes", static_cast<double>(i.data_bytes));
  o.Set("bytesPerToken",
        i.num_tokens > 0 ? static_cast<double>(i.data_bytes) / static_cast<double>(i.num_tokens) : 0.0);
  Napi::Object meta = Napi::Object::New(env);
  for (const auto& [k, v] : i.metadata) meta.Set(k, v);
  o.Set("metadata", meta);
  return o;
}

Napi::Function SoftLabelCacheWrap::Define(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         StaticMethod<&SoftLabelCacheWrap::Open>("open"),
                         InstanceMethod<&SoftLabelCacheWrap::Info>("info"),
                         InstanceMethod<&SoftLabelCacheWrap::NumTokensOf>("numTokensOf"),
                         InstanceMethod<&SoftLabelCacheWrap::Gather>("gather"),
                     });
}

SoftLabelCacheWrap::SoftLabelCacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SoftLabelCacheWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(),
                               "SoftLabelCache cannot be constructed directly: use SoftLabelCache.open(dir)");
  cache_ = *info[0].As<Napi::External<std::shared_ptr<const train::SoftLabelCache>>>().Data();
}

std::shared_ptr<const train::SoftLabelCache> SoftLabelCacheWrap::CacheFrom(const Napi::Value& value,
                                                                           const std::string& what) {
  Napi::Env env = value.Env();
  Napi::FunctionReference& ctor = addon_data(env).constructors.at(kClassName);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value()))
    throw std::invalid_argument(what + " must be a native SoftLabelCache");
  return Unwrap(value.As<Napi::Object>())->cache_;
}

Napi::Value SoftLabelCacheWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::string dir = string_arg(info, 0, "SoftLabelCache.open(dir): dir");
    auto result = std::make_shared<std::shared_ptr<const train::SoftLabelCache>>();
    return PromiseWorker::Queue(
        env, Napi::Object(), [=] { *result = std::make_shared<const train::SoftLabelCache>(dir); },
        [=](Napi::Env e) -> Napi::Value {
          std::shared_ptr<const train::SoftLabelCache> holder = *result;
          auto ext = Napi::External<std::shared_ptr<const train::SoftLabelCache>>::New(e, &holder);
          return addon_data(e).constructors.at(kClassName).New({ext});
        });
  });
}

Napi::Value SoftLabelCacheWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value { return cache_info_to_js(env, cache_->info()); });
}

Napi::Value SoftLabelCacheWrap::NumTokensOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber())
      throw std::invalid_argument("numTokensOf(example): example must be a number");
    return Napi::Number::New(env, static_cast<double>(cache_->num_tokens_of(info[0].As<Napi::Number>().Int64Value())));
  });
}

Napi::Value SoftLabelCacheWrap::Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto ids = int_array(info.Length() > 0 ? info[0] : env.Undefined(), "exampleIds");
    at::Tensor labels = tensor_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "labels");
    kd::TopK t = cache_->gather(ids, labels, -100);
    Napi::Object o = Napi::Object::New(env);
    o.Set("indices", tensor_to_js(env, t.indices));
    o.Set("logprobs", tensor_to_js(env, t.logprobs));
    o.Set("restMass", tensor_to_js(env, t.rest_mass));
    return o;
  });
}

}  // namespace mentor_kd
