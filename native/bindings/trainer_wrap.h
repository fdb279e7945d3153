// JS class Trainer: one native call per optimizer step, on a worker thread. It
// holds its native object by shared_ptr, so work in flight keeps it alive. The
// trainer binding also registers SoftLabelCache and SoftLabelWriter.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>

#include "train/trainer.h"

namespace mentor_kd {

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TrainerWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value SetGradSync(const Napi::CallbackInfo& info);
  Napi::Value EvaluateLoss(const Napi::CallbackInfo& info);
  Napi::Value SaveCheckpoint(const Napi::CallbackInfo& info);
  Napi::Value LoadCheckpoint(const Napi::CallbackInfo& info);
  Napi::Value GlobalStep(const Napi::CallbackInfo& info);
  Napi::Value LrAt(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<train::Trainer> trainer() const;

  std::shared_ptr<train::Trainer> trainer_;
};

}  // namespace mentor_kd
