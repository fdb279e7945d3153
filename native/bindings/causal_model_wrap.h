// JS class CausalLM: one native decoder-only model (Llama / Qwen2 family) held by shared_ptr, so
// work in flight keeps the model alive even if JS disposes or collects the wrapper.
#pragma once
#include <napi.h>

#include <memory>

#include "causal/model.h"

namespace mentor_kd {

class CausalModelWrap : public Napi::ObjectWrap<CausalModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<causal::CausalLM> model);
  // For other bindings: the model behind a JS CausalLM; throws if disposed.
  static std::shared_ptr<causal::CausalLM> ModelFrom(const Napi::Value& value, const char* what);
  // Whether `value` is a JS CausalLM (disposed or not).
  static bool IsInstance(const Napi::Value& value);

  explicit CausalModelWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Load(const Napi::CallbackInfo& info);
  static Napi::Value FromConfig(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value ParameterNames(const Napi::CallbackInfo& info);
  Napi::Value GetParameter(const Napi::CallbackInfo& info);
  Napi::Value GetGradient(const Napi::CallbackInfo& info);
  Napi::Value SetParameter(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<causal::CausalLM> model(Napi::Env env) const;
  std::shared_ptr<causal::CausalLM> model_;
};

}  // namespace mentor_kd
