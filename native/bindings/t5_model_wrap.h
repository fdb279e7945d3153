// JS class T5Model: one native FlanT5 held by shared_ptr, so work in flight
// keeps the model alive even if JS disposes or collects the wrapper.
#pragma once
#include <napi.h>

#include <memory>

#include "t5/model.h"

namespace mentor_kd {

class T5ModelWrap : public Napi::ObjectWrap<T5ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<t5::T5Model> model);
  // For other bindings (trainer, KD): the model behind a JS T5Model; throws if disposed.
  static std::shared_ptr<t5::T5Model> ModelFrom(const Napi::Value& value, const char* what);

  explicit T5ModelWrap(const Napi::CallbackInfo& info);

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
  Napi::Value AddLora(const Napi::CallbackInfo& info);
  Napi::Value LoadLora(const Napi::CallbackInfo& info);
  Napi::Value SaveLora(const Napi::CallbackInfo& info);
  Napi::Value LoraParameterNames(const Napi::CallbackInfo& info);
  Napi::Value Merged(const Napi::CallbackInfo& info);

  std::shared_ptr<t5::T5Model> model(Napi::Env env) const;
  std::shared_ptr<t5::T5Model> model_;
};

}  // namespace mentor_kd
