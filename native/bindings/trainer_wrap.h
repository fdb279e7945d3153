// JS classes of the training engine: Trainer (one native call per optimizer
// step), SoftLabelCache (reader) and SoftLabelWriter. Each holds its native
// object by shared_ptr, so work in flight keeps it alive.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>

#include "train/soft_labels.h"
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

class SoftLabelCacheWrap : public Napi::ObjectWrap<SoftLabelCacheWrap> {
 public:
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

class SoftLabelWriterWrap : public Napi::ObjectWrap<SoftLabelWriterWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit SoftLabelWriterWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value AddLogits(const Napi::CallbackInfo& info);
  Napi::Value Finish(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);

  struct State {
    std::mutex mutex;  // one add/finish at a time
    std::unique_ptr<train::SoftLabelWriter> writer;
  };
  std::shared_ptr<State> state_;
};

}  // namespace mentor_kd
