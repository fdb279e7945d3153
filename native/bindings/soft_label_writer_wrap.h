// JS class SoftLabelWriter: runs a mentor over batches (or takes its logits)
// and writes an offline soft-label cache, one add() at a time on a worker thread.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "train/soft_labels.h"

namespace mentor_kd {

class SoftLabelWriterWrap : public Napi::ObjectWrap<SoftLabelWriterWrap> {
 public:
  static constexpr const char* kClassName = "SoftLabelWriter";
  static Napi::Function Define(Napi::Env env);
  explicit SoftLabelWriterWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value AddLogits(const Napi::CallbackInfo& info);
  Napi::Value Finish(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  static int64_t first_example_arg(const Napi::CallbackInfo& info, const char* call);
  Napi::Value QueueAdd(Napi::Env env, std::function<int64_t(train::SoftLabelWriter&)> add);

  struct State {
    std::mutex mutex;  // one add/finish at a time
    std::unique_ptr<train::SoftLabelWriter> writer;
  };
  std::shared_ptr<State> state_;
};

}  // namespace mentor_kd
