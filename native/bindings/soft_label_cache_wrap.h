// JS class SoftLabelCache: a read-only offline soft-label cache (train/soft_labels.h),
// opened on a worker thread and shared by pointer with the train steps that read it.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "train/soft_labels.h"

namespace mentor_kd {

class SoftLabelCacheWrap : public Napi::ObjectWrap<SoftLabelCacheWrap> {
 public:
  static constexpr const char* kClassName = "SoftLabelCache";
  static Napi::Function Define(Napi::Env env);
  explicit SoftLabelCacheWrap(const Napi::CallbackInfo& info);
  static std::shared_ptr<const train::SoftLabelCache> CacheFrom(const Napi::Value& value, const std::string& what);

 private:
  static Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value NumTokensOf(const Napi::CallbackInfo& info);
  Napi::Value Gather(const Napi::CallbackInfo& info);

  std::shared_ptr<const train::SoftLabelCache> cache_;
};

// The cache's index as a JS object (also what SoftLabelWriter.finish() resolves to).
Napi::Object cache_info_to_js(Napi::Env env, const train::SoftLabelCacheInfo& info);

}  // namespace mentor_kd
